import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, test } from 'vitest';
import { tempDir } from './helpers/exports.ts';

const run = promisify(execFile);

interface JsonReport {
  testResults: Array<{ assertionResults: Array<{ title: string; status: string; failureMessages: string[] }> }>;
}

/** The audit as plain Vitest, exactly as an on-call engineer would run it. */
async function vitestOn(fixture: string) {
  const report = path.join(await tempDir(), 'report.json');
  const result = await run('npx', ['vitest', 'run', 'tests/invariants', '--project', 'invariants', '--reporter=json', `--outputFile=${report}`], {
    env: { ...process.env, RECON_EXPORTS: `fixtures/${fixture}`, NO_COLOR: '1' },
  }).then(
    () => ({ code: 0 }),
    (err: { code: number }) => ({ code: err.code }),
  );
  const json = JSON.parse(await readFile(report, 'utf8')) as JsonReport;
  const cases = json.testResults.flatMap((f) => f.assertionResults);
  return { code: result.code, cases };
}

async function expected(fixture: string) {
  return JSON.parse(await readFile(`fixtures/${fixture}/expected.json`, 'utf8')) as {
    skipped: string[];
    violations: Array<{ invariant_id: string; entity_id: string }>;
  };
}

for (const fixture of ['events_drift', 'optional_tables_absent']) {
  test(`RECON_EXPORTS=fixtures/${fixture}: exactly the violated invariants fail, and say which entities`, async () => {
    const [{ code, cases }, exp] = await Promise.all([vitestOn(fixture), expected(fixture)]);
    const violated = [...new Set(exp.violations.map((v) => v.invariant_id))].sort();
    expect(cases.filter((c) => c.status === 'failed').map((c) => c.title).sort()).toEqual(violated);
    expect(cases.filter((c) => c.status === 'skipped').map((c) => c.title).sort()).toEqual(exp.skipped);
    expect(code).toBe(violated.length > 0 ? 1 : 0);
    for (const v of exp.violations) {
      const failure = cases.find((c) => c.title === v.invariant_id)!.failureMessages.join('\n');
      expect(failure).toContain(v.entity_id);
    }
  });
}
