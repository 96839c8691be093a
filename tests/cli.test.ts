import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test, vi } from 'vitest';
import { main } from '../src/cli/main.ts';
import { parseFindings } from '../src/findings/io.ts';
import { ALL_CHECKS, CATALOG } from '../src/catalog/index.ts';
import { tempDir } from './helpers/exports.ts';

const run = promisify(execFile);

async function cli(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((m: unknown) => void out.push(String(m)));
  const error = vi.spyOn(console, 'error').mockImplementation((m: unknown) => void err.push(String(m)));
  const write = (into: string[]) => (chunk: unknown) => {
    into.push(String(chunk).replace(/\n$/, ''));
    return true;
  };
  const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(write(out) as typeof process.stdout.write);
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(write(err) as typeof process.stderr.write);
  try {
    return { code: await main(args), stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
    stdout.mockRestore();
    stderr.mockRestore();
  }
}

describe('recon list and explain', () => {
  test('list prints every invariant once', async () => {
    const { code, stdout } = await cli(['list']);
    expect(code).toBe(0);
    const ids = stdout.split('\n').slice(1).map((l) => l.split(/\s+/)[0]);
    expect(ids).toEqual(ALL_CHECKS.map((i) => i.id));
    expect(ids.slice(-3)).toEqual(['contract.stale_export', 'waivers.expired', 'waivers.stale']);
  });

  test('explain shows meaning, runbook step, tables and SQL', async () => {
    const { code, stdout } = await cli(['explain', 'usage.missing_open']);
    expect(code).toBe(0);
    const inv = CATALOG.find((i) => i.id === 'usage.missing_open')!;
    expect(stdout).toContain(inv.explanation);
    expect(stdout).toContain(`Runbook step: ${inv.runbook}`);
    expect(stdout).toContain(`needs: ${inv.needs.join(', ')}`);
    expect(stdout).toMatch(/SELECT/);
  });

  test('explain of an unknown id exits 2', async () => {
    expect(await cli(['explain', 'usage.nope'])).toMatchObject({ code: 2, stderr: 'recon: recon explain: unknown invariant "usage.nope" (see recon list)' });
  });

  test('bad arguments exit 2 with a message, and --help exits 0', async () => {
    expect(await cli(['audit', '--nope'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/^recon: recon audit: Unknown option '--nope'/) });
    expect(await cli(['audit'])).toMatchObject({ code: 2, stderr: 'recon: recon audit: --exports DIR (or RECON_EXPORTS, or --bigquery PROJECT.DATASET) is required' });
    expect(await cli(['frobnicate'])).toMatchObject({ code: 2, stderr: 'recon: unknown command "frobnicate" (see recon --help)' });
    expect(await cli(['audit', '--help'])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Usage: recon audit/) });
  });

  test('--engine takes duckdb or bigquery, and bigquery needs the dataset it runs in', async () => {
    expect(await cli(['audit', '--engine', 'bigquery', '--exports', 'fixtures/clean'])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--engine bigquery runs the checks inside a dataset: give it with --bigquery PROJECT\.DATASET/),
    });
    expect(await cli(['audit', '--engine', 'spark', '--exports', 'fixtures/clean'])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--engine spark: not an engine \(duckdb or bigquery\)/),
    });
  });
});

describe('recon audit through the real binary', () => {
  test('writes every output, exits 0 on a clean export; a CI log gets stage lines, one line per invariant and a tally', async () => {
    const out = await tempDir();
    const { stdout, stderr } = await run('node', ['bin/recon.js', 'audit', '--exports', 'fixtures/clean', '--out', out]);
    expect(stdout).toContain(`recon audit: wrote ${out}/`);
    expect(stderr.split('\n').filter(Boolean).every((l) => l.startsWith('recon audit: '))).toBe(true);
    expect(stderr).toContain('recon audit: loading usage_records (usage_records.csv)');
    expect(stdout).toMatch(/^PASS {3}usage\.missing_open {2,}0$/m);
    expect(stdout).toContain('PASS=30 WARN=0 ERROR=0 SKIP=0 WAIVED=0');
    expect(stdout.split('\n').filter(Boolean).at(-1)).toBe(`recon audit: PASSED; see ${path.join(out, 'summary.md')}`);
    for (const text of [stdout, stderr]) {
      expect(text).not.toMatch(/\x1b/);
      expect(text).not.toMatch(/JUNIT report|[Vv]itest/);
    }
    for (const f of ['findings.json', 'violations.csv', 'violations.parquet', 'junit.xml', 'summary.md', 'index.html']) {
      expect((await readFile(path.join(out, f))).length, f).toBeGreaterThan(0);
    }
    const summary = await readFile(path.join(out, 'summary.md'), 'utf8');
    expect(summary).toMatch(/^# billing-recon audit: no error-severity violations/);
  });

  test('--json: the findings on stdout, every log line on stderr', async () => {
    const out = await tempDir();
    const { code, stdout, stderr } = await run('node', ['bin/recon.js', 'audit', '--exports', 'fixtures/events_drift', '--json', '--out', out]).then(
      (r) => ({ code: 0, ...r }),
      (err: { code: number; stdout: string; stderr: string }) => err,
    );
    expect(code).toBe(1);
    const findings = parseFindings(stdout);
    expect(findings.run_id).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{8}$/);
    expect(findings.generated_at).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(findings.durations_ms?.total).toBeGreaterThan(0);
    expect(findings.invariants.find((r) => r.id === 'payments.failed_reconcile')?.violations).toBe(2);
    expect(stderr).toMatch(/^FAIL {3}payments\.failed_reconcile +2 {2}EUR 20\.00, USD 30\.00$/m);
    expect(stderr).toMatch(/^WARN {3}events\.payment_event_mismatch +2 {2}EUR 70\.00$/m);
    expect(stderr).toContain('PASS=26 WARN=2 ERROR=2 SKIP=0 WAIVED=0  errors: EUR 20.00, USD 45.00  warnings: EUR 70.00');
    expect(stderr).toContain('recon audit: FAILED: 2 invariant(s) with error-severity violations (3 violations): payments.failed_reconcile, payments.completed_without_credit');
  });

  test('--org narrows the findings to one tenant', async () => {
    const out = await tempDir();
    const code = await cli(['audit', '--exports', 'fixtures/events_drift', '--org', 'org_b', '--out', out]);
    const csv = await readFile(path.join(out, 'violations.csv'), 'utf8');
    const orgColumn = csv.split('\n')[0]!.split(',').indexOf('org_id');
    const orgs = new Set(csv.trimEnd().split('\n').slice(1).map((l) => l.split(',')[orgColumn]));
    expect([...orgs]).toEqual(['org_b']);
    expect(code.code).toBe(1);
  });
});

describe('one verdict: exit code, junit.xml and the console agree', () => {
  const messages = (xml: string) => [...xml.matchAll(/<(?:failure|error) message="([^"]*)"/g)].map((m) => m[1]);

  test('warnings only: exit 0, a passing junit.xml that shows the warning, and --quiet prints only the verdict', async () => {
    const out = await tempDir();
    const r = await cli(['audit', '--exports', 'fixtures/events_drift', '--select', 'events', '--quiet', '--out', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`recon audit: PASSED with 2 warning(s): events.allocation_status_mismatch, events.payment_event_mismatch; see ${path.join(out, 'summary.md')}`);
    expect(r.stderr).toBe('');
    const xml = await readFile(path.join(out, 'junit.xml'), 'utf8');
    expect(xml).toMatch(/^<testsuites name="billing-recon" tests="30" failures="0" errors="0" skipped="28"/m);
    expect(xml).toContain('<property name="warning" value="2 violations, EUR 70.00; e.g. ps_2"/>');
    expect(xml).toContain('<system-out>WARNING (does not fail the audit): events.payment_event_mismatch (warn)');
    expect(xml).toContain('<skipped message="not selected (--select events)"/>');
  });

  test('--warn-error: the same warnings fail everywhere, with one-line messages and full rows, no stack frames', async () => {
    const out = await tempDir();
    const r = await cli(['audit', '--exports', 'fixtures/events_drift', '--select', 'events', '--warn-error', '--out', out]);
    expect(r.code).toBe(1);
    const xml = await readFile(path.join(out, 'junit.xml'), 'utf8');
    expect(xml).toMatch(/^<testsuites name="billing-recon" tests="30" failures="2" errors="0"/m);
    expect(messages(xml)).toEqual(['2 violations; e.g. alloc_1', '2 violations, EUR 70.00; e.g. ps_2']);
    expect([...xml.matchAll(/<testsuite name="([^"]+)"/g)].map((m) => m[1])).toEqual(
      ['contract', 'usage', 'ledger', 'payments', 'app_runtime', 'events', 'waivers'].map((f) => `billing-recon.${f}`),
    );
    // The body keeps every id whole (correlation ids are searchable) and prices money as money.
    expect(xml).toContain('entity=ps_2  org=org_b  user=u_b1  ledger_entry=le_4  payment_session=ps_2  money=EUR 50.00  correlation_id=corr-ps2  trace_id=trace-ps2');
    expect(xml).not.toMatch(/^\s+at |\.ts:\d+:\d+/m);
  });
});
