/**
 * The benchmark: a generated world of N usage rows with every kind of drift injected, taken
 * through each stage of the product. Prints wall time per stage and the process's peak RSS.
 *
 *   npm run bench:stages -- [--rows 1000000] [--format csv|parquet|ndjson] [--keep DIR]
 */
import { mkdtemp, rm, stat, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { auditExports } from '../src/audit.ts';
import { DRIFT_KINDS, generateExports, type ExportFormat } from '../src/generate/index.ts';
import { writeAuditOutputs } from '../src/outputs/files.ts';
import { renderReports } from '../src/report/render.ts';
import { createSnapshot } from '../src/snapshot/snapshot.ts';
import { diffSnapshots } from '../src/snapshot/diff.ts';
import { runInvariantSuite } from '../src/outputs/vitest-run.ts';

const { values } = parseArgs({
  options: { rows: { type: 'string', default: '1000000' }, format: { type: 'string', default: 'csv' }, keep: { type: 'string' } },
});
const rows = Number(values.rows);
const format = values.format as ExportFormat;

async function dirSize(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) total += (await stat(path.join(e.parentPath, e.name))).size;
  }
  return total;
}

const results: Array<[string, number, string]> = [];
async function stage<T>(name: string, fn: () => Promise<T>, note: (r: T) => string = () => ''): Promise<T> {
  const t0 = performance.now();
  const r = await fn();
  results.push([name, performance.now() - t0, note(r)]);
  return r;
}

const work = values.keep ?? (await mkdtemp(path.join(tmpdir(), 'recon-bench-')));
const exportsDir = path.join(work, 'exports');
const outDir = path.join(work, 'out');
try {
  const inject = Object.fromEntries(DRIFT_KINDS.map((k) => [k, 3]));
  await stage('generate', () => generateExports({ outDir: exportsDir, seed: 1, usageRows: rows, tenants: Math.max(10, Math.round(rows / 100)), format, inject }), (g) => `${g.expected.length} injected violations`);
  const exportBytes = await dirSize(exportsDir);
  const run = await stage('load + catalog', () => auditExports({ exportsDir }), (r) => `${r.findings.totals.violations} violations`);
  const catalogMs = Object.values(run.timings.invariantsMs).reduce((a, b) => a + b, 0);
  const slowest = Object.entries(run.timings.invariantsMs).sort((a, b) => b[1] - a[1]).slice(0, 3);
  results.push(['  of which load', run.timings.loadMs, `${(exportBytes / 1e6).toFixed(1)} MB of ${format}`]);
  results.push(['  of which catalog', catalogMs, `slowest: ${slowest.map(([id, ms]) => `${id} ${(ms / 1000).toFixed(2)}s`).join(', ')}`]);
  await stage('outputs (findings, violations csv/parquet)', () => writeAuditOutputs(run, outDir));
  await stage('vitest suite + junit', () => runInvariantSuite(run.findings, path.join(outDir, 'junit.xml')));
  await stage('HTML reports', () => renderReports({ engine: run.engine, findings: run.findings, config: run.config.config }, outDir), (r) => `${r.files.length} files`);
  run.db.close();
  // A remediation's before and after: the same export snapshotted twice, then compared.
  const snap = (label: string) => createSnapshot({ exportsDir, label, outDir: path.join(work, `snap-${label}`) });
  await stage('snapshot (audit + evidence + manifest)', () => snap('before'), (r) => `${r.evidence.reduce((n, e) => n + e.rows, 0)} evidence rows`);
  await snap('after');
  await stage('diff of two snapshots', () => diffSnapshots({ beforeDir: path.join(work, 'snap-before'), afterDir: path.join(work, 'snap-after'), outDir: path.join(work, 'diff') }));
} finally {
  if (!values.keep) await rm(work, { recursive: true, force: true });
}

const peak = process.resourceUsage().maxRSS / 1024;
console.log(`\nbilling-recon bench: ${rows.toLocaleString('en-US')} usage rows (${format})\n`);
for (const [name, ms, note] of results) console.log(`${name.padEnd(44)} ${(ms / 1000).toFixed(2).padStart(8)} s  ${note}`);
console.log(`${'peak RSS'.padEnd(44)} ${peak.toFixed(0).padStart(8)} MB`);
