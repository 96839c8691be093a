import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { parse } from 'csv-parse/sync';
import path from 'node:path';
import { beforeAll, describe, expect, test, vi } from 'vitest';
import { auditExports, exitCodeFor } from '../src/audit.ts';
import { main } from '../src/cli/main.ts';
import type { Findings } from '../src/findings/types.ts';
import { parseFindings } from '../src/findings/io.ts';
import { writeAuditOutputs } from '../src/outputs/files.ts';
import { renderReports } from '../src/report/render.ts';
import { tempDir } from './helpers/exports.ts';

interface Expected {
  description: string;
  exit_code: number;
  skipped: string[];
  violations: Array<{ invariant_id: string; entity_id: string }>;
}

const FIXTURES = path.resolve('fixtures');

/**
 * Every folder under fixtures/ with an expected.json is a scenario with a known, exact outcome
 * (folders such as fixtures/remediation hold exports one level down and have tests of their own).
 */
const scenarios = (await readdir(FIXTURES, { withFileTypes: true }))
  .filter((e) => e.isDirectory() && existsSync(path.join(FIXTURES, e.name, 'expected.json')))
  .map((e) => e.name)
  .sort();

async function expectedOf(name: string): Promise<Expected> {
  return JSON.parse(await readFile(path.join(FIXTURES, name, 'expected.json'), 'utf8')) as Expected;
}

/** What a scenario's output folder says: exactly what expected.json compares. */
async function outcomeOf(out: string, findings: Findings) {
  const rows = parse(await readFile(path.join(out, 'violations.csv')), { columns: true }) as Array<Record<string, string>>;
  return {
    violations: rows.map((r) => ({ invariant_id: r['invariant_id'], entity_id: r['entity_id'] })),
    skipped: findings.invariants.filter((r) => r.status === 'skipped').map((r) => r.id).sort(),
    errors: findings.invariants.filter((r) => r.error !== undefined),
  };
}

/**
 * The audits run in this process and overlap (DuckDB computes off the JS thread), writing the
 * same files `recon audit` writes; what only the CLI adds (the Vitest suite and junit.xml, the
 * exit code as returned) is checked once, through `main`, on the demo below.
 */
const outs = new Map<string, { out: string; findings: Findings }>();
beforeAll(async () => {
  await Promise.all(
    scenarios.map(async (name) => {
      const out = await tempDir('recon-fixture-');
      const run = await auditExports({ exportsDir: path.join(FIXTURES, name) });
      try {
        await writeAuditOutputs(run, out);
        await renderReports({ engine: run.engine, findings: run.findings, config: run.config.config }, out);
      } finally {
        run.db.close();
      }
      outs.set(name, { out, findings: run.findings });
    }),
  );
});

describe('recon audit on every fixture gives exactly the expected violations, skips and exit code', () => {
  for (const name of scenarios) {
    test(name, async () => {
      const expected = await expectedOf(name);
      const { out, findings } = outs.get(name)!;
      const outcome = await outcomeOf(out, findings);
      expect(outcome.violations).toEqual(expected.violations);
      expect(outcome.skipped).toEqual(expected.skipped);
      expect(outcome.errors).toEqual([]);
      expect(exitCodeFor(findings)).toBe(expected.exit_code);
      expect(existsSync(path.join(out, 'index.html'))).toBe(true);
    });
  }
});

test('the demo through the CLI: the same outcome, its exit code, and a junit.xml without colour codes', async () => {
  const expected = await expectedOf('demo');
  const out = path.join(await tempDir('recon-fixture-'), 'reports');
  const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
  const err = vi.spyOn(console, 'error').mockImplementation(() => undefined);
  let code: number;
  try {
    code = await main(['audit', '--exports', path.join(FIXTURES, 'demo'), '--out', out, '--quiet']);
  } finally {
    log.mockRestore();
    err.mockRestore();
  }
  const outcome = await outcomeOf(out, parseFindings(await readFile(path.join(out, 'findings.json'), 'utf8')));
  expect(outcome).toEqual({ violations: expected.violations, skipped: expected.skipped, errors: [] });
  expect(code).toBe(expected.exit_code);
  const junit = await readFile(path.join(out, 'junit.xml'), 'utf8');
  expect(junit).toMatch(/<testsuites /);
  expect(junit).not.toMatch(/\x1b\[/);
});
