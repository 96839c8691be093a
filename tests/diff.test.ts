import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'lossless-json';
import { beforeAll, describe, expect, test } from 'vitest';
import { auditExports } from '../src/audit.ts';
import { Db } from '../src/db.ts';
import { writeAuditOutputs } from '../src/outputs.ts';
import type { CommandIo } from '../src/cli/io.ts';
import { diffCommand, snapshotCommand } from '../src/cli/snapshot.ts';
import { tempDir } from './helpers/exports.ts';

const FIXTURES = path.resolve('fixtures/remediation');
const PAIRS = ['before', 'after-partial', 'after-incomplete', 'after-honest'] as const;
type Export = (typeof PAIRS)[number];

function captureIo(): CommandIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (l) => out.push(l), stderr: (l) => err.push(l) };
}

const snapCodes = {} as Record<Export, number>;

async function takeSnapshot(name: Export, extra: string[] = [], label: string = name): Promise<string> {
  const dir = path.join(await tempDir('recon-diff-snap-'), name);
  const io = captureIo();
  const code = await snapshotCommand(['--exports', path.join(FIXTURES, name), '--label', label, '--out', dir, ...extra], io);
  if (code === 2) throw new Error(io.err.join('\n'));
  if (extra.length === 0) snapCodes[name] = code;
  return dir;
}

async function auditFolder(name: Export): Promise<string> {
  const dir = path.join(await tempDir('recon-diff-audit-'), name);
  const run = await auditExports({ exportsDir: path.join(FIXTURES, name) });
  try {
    await writeAuditOutputs(run, dir);
  } finally {
    run.db.close();
  }
  return dir;
}

interface DiffJson {
  resolved: Array<{ invariant_id: string; entity_id: string }>;
  persisting: Array<{ invariant_id: string; entity_id: string; before: { amount_minor: unknown }; after: { amount_minor: unknown } }>;
  introduced: Array<{ invariant_id: string; entity_id: string; severity: string }>;
  checks: Record<string, { passed: boolean; details: string }>;
  money: Record<string, Record<string, unknown>>;
  money_by_severity: Record<string, Record<string, Record<string, unknown>>>;
  money_overlapping: Record<string, Record<string, unknown>>;
  reconciliation: { by_currency: unknown[]; explanations: Array<{ item: string; amount_minor: number; reason: string }> };
  corrective_entries: { available: boolean; reason?: string; unaudited: number; entries: Array<{ ledger_entry_id: string; entry_type: string; actor: string | null; correlation_id: string | null; missing: string[] }> };
  exit_code: number;
  strict: boolean;
}

async function diff(before: string, after: string, extra: string[] = []) {
  const out = await tempDir('recon-diff-out-');
  const io = captureIo();
  const code = await diffCommand([before, after, '--out', out, ...extra], io);
  const read = async (): Promise<DiffJson> => {
    // Money stays exact: integers come back as JSON integers (numbers here, all small).
    const doc = parse(await readFile(path.join(out, 'diff.json'), 'utf8'), null, (v) => Number(v)) as DiffJson;
    return doc;
  };
  return { code, out, err: io.err.join('\n'), stdout: io.out.join('\n'), read };
}

const keys = (xs: Array<{ invariant_id: string; entity_id: string }>) => xs.map((x) => `${x.invariant_id} ${x.entity_id}`);
const verdicts = (d: DiffJson) => Object.fromEntries(Object.entries(d.checks).map(([k, c]) => [k, c.passed]));

const snaps = {} as Record<Export, string>;
beforeAll(async () => {
  // Snapshots run no nested Vitest, so they can overlap: DuckDB works off the JS thread.
  await Promise.all(PAIRS.map(async (name) => void (snaps[name] = await takeSnapshot(name))));
});

describe('the remediation fixtures', () => {
  test.each(PAIRS)('%s: the snapshot holds exactly the violations of its expected.json', async (name) => {
    const expected = JSON.parse(await readFile(path.join(FIXTURES, name, 'expected.json'), 'utf8')) as {
      exit_code: number;
      skipped: string[];
      violations: Array<{ invariant_id: string; entity_id: string }>;
    };
    const csv = (await readFile(path.join(snaps[name], 'violations.csv'), 'utf8')).trim().split('\n').slice(1);
    expect(csv.map((l) => l.split(',')).map(([id, , , entity]) => ({ invariant_id: id, entity_id: entity }))).toEqual(expected.violations);
    const findings = JSON.parse(await readFile(path.join(snaps[name], 'findings.json'), 'utf8')) as {
      invariants: Array<{ id: string; status: string; error?: string }>;
    };
    expect(findings.invariants.filter((r) => r.status === 'skipped').map((r) => r.id)).toEqual(expected.skipped);
    expect(findings.invariants.filter((r) => r.error !== undefined)).toEqual([]);
    expect(snapCodes[name]).toBe(expected.exit_code);
  });
});

describe('recon diff of two snapshots', () => {
  test('a botched remediation: some drift fixed, some left, a duplicate credit introduced', async () => {
    const r = await diff(snaps.before, snaps['after-partial']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`wrote ${path.join(r.out, 'diff.json')} and ${path.join(r.out, 'diff.html')}`);
    const d = await r.read();
    expect(keys(d.resolved)).toEqual(['payments.completed_without_credit ps_5', 'usage.unbilled_closed ur_9']);
    expect(keys(d.persisting)).toEqual(['ledger.duplicate_debit ur_7', 'usage.debit_mismatch ur_7']);
    expect(keys(d.introduced)).toEqual(['ledger.duplicate_credit ps_5', 'ledger.unaudited_adjustment le_13']);
    expect(verdicts(d)).toEqual({ no_duplicates_introduced: false, no_unresolved_drift: false, no_new_drift: false, every_check_comparable: true });
    expect(d.checks['no_duplicates_introduced']!.details).toMatch(/ledger\.duplicate_credit ps_5/);
    // Each money movement once: ur_7's double debit (duplicate_debit and debit_mismatch, EUR 2.50
    // each) is one movement; ps_5 was uncredited before and is credited twice after, so its USD
    // 40.00 is still at stake (persisting), not resolved and introduced again.
    expect(d.money).toEqual({
      before: { EUR: 2050, USD: 4000 },
      after: { EUR: 500, USD: 4000 },
      resolved: { EUR: 1800 },
      persisting_before: { EUR: 250, USD: 4000 },
      persisting_after: { EUR: 250, USD: 4000 },
      introduced: { EUR: 250 },
    });
    // the goodwill credit le_13 is a warning only; the per-violation sums overlap
    expect(d.money_by_severity['warn']!['introduced']).toEqual({ EUR: 250 });
    expect(d.money_by_severity['error']!['introduced']).toEqual({});
    expect(d.money_overlapping).toEqual({
      before: { EUR: 2300, USD: 4000 },
      after: { EUR: 750, USD: 4000 },
      resolved: { EUR: 1800, USD: 4000 },
      persisting_before: { EUR: 500 },
      persisting_after: { EUR: 500 },
      introduced: { EUR: 250, USD: 4000 },
    });
    // EUR 18.00 resolved (ur_9, billed by a re-posted debit, not a corrective entry) against the
    // EUR 2.50 goodwill credit, which corrects nothing resolved: both reasons are listed.
    expect(d.reconciliation.by_currency).toEqual([{ currency: 'EUR', resolved_minor: 1800, corrective_minor: 250, difference_minor: 1550 }]);
    expect(d.reconciliation.explanations.map((e) => [e.item, e.amount_minor])).toEqual([
      ['ledger_entry:le_13', -250],
      ['usage_record:ur_9', 1800],
    ]);
    // The goodwill credit was posted without an actor: listed and flagged.
    expect(d.corrective_entries.available).toBe(true);
    expect(d.corrective_entries.entries).toEqual([
      expect.objectContaining({ ledger_entry_id: 'le_13', entry_type: 'adjustment_credit', actor: null, correlation_id: 'corr-fix-goodwill', missing: ['actor'] }),
    ]);
    expect(d.corrective_entries.unaudited).toBe(1);
    expect(r.err).toMatch(/1 corrective ledger entry without actor or correlation id/);
    expect(r.err).toMatch(/1 error-severity violation\(s\) introduced/);

    expect((await diff(snaps.before, snaps['after-partial'], ['--strict'])).code).toBe(1);
  });

  test('an incomplete remediation: nothing introduced, drift persists; exit 0, or 1 with --strict', async () => {
    const r = await diff(snaps.before, snaps['after-incomplete']);
    expect(r.code).toBe(0);
    const d = await r.read();
    expect(keys(d.resolved)).toEqual(['payments.completed_without_credit ps_5', 'usage.unbilled_closed ur_9']);
    expect(keys(d.persisting)).toEqual(['ledger.duplicate_debit ur_7', 'usage.debit_mismatch ur_7']);
    expect(keys(d.introduced)).toEqual([]);
    expect(verdicts(d)).toEqual({ no_duplicates_introduced: true, no_unresolved_drift: false, no_new_drift: true, every_check_comparable: true });
    expect(d.corrective_entries.entries).toEqual([]);

    const strict = await diff(snaps.before, snaps['after-incomplete'], ['--strict']);
    expect(strict.code).toBe(1);
    expect((await strict.read()).strict).toBe(true);
    expect(strict.err).toMatch(/2 error-severity violation\(s\) persist \(--strict\)/);
  });

  test('an honest remediation passes every check, with audited corrective entries', async () => {
    for (const flags of [[], ['--strict']]) {
      const r = await diff(snaps.before, snaps['after-honest'], flags);
      expect(r.code).toBe(0);
      const d = await r.read();
      expect(keys(d.resolved)).toEqual([
        'ledger.duplicate_debit ur_7',
        'payments.completed_without_credit ps_5',
        'usage.debit_mismatch ur_7',
        'usage.unbilled_closed ur_9',
      ]);
      expect(d.persisting).toEqual([]);
      expect(d.introduced).toEqual([]);
      expect(verdicts(d)).toEqual({ no_duplicates_introduced: true, no_unresolved_drift: true, no_new_drift: true, every_check_comparable: true });
      expect(d.money['after']).toEqual({});
      expect(d.corrective_entries.entries.map((e) => [e.ledger_entry_id, e.entry_type, e.actor, e.correlation_id, e.missing])).toEqual([
        ['le_11', 'reversal', 'ops@example.com', 'corr-fix-3', []],
        ['le_13', 'adjustment_credit', 'finance@example.com', 'corr-fix-5', []],
      ]);
      expect(d.corrective_entries.unaudited).toBe(0);
    }
  });

  test('within one tenant: only a warning is introduced, so exit 0, and 1 with --strict', async () => {
    const [before, after] = await Promise.all([takeSnapshot('before', ['--org', 'org_b']), takeSnapshot('after-partial', ['--org', 'org_b'])]);
    const r = await diff(before, after);
    expect(r.code).toBe(0);
    const d = await r.read();
    expect(keys(d.resolved)).toEqual(['usage.unbilled_closed ur_9']);
    expect(keys(d.persisting)).toEqual(['ledger.duplicate_debit ur_7', 'usage.debit_mismatch ur_7']);
    expect(d.introduced.map((v) => [v.invariant_id, v.entity_id, v.severity])).toEqual([['ledger.unaudited_adjustment', 'le_13', 'warn']]);
    expect(verdicts(d)).toEqual({ no_duplicates_introduced: true, no_unresolved_drift: false, no_new_drift: false, every_check_comparable: true });
    expect((await diff(before, after, ['--strict'])).code).toBe(1);
  });

  test('waived violations are listed but neither fail a check nor count as money at stake', async () => {
    const config = path.join(await tempDir('recon-diff-'), 'recon.config.json');
    await writeFile(
      config,
      JSON.stringify({
        waivers: [
          { invariant: 'ledger.duplicate_debit', entity_id: 'ur_7', reason: 'INC-42: customer refunded out of band' },
          { invariant: 'usage.debit_mismatch', entity_id: 'ur_7', reason: 'INC-42: customer refunded out of band' },
        ],
      }),
    );
    const [before, after] = await Promise.all([takeSnapshot('before', ['--config', config]), takeSnapshot('after-incomplete', ['--config', config])]);
    const r = await diff(before, after, ['--strict']);
    expect(r.code).toBe(0);
    const d = await r.read();
    expect(keys(d.persisting)).toEqual(['ledger.duplicate_debit ur_7', 'usage.debit_mismatch ur_7']);
    expect(d.persisting.map((p) => (p.after as { waived?: boolean }).waived)).toEqual([true, true]);
    expect(verdicts(d)).toEqual({ no_duplicates_introduced: true, no_unresolved_drift: true, no_new_drift: true, every_check_comparable: true });
    expect(d.money['persisting_after']).toEqual({});
  });

  test('diff.parquet holds every matched key with its status and money before and after', async () => {
    const r = await diff(snaps.before, snaps['after-partial']);
    const db = await Db.open();
    try {
      const rows = await db.all(
        `SELECT invariant_id, entity_id, status, severity, before_amount_minor, after_amount_minor, waived FROM read_parquet($f)`,
        { f: path.join(r.out, 'diff.parquet') },
      );
      expect(rows).toEqual([
        { invariant_id: 'ledger.duplicate_credit', entity_id: 'ps_5', status: 'introduced', severity: 'error', before_amount_minor: null, after_amount_minor: 4000n, waived: false },
        { invariant_id: 'ledger.duplicate_debit', entity_id: 'ur_7', status: 'persisting', severity: 'error', before_amount_minor: 250n, after_amount_minor: 250n, waived: false },
        { invariant_id: 'ledger.unaudited_adjustment', entity_id: 'le_13', status: 'introduced', severity: 'warn', before_amount_minor: null, after_amount_minor: 250n, waived: false },
        { invariant_id: 'payments.completed_without_credit', entity_id: 'ps_5', status: 'resolved', severity: 'error', before_amount_minor: 4000n, after_amount_minor: null, waived: false },
        { invariant_id: 'usage.debit_mismatch', entity_id: 'ur_7', status: 'persisting', severity: 'error', before_amount_minor: 250n, after_amount_minor: 250n, waived: false },
        { invariant_id: 'usage.unbilled_closed', entity_id: 'ur_9', status: 'resolved', severity: 'error', before_amount_minor: 1800n, after_amount_minor: null, waived: false },
      ]);
    } finally {
      db.close();
    }
  });

  test('refuses two snapshots of different scopes', async () => {
    const scoped = await takeSnapshot('after-partial', ['--org', 'org_a']);
    const r = await diff(snaps.before, scoped);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/different scopes/);
    expect(r.err).toMatch(/BEFORE .*: everything/);
    expect(r.err).toMatch(/AFTER .*: org org_a/);

    const byCorrelation = await takeSnapshot('after-partial', ['--correlation-id', 'corr-app2']);
    const c = await diff(snaps.before, byCorrelation);
    expect(c.code).toBe(2);
    expect(c.err).toMatch(/correlation id corr-app2/);
  });

  test('refuses a snapshot that fails verification', async () => {
    const copy = path.join(await tempDir('recon-diff-'), 'after');
    await cp(snaps['after-honest'], copy, { recursive: true });
    await writeFile(path.join(copy, 'violations.csv'), 'invariant_id,entity_id\n');
    const r = await diff(snaps.before, copy);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/AFTER snapshot .* fails verification/);
    expect(r.err).toMatch(/changed: violations\.csv/);
  });

  test('diff.html is self-contained, escaped and under a strict CSP', async () => {
    const evil = await takeSnapshot('after-partial', [], '<script>alert("x")</script> & co');
    const r = await diff(snaps.before, evil);
    const html = await readFile(path.join(r.out, 'diff.html'), 'utf8');
    expect(html).toMatch(/<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;; style-src &#39;sha256-[A-Za-z0-9+/=]+&#39;/);
    expect(html).not.toMatch(/<script/i);
    expect(html).toContain('&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co');
    expect(html).not.toMatch(/(src|href)="https?:/);
    for (const text of ['no_duplicates_introduced', 'ledger.duplicate_credit', 'missing actor', 'EUR 18.00']) expect(html).toContain(text);
  });
});

describe('recon diff of two audit output folders', () => {
  test('compares the violations; corrective entries are unavailable', async () => {
    const [before, after] = await Promise.all([auditFolder('before'), auditFolder('after-partial')]);
    const r = await diff(before, after);
    expect(r.code).toBe(1);
    const d = await r.read();
    expect(keys(d.resolved)).toEqual(['payments.completed_without_credit ps_5', 'usage.unbilled_closed ur_9']);
    expect(keys(d.persisting)).toEqual(['ledger.duplicate_debit ur_7', 'usage.debit_mismatch ur_7']);
    expect(keys(d.introduced)).toEqual(['ledger.duplicate_credit ps_5', 'ledger.unaudited_adjustment le_13']);
    expect(d.corrective_entries).toMatchObject({ available: false, entries: [] });
    expect(d.corrective_entries.reason).toMatch(/unavailable/);
  });

  test('refuses different findings schema versions', async () => {
    const [before, after] = await Promise.all([auditFolder('before'), auditFolder('after-honest')]);
    const file = path.join(after, 'findings.json');
    await writeFile(file, (await readFile(file, 'utf8')).replace('"schema_version": 1', '"schema_version": 2'));
    const r = await diff(before, after);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/schema_version differs \(BEFORE 1, AFTER 2\)/);
  });

  test('refuses a folder that is neither', async () => {
    const r = await diff(path.join(FIXTURES, 'before'), snaps['after-honest']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/neither a snapshot \(no manifest\.json\) nor an audit output folder/);
  });
});

describe('what the diff cannot vouch for', () => {
  async function auditOf(exportsDir: string): Promise<string> {
    const dir = path.join(await tempDir('recon-diff-audit-'), 'out');
    const run = await auditExports({ exportsDir });
    try {
      await writeAuditOutputs(run, dir);
    } finally {
      run.db.close();
    }
    return dir;
  }

  test('a check skipped on one side is not comparable: never resolved, and it fails the recovery criteria', async () => {
    const events = path.resolve('fixtures/events_drift');
    const withoutEvents = await tempDir('recon-diff-export-');
    await cp(events, withoutEvents, { recursive: true });
    await rm(path.join(withoutEvents, 'events.csv'));
    const [before, after] = await Promise.all([auditOf(events), auditOf(withoutEvents)]);
    const r = await diff(before, after);
    expect(r.code).toBe(1);
    const d = (await r.read()) as DiffJson & { summary: { not_comparable: number; not_comparable_invariants: Array<{ invariant_id: string; before: string; after: string }> } };
    expect(keys(d.resolved)).toEqual([]);
    expect(d.summary.not_comparable).toBe(4);
    expect(d.summary.not_comparable_invariants.map((n) => [n.invariant_id, n.before, n.after.split(':')[0]])).toEqual([
      ['events.allocation_status_mismatch', 'ran', 'skipped'],
      ['events.payment_event_mismatch', 'ran', 'skipped'],
    ]);
    expect(verdicts(d)).toEqual({ no_duplicates_introduced: true, no_unresolved_drift: false, no_new_drift: true, every_check_comparable: false });
    expect(r.err).toMatch(/2 check\(s\) skipped or failed on one side/);
  });

  test('a side that is not a verified snapshot is said loudly, and refused under --strict', async () => {
    const forged = path.join(await tempDir('recon-diff-forged-'), 'after');
    await cp(snaps['after-honest'], forged, { recursive: true });
    await rm(path.join(forged, 'manifest.json'));
    const r = await diff(snaps.before, forged);
    expect(r.err).toMatch(/UNVERIFIED: AFTER .* is not a verified snapshot \(no manifest\.json; it holds evidence\/, so it looks like a snapshot whose manifest was removed\)/);
    const strict = await diff(snaps.before, forged, ['--strict']);
    expect(strict.code).toBe(2);
    expect(strict.err).toMatch(/--strict compares verified snapshots only/);
  });
});

describe('recon diff arguments', () => {
  test('--help, and bad arguments are exit 2', async () => {
    const io = captureIo();
    expect(await diffCommand(['--help'], io)).toBe(0);
    expect(io.out.join('\n')).toMatch(/Usage: recon diff BEFORE AFTER --out DIR/);
    const missing = captureIo();
    expect(await diffCommand([snaps.before, snaps['after-honest']], missing)).toBe(2);
    expect(missing.err.join('\n')).toMatch(/--out DIR is required/);
    const one = captureIo();
    expect(await diffCommand([snaps.before, '--out', 'x'], one)).toBe(2);
    expect(one.err.join('\n')).toMatch(/give two folders/);
  });
});
