import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test, vi } from 'vitest';
import { main } from '../src/cli.ts';
import { CATALOG } from '../src/invariants/index.ts';
import { tempDir } from './helpers/exports.ts';

const run = promisify(execFile);

async function cli(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((m: unknown) => void out.push(String(m)));
  const error = vi.spyOn(console, 'error').mockImplementation((m: unknown) => void err.push(String(m)));
  try {
    return { code: await main(args), stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

describe('recon list and explain', () => {
  test('list prints every invariant once', async () => {
    const { code, stdout } = await cli(['list']);
    expect(code).toBe(0);
    const ids = stdout.split('\n').slice(1).map((l) => l.split(/\s+/)[0]);
    expect(ids).toEqual(CATALOG.map((i) => i.id));
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
    expect(await cli(['audit'])).toMatchObject({ code: 2, stderr: 'recon: recon audit: --exports DIR (or --bigquery PROJECT.DATASET) is required' });
    expect(await cli(['frobnicate'])).toMatchObject({ code: 2, stderr: 'recon: unknown command "frobnicate" (see recon --help)' });
    expect(await cli(['audit', '--help'])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Usage: recon audit/) });
  });

  test('the BigQuery engine is refused clearly rather than half-supported', async () => {
    expect(await cli(['audit', '--engine', 'bigquery', '--bigquery', 'proj.billing'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/--engine bigquery is not available in this build/) });
  });
});

describe('recon audit through the real binary', () => {
  test('writes every output, exits 0 on a clean export and stays silent on a non-terminal stderr', async () => {
    const out = await tempDir();
    const { stdout, stderr } = await run('node', ['bin/recon.js', 'audit', '--exports', 'fixtures/clean', '--out', out]);
    expect(stderr).toBe('');
    expect(stdout).toContain(`recon audit: wrote ${out}/`);
    for (const f of ['findings.json', 'violations.csv', 'violations.parquet', 'junit.xml', 'summary.md', 'index.html']) {
      expect((await readFile(path.join(out, f))).length, f).toBeGreaterThan(0);
    }
    const summary = await readFile(path.join(out, 'summary.md'), 'utf8');
    expect(summary).toMatch(/^# billing-recon audit: no error-severity violations/);
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
