import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, test } from 'vitest';
import { tempDir } from './helpers/exports.ts';

const run = promisify(execFile);

interface JsonReport {
  numTotalTests: number;
  testResults: Array<{ assertionResults: Array<{ title: string; status: string; failureMessages: string[] }> }>;
}

/**
 * The audit as plain Vitest, exactly as the README tells an on-call engineer to run it:
 * `RECON_EXPORTS=DIR npx vitest run --project invariants` (only the audit suite, never the
 * project's own tests/invariants-*.test.ts).
 */
async function vitestOn(fixture: string, env: Record<string, string> = {}) {
  const dir = await tempDir();
  const json = path.join(dir, 'report.json');
  const junit = path.join(dir, 'junit.xml');
  const result = await run(
    'npx',
    ['vitest', 'run', '--project', 'invariants', '--reporter=json', '--reporter=junit', `--outputFile.json=${json}`, `--outputFile.junit=${junit}`],
    { env: { ...process.env, RECON_EXPORTS: `fixtures/${fixture}`, NO_COLOR: '1', ...env } },
  ).then(
    () => ({ code: 0 }),
    (err: { code: number }) => ({ code: err.code }),
  );
  const report = JSON.parse(await readFile(json, 'utf8')) as JsonReport;
  const cases = report.testResults.flatMap((f) => f.assertionResults);
  return { code: result.code, cases, total: report.numTotalTests, junit: await readFile(junit, 'utf8') };
}

async function expected(fixture: string) {
  return JSON.parse(await readFile(`fixtures/${fixture}/expected.json`, 'utf8')) as {
    skipped: string[];
    violations: Array<{ invariant_id: string; entity_id: string }>;
  };
}

const WARN_INVARIANTS = new Set(['usage.billing_lag', 'usage.outside_allocation_window', 'ledger.unaudited_adjustment', 'events.allocation_status_mismatch', 'events.payment_event_mismatch']);

for (const fixture of ['events_drift', 'optional_tables_absent']) {
  test.concurrent(`RECON_EXPORTS=fixtures/${fixture}: exactly the error-severity invariants fail and say which entities; warnings pass`, async () => {
    const [{ code, cases, total }, exp] = await Promise.all([vitestOn(fixture), expected(fixture)]);
    // The catalog's 27 invariants and the audit's own 3 checks, nothing else.
    expect(total).toBe(30);
    const failing = [...new Set(exp.violations.map((v) => v.invariant_id))].filter((id) => !WARN_INVARIANTS.has(id)).sort();
    expect(cases.filter((c) => c.status === 'failed').map((c) => c.title).sort()).toEqual(failing);
    expect(cases.filter((c) => c.status === 'skipped').map((c) => c.title).sort()).toEqual(exp.skipped);
    expect(code).toBe(failing.length > 0 ? 1 : 0);
    for (const v of exp.violations.filter((x) => failing.includes(x.invariant_id))) {
      const failure = cases.find((c) => c.title === v.invariant_id)!.failureMessages.join('\n');
      expect(failure).toContain(`entity=${v.entity_id}`);
    }
  });
}

test.concurrent('warnings only: plain Vitest passes and shows each warning as an annotation; RECON_WARN_ERROR=1 fails them', async () => {
  const [warn, strict] = await Promise.all([
    vitestOn('events_drift', { RECON_SELECT: 'events' }),
    vitestOn('events_drift', { RECON_SELECT: 'events', RECON_WARN_ERROR: '1' }),
  ]);
  expect(warn.code).toBe(0);
  expect(warn.cases.filter((c) => c.status === 'passed').map((c) => c.title)).toEqual(['events.allocation_status_mismatch', 'events.payment_event_mismatch']);
  expect(warn.junit).toContain('<property name="warning" value="WARNING: 2 violations, EUR 70.00; e.g. ps_2">');
  expect(strict.code).toBe(1);
  expect(strict.cases.filter((c) => c.status === 'failed').map((c) => c.title)).toEqual(['events.allocation_status_mismatch', 'events.payment_event_mismatch']);
});
