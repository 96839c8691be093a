import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { parse } from 'csv-parse/sync';
import path from 'node:path';
import { describe, expect, test, vi } from 'vitest';
import { main } from '../src/cli.ts';
import { parseFindings } from '../src/outputs.ts';
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

describe('recon audit on every fixture gives exactly the expected violations, skips and exit code', () => {
  for (const name of scenarios) {
    test(name, async () => {
      const expected = JSON.parse(await readFile(path.join(FIXTURES, name, 'expected.json'), 'utf8')) as Expected;
      const out = await tempDir('recon-fixture-');
      const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
      const err = vi.spyOn(console, 'error').mockImplementation(() => undefined);
      let code: number;
      try {
        code = await main(['audit', '--exports', path.join(FIXTURES, name), '--out', out]);
      } finally {
        log.mockRestore();
        err.mockRestore();
      }
      const findings = parseFindings(await readFile(path.join(out, 'findings.json'), 'utf8'));
      const rows = parse(await readFile(path.join(out, 'violations.csv')), { columns: true }) as Array<Record<string, string>>;
      const actual = rows.map((r) => ({ invariant_id: r['invariant_id'], entity_id: r['entity_id'] }));
      expect(actual).toEqual(expected.violations);
      expect(findings.invariants.filter((r) => r.status === 'skipped').map((r) => r.id).sort()).toEqual(expected.skipped);
      expect(findings.invariants.filter((r) => r.error !== undefined)).toEqual([]);
      expect(code).toBe(expected.exit_code);
      const junit = await readFile(path.join(out, 'junit.xml'), 'utf8');
      expect(junit).not.toMatch(/\x1b\[/);
    });
  }
});
