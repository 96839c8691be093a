import { appendFile, cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { safeFileName } from '../src/report/paths.ts';
import { describe, expect, test } from 'vitest';
import { Db } from '../src/db.ts';
import type { CommandIo } from '../src/cli/io.ts';
import { snapshotCommand, verifyCommand } from '../src/cli/snapshot.ts';
import { sha256File } from '../src/shared/hash.ts';
import type { Manifest } from '../src/snapshot/manifest.ts';
import { hashTree, tempDir } from './helpers/exports.ts';

const BEFORE = path.resolve('fixtures/remediation/before');

function captureIo(): CommandIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (l) => out.push(l), stderr: (l) => err.push(l) };
}

async function snapshot(args: string[]): Promise<{ code: number; dir: string; io: ReturnType<typeof captureIo> }> {
  const dir = path.join(await tempDir('recon-snap-'), 'snap');
  const io = captureIo();
  const code = await snapshotCommand(['--exports', BEFORE, '--label', 'INC-42 before', '--out', dir, ...args], io);
  return { code, dir, io };
}

async function manifestOf(dir: string): Promise<Manifest> {
  return JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
}

async function idsIn(file: string, key: string): Promise<string[]> {
  const db = await Db.open();
  try {
    const rows = await db.all<{ id: string }>(`SELECT "${key}" AS id FROM read_parquet($file) ORDER BY 1`, { file });
    return rows.map((r) => r.id);
  } finally {
    db.close();
  }
}

async function verify(args: string[]) {
  const io = captureIo();
  const code = await verifyCommand(args, io);
  return { code, out: io.out.join('\n'), err: io.err.join('\n') };
}

const EXPECTED_FILES = [
  // what to tell each tenant with a wrong charge or credit (src/customer.ts)
  `customers/${safeFileName('org_a')}.md`,
  `customers/${safeFileName('org_b')}.md`,
  'evidence/allocations.parquet',
  'evidence/app_instances.parquet',
  'evidence/ledger_entries.parquet',
  'evidence/payment_sessions.parquet',
  'evidence/usage_records.parquet',
  'findings.json',
  'summary.md',
  'timeline.json',
  'violations.csv',
  'violations.parquet',
];

describe('recon snapshot', () => {
  test('keeps the audit outputs, the evidence, the timeline and a manifest of hashes', async () => {
    const { code, dir, io } = await snapshot([]);
    expect(code).toBe(1); // error-severity drift in the fixture, as recon audit would say
    expect(io.out.join('\n')).toContain(`wrote ${dir}/`);

    const tree = await hashTree(dir);
    expect(Object.keys(tree).map((p) => p.split(path.sep).join('/')).sort()).toEqual([...EXPECTED_FILES, 'manifest.json'].sort());

    const manifest = await manifestOf(dir);
    expect(manifest).toMatchObject({
      schema_version: 1,
      kind: 'billing-recon-snapshot',
      label: 'INC-42 before',
      as_of: '2026-11-20T11:50:00Z',
      tool: { name: 'billing-recon' },
      scope: { orgs: [], app_instances: [], correlation_ids: [] },
      hash_algorithm: 'sha256',
      findings_schema_version: 1,
    });
    expect(manifest.command.arguments).toEqual(['snapshot', '--exports', BEFORE, '--label', 'INC-42 before', '--out', dir]);
    expect(Date.parse(manifest.created_at)).not.toBeNaN();
    // Every file but the manifest, with its hash and size.
    expect(manifest.files.map((f) => f.path)).toEqual(EXPECTED_FILES);
    for (const f of manifest.files) expect(f.sha256).toBe(await sha256File(path.join(dir, f.path)));
    // Every input, with the hash of the file as it is in the export directory.
    expect(manifest.inputs.map((i) => i.source).sort()).toEqual(
      ['allocations.csv', 'app_instances.csv', 'events.csv', 'ledger_entries.csv', 'payment_sessions.csv', 'usage_records.csv'],
    );
    for (const i of manifest.inputs) expect(i.sha256).toBe(await sha256File(path.join(BEFORE, i.source)));
  });

  test('the evidence holds the rows behind each violation, the ledger entries around them and the corrective entries', async () => {
    const { dir } = await snapshot([]);
    const ev = (t: string) => path.join(dir, 'evidence', `${t}.parquet`);
    expect(await idsIn(ev('usage_records'), 'usage_record_id')).toEqual(['ur_7', 'ur_9']);
    // le_2/le_9 debit ur_7; le_5 is reversed by le_6; le_6 and le_8 are corrective entries in scope.
    expect(await idsIn(ev('ledger_entries'), 'ledger_entry_id')).toEqual(['le_2', 'le_5', 'le_6', 'le_8', 'le_9']);
    expect(await idsIn(ev('payment_sessions'), 'payment_session_id')).toEqual(['ps_5']);
    expect(await idsIn(ev('app_instances'), 'app_instance_id')).toEqual(['app_2']);
    expect(await idsIn(ev('allocations'), 'allocation_id')).toEqual(['alloc_7']);

    // Provenance travels with the rows.
    const db = await Db.open();
    try {
      const rows = await db.all<{ id: string; file: string; line: bigint }>(
        `SELECT usage_record_id AS id, __file AS file, __line AS line FROM read_parquet($f) ORDER BY 1`,
        { f: ev('usage_records') },
      );
      expect(rows).toEqual([
        { id: 'ur_7', file: 'usage_records.csv', line: 8n },
        { id: 'ur_9', file: 'usage_records.csv', line: 10n },
      ]);
    } finally {
      db.close();
    }
  });

  test('the timeline orders the rows and events carrying the violations\' correlation ids by time', async () => {
    const { dir } = await snapshot([]);
    const timeline = JSON.parse(await readFile(path.join(dir, 'timeline.json'), 'utf8'));
    expect(timeline.correlation_ids.map((c: { correlation_id: string }) => c.correlation_id)).toEqual(['corr-app2', 'corr-b7', 'corr-ps5']);
    expect(timeline.truncated).toBe(false);
    const at = timeline.entries.map((e: { at: string }) => e.at);
    expect(at).toEqual([...at].sort());
    expect(timeline.entries).toContainEqual(
      expect.objectContaining({ at: '2026-11-20T06:02:00Z', event: 'ledger usage_debit', table: 'ledger_entries', id: 'le_9', correlation_id: 'corr-app2' }),
    );
    expect(timeline.entries).toContainEqual(
      expect.objectContaining({ at: '2026-11-20T09:00:00Z', event: 'provisioning.releasing.completed', table: 'events', id: 'ev_12' }),
    );
  });

  test('the timeline is bounded: per id the first and last entries are kept, and the totals say so', async () => {
    const exports = path.join(await tempDir('recon-snap-'), 'exports');
    await cp(BEFORE, exports, { recursive: true });
    // 30 more events of the ps_5 incident, a minute apart.
    const noise = Array.from({ length: 30 }, (_, i) => {
      const at = `2026-11-20T10:${String(10 + i).padStart(2, '0')}:00Z`;
      return `ev_n${String(i).padStart(2, '0')},webhook.retry,${at},,,,corr-ps5,trace-ps5`;
    });
    await appendFile(path.join(exports, 'events.csv'), noise.join('\n') + '\n');
    const dir = path.join(await tempDir('recon-snap-'), 'snap');
    expect(await snapshotCommand(['--exports', exports, '--label', 'x', '--out', dir], captureIo())).toBe(1);
    const timeline = JSON.parse(await readFile(path.join(dir, 'timeline.json'), 'utf8'));
    const ps5 = timeline.entries.filter((e: { correlation_id: string }) => e.correlation_id === 'corr-ps5').map((e: { id: string }) => e.id);
    // 32 entries for corr-ps5: ps_5 created + completed, then ev_n00..ev_n29; the first 10 and the last 10 are kept.
    expect(ps5).toEqual(['ps_5', 'ps_5', ...['00', '01', '02', '03', '04', '05', '06', '07'].map((n) => `ev_n${n}`), ...Array.from({ length: 10 }, (_, i) => `ev_n${20 + i}`)]);
    expect(timeline).toMatchObject({ entries_total: 48, entries_kept: 36, truncated: true });
    expect(timeline.correlation_ids).toContainEqual(expect.objectContaining({ correlation_id: 'corr-ps5', entries: 32 }));
  });

  test('is deterministic: two snapshots of the same exports differ only in manifest.json', async () => {
    const a = await snapshot([]);
    const b = await snapshot([]);
    const ha = await hashTree(a.dir);
    const hb = await hashTree(b.dir);
    delete ha['manifest.json'];
    delete hb['manifest.json'];
    expect(Object.keys(ha)).toHaveLength(EXPECTED_FILES.length);
    expect(ha).toEqual(hb);
    expect((await manifestOf(a.dir)).files).toEqual((await manifestOf(b.dir)).files);
  });

  test('--correlation-id narrows the violations, the findings and the evidence', async () => {
    const { code, dir } = await snapshot(['--correlation-id', 'corr-app2']);
    expect(code).toBe(1);
    const csv = await readFile(path.join(dir, 'violations.csv'), 'utf8');
    expect(csv.trim().split('\n').slice(1).map((l) => l.split(',').slice(0, 4).join(' '))).toEqual([
      'ledger.duplicate_debit error usage_record ur_7',
      'usage.debit_mismatch error usage_record ur_7',
    ]);
    const findings = JSON.parse(await readFile(path.join(dir, 'findings.json'), 'utf8'));
    expect(findings.totals.violations).toBe(2);
    // one money movement (ur_7's extra EUR 2.50 debit), priced by both invariants
    expect(findings.totals.amount_minor_by_currency).toEqual({ EUR: 250 });
    expect(findings.totals.overlapping_amount_minor_by_currency).toEqual({ EUR: 500 });
    expect(findings.invariants.find((r: { id: string }) => r.id === 'usage.unbilled_closed')).toMatchObject({ status: 'pass', violations: 0 });
    expect((await manifestOf(dir)).scope).toEqual({ orgs: [], app_instances: [], correlation_ids: ['corr-app2'] });
    expect(await idsIn(path.join(dir, 'evidence', 'usage_records.parquet'), 'usage_record_id')).toEqual(['ur_7']);
  });

  test('--org narrows the evidence to the tenant', async () => {
    const { code, dir } = await snapshot(['--org', 'org_a']);
    expect(code).toBe(1);
    expect((await manifestOf(dir)).scope.orgs).toEqual(['org_a']);
    expect(await idsIn(path.join(dir, 'evidence', 'payment_sessions.parquet'), 'payment_session_id')).toEqual(['ps_5']);
    expect(await idsIn(path.join(dir, 'evidence', 'usage_records.parquet'), 'usage_record_id')).toEqual([]);
    // Only org_a's corrective entries (le_6 and the debit it reverses).
    expect(await idsIn(path.join(dir, 'evidence', 'ledger_entries.parquet'), 'ledger_entry_id')).toEqual(['le_5', 'le_6']);
  });

  test('refuses to write into a folder that is not empty', async () => {
    const dir = await tempDir('recon-snap-');
    await writeFile(path.join(dir, 'old.txt'), 'x');
    const io = captureIo();
    expect(await snapshotCommand(['--exports', BEFORE, '--label', 'x', '--out', dir], io)).toBe(2);
    expect(io.err.join('\n')).toMatch(/already exists and is not empty/);
  });

  test('--help prints usage; bad or missing arguments are exit 2 with a message', async () => {
    const help = captureIo();
    expect(await snapshotCommand(['--help'], help)).toBe(0);
    expect(help.out.join('\n')).toMatch(/Usage: recon snapshot/);
    const missing = captureIo();
    expect(await snapshotCommand(['--exports', BEFORE], missing)).toBe(2);
    expect(missing.err.join('\n')).toMatch(/--label, --out are required/);
    const unknown = captureIo();
    expect(await snapshotCommand(['--nope'], unknown)).toBe(2);
    expect(unknown.err.join('\n')).toMatch(/Unknown option '--nope'/);
  });
});

describe('recon verify', () => {
  test('passes on an untouched snapshot', async () => {
    const { dir } = await snapshot([]);
    const r = await verify([dir]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/OK, 12 file\(s\) match the manifest/);
  });

  test('names a file with one byte changed', async () => {
    const { dir } = await snapshot([]);
    const file = path.join(dir, 'evidence', 'ledger_entries.parquet');
    const bytes = await readFile(file);
    bytes[100] = bytes[100]! ^ 0xff;
    await writeFile(file, bytes);
    const r = await verify([dir]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/changed: evidence\/ledger_entries\.parquet/);
    expect(r.err).not.toMatch(/changed: findings\.json/);
  });

  test('names a missing file', async () => {
    const { dir } = await snapshot([]);
    await rm(path.join(dir, 'violations.csv'));
    const r = await verify([dir]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/missing: violations\.csv/);
  });

  test('names an added file, also in a new folder', async () => {
    const { dir } = await snapshot([]);
    await mkdir(path.join(dir, 'extra'));
    await writeFile(path.join(dir, 'extra', 'note.txt'), 'added later');
    await appendFile(path.join(dir, 'summary.md'), '\nedited\n');
    const r = await verify([dir]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/added: extra\/note\.txt/);
    expect(r.err).toMatch(/changed: summary\.md/);
  });

  test('without a readable manifest: exit 2 with a clear message', async () => {
    const empty = await tempDir('recon-snap-');
    const none = await verify([empty]);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/not a snapshot: cannot read manifest\.json/);

    const { dir } = await snapshot([]);
    await writeFile(path.join(dir, 'manifest.json'), '{ "label": ');
    const broken = await verify([dir]);
    expect(broken.code).toBe(2);
    expect(broken.err).toMatch(/manifest\.json: not valid JSON/);

    await writeFile(path.join(dir, 'manifest.json'), '{ "label": "x" }');
    const wrong = await verify([dir]);
    expect(wrong.code).toBe(2);
    expect(wrong.err).toMatch(/not a billing-recon snapshot manifest/);
  });

  test('--exports re-hashes the inputs; --manifest-sha256 pins the manifest itself', async () => {
    const exports = path.join(await tempDir('recon-snap-'), 'exports');
    await cp(BEFORE, exports, { recursive: true });
    const dir = path.join(await tempDir('recon-snap-'), 'snap');
    const io = captureIo();
    await snapshotCommand(['--exports', exports, '--label', 'x', '--out', dir], io);
    const sha = /manifest sha256 ([0-9a-f]{64})/.exec(io.out.join('\n'))?.[1];
    expect(sha).toBeDefined();

    expect((await verify([dir, '--exports', exports, '--manifest-sha256', sha!])).code).toBe(0);
    // Unpinned, verify shows the manifest's hash and says the manifest itself was not checked.
    const unpinned = await verify([dir]);
    expect(unpinned.code).toBe(0);
    expect(unpinned.out).toContain(`manifest sha256 ${sha}`);
    expect(unpinned.out).toMatch(/manifest\.json itself was not checked: compare sha256 [0-9a-f]{64} with the one recon snapshot printed, or pass --manifest-sha256/);
    await appendFile(path.join(exports, 'ledger_entries.csv'), 'le_99,org_a,u_a1,,promo_credit,credit,1,USD,,,,,,2026-11-20T01:00:00Z,,\n');
    await rm(path.join(exports, 'events.csv'));
    const r = await verify([dir, '--exports', exports]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/input changed: ledger_entries\.csv/);
    expect(r.err).toMatch(/input missing: events\.csv/);

    const m = await manifestOf(dir);
    m.label = 'rewritten';
    await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(m, null, 2) + '\n');
    const pinned = await verify([dir, '--manifest-sha256', sha!]);
    expect(pinned.code).toBe(1);
    expect(pinned.err).toMatch(/manifest changed: manifest\.json has sha256/);
  });

  test('--help and bad arguments', async () => {
    expect((await verify(['--help'])).code).toBe(0);
    expect((await verify([])).code).toBe(2);
    expect((await verify(['a', 'b'])).err).toMatch(/exactly one snapshot folder/);
  });
});
