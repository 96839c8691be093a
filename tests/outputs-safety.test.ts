import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { describe, expect, test, vi } from 'vitest';
import { auditExports } from '../src/audit.ts';
import { main } from '../src/cli/main.ts';
import { writeAuditOutputs } from '../src/outputs/files.ts';
import { CLEAN, copyFixture, editFile, exportWith, tempDir } from './helpers/exports.ts';

async function cli(args: string[]): Promise<{ code: number; stderr: string }> {
  const errors: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
  const err = vi.spyOn(console, 'error').mockImplementation((m: unknown) => void errors.push(String(m)));
  try {
    return { code: await main(args), stderr: errors.join('\n') };
  } finally {
    log.mockRestore();
    err.mockRestore();
  }
}

/** Everything in a folder but recon's own run folders, which must never be left behind. */
async function leftovers(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.includes('.recon-'));
}

describe('--out always holds one whole run', () => {
  test('a re-run replaces the previous run whole; a failed run leaves it untouched; nothing is left beside it', async () => {
    const parent = await tempDir('recon-out-');
    const out = path.join(parent, 'reports');
    // A previous run's leftovers: a tenant page no longer in the findings and a 0-byte junit.xml.
    await mkdir(path.join(out, 'orgs'), { recursive: true });
    await writeFile(path.join(out, 'findings.json'), '{}');
    await writeFile(path.join(out, 'orgs', 'org_gone.html'), '<p>stale</p>');
    await writeFile(path.join(out, 'junit.xml'), '');
    await writeFile(path.join(out, '.gitkeep'), '');

    const ok = await cli(['audit', '--exports', CLEAN, '--out', out]);
    expect(ok.code).toBe(0);
    await expect(stat(path.join(out, 'orgs', 'org_gone.html'))).rejects.toThrow(/ENOENT/);
    expect((await stat(path.join(out, 'junit.xml'))).size).toBeGreaterThan(0);
    const findings = await readFile(path.join(out, 'findings.json'), 'utf8');
    expect(findings).toMatch(/"schema_version": 1/);
    expect(await leftovers(parent)).toEqual([]);
    // A hidden file such as the checkout's reports/.gitkeep stays.
    expect((await stat(path.join(out, '.gitkeep'))).isFile()).toBe(true);

    const broken = await copyFixture();
    await editFile(broken, 'usage_records.csv', () => '');
    const failed = await cli(['audit', '--exports', broken, '--out', out]);
    expect(failed.code).toBe(2);
    expect(failed.stderr).toMatch(/usage_records\.csv: empty file/);
    expect(await readFile(path.join(out, 'findings.json'), 'utf8')).toBe(findings);
    expect(await leftovers(parent)).toEqual([]);
  });

  test('an --out that is a file, or a folder of other files, is exit 2 before anything is loaded', async () => {
    const parent = await tempDir('recon-out-');
    const file = path.join(parent, 'report.txt');
    await writeFile(file, 'not a folder');
    // The exports do not exist: the message is about --out, so it was checked first.
    const r = await cli(['audit', '--exports', path.join(parent, 'no-such-exports'), '--out', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`recon: --out ${file}: exists and is not a folder`);
    const under = await cli(['audit', '--exports', CLEAN, '--out', path.join(file, 'reports')]);
    expect(under.code).toBe(2);
    expect(under.stderr).toMatch(/--out .*report\.txt\/reports: cannot write beside it/);
    const home = path.join(parent, 'home');
    await mkdir(home);
    await writeFile(path.join(home, 'thesis.docx'), 'precious');
    const other = await cli(['audit', '--exports', CLEAN, '--out', home]);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/holds files that are not recon output/);
    expect(await readFile(path.join(home, 'thesis.docx'), 'utf8')).toBe('precious');
  });

  test('a .csv.gz that is not gzip is exit 2 with a message (never an unhandled error event, exit 1)', async () => {
    const dir = await exportWith({ 'usage_records.csv.gz': await readFile(path.join(CLEAN, 'usage_records.csv')) });
    const r = await cli(['audit', '--exports', dir, '--out', path.join(await tempDir(), 'out')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^recon: usage_records\.csv\.gz: not gzip data/);
  });
});

describe('violations.csv is safe to open in a spreadsheet', () => {
  test('cells starting with = + - @ tab or CR are neutralised with a leading quote; Parquet keeps them as they are', async () => {
    const dir = await copyFixture();
    await editFile(dir, 'usage_records.csv', (t) =>
      t.replace('ur_3,allocation,alloc_3,,org_b,p_b1,u_b1,,,,,,2026-11-20T09:00:00Z,,2026-11-20T11:45:00Z,900,EUR,corr-b3,trace-b3',
        '"=HYPERLINK(""http://evil"")",allocation,alloc_3,,org_b,p_b1,u_b1,,,,,,2026-11-20T09:00:00Z,,2026-11-20T11:45:00Z,900,eur,@SUM(A1),-2+3'),
    );
    const out = await tempDir();
    const run = await auditExports({ exportsDir: dir });
    try {
      await writeAuditOutputs(run, out);
    } finally {
      run.db.close();
    }
    const rows = parse(await readFile(path.join(out, 'violations.csv')), { columns: true }) as Array<Record<string, string>>;
    const invalid = rows.find((r) => r['invariant_id'] === 'contract.invalid_value')!;
    expect([invalid['entity_id'], invalid['usage_record_id'], invalid['correlation_id'], invalid['trace_id']]).toEqual([
      `'=HYPERLINK("http://evil")`,
      `'=HYPERLINK("http://evil")`,
      `'@SUM(A1)`,
      `'-2+3`,
    ]);
    for (const r of rows) for (const v of Object.values(r)) expect(v).not.toMatch(/^[=+\-@\t\r]/);
  });
});
