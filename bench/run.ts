/**
 * The benchmark: the full `recon audit` (every output) side by side with the load-only floor
 * (bench/floor.ts: DuckDB alone reading the same files into typed tables), on one generated
 * world, alternating floor and audit so both see the same machine. Prints the median wall time,
 * the ratio audit/floor (median of the pairwise ratios) and the peak RSS of each as the OS
 * measures it, and records them in bench/results.json with the machine they ran on.
 *
 *   npm run bench -- [--rows 1000000] [--format csv|parquet|ndjson] [--runs 3] [--keep DIR]
 *
 * Per-stage timings inside one process: `npm run bench:stages`.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DRIFT_KINDS, generateExports, type ExportFormat } from '../src/generate/index.ts';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    format: { type: 'string', default: 'csv' },
    runs: { type: 'string', default: '3' },
    keep: { type: 'string' },
  },
});
const rows = Number(values.rows);
const format = values.format as ExportFormat;
const runs = Number(values.runs);
const ROOT = path.join(import.meta.dirname, '..');
const RESULTS = path.join(import.meta.dirname, 'results.json');
const TIME = '/usr/bin/time';

interface Measure { wallS: number; peakRssMb: number | null; code: number | null }

/**
 * Runs one command to completion. Peak RSS is the kernel's accounting of the finished process
 * (GNU time's %M); without /usr/bin/time it is the process's VmHWM polled while it runs, which
 * can miss a peak in its last moments, so it is labelled approximate in the output.
 */
async function measure(argv: string[]): Promise<Measure> {
  const rusageFile = path.join(os.tmpdir(), `recon-bench-${process.pid}-${Date.now()}.time`);
  const useTime = existsSync(TIME);
  const [cmd, ...args] = useTime ? [TIME, '-f', '%M', '-o', rusageFile, ...argv] : argv;
  const started = performance.now();
  const child = spawn(cmd!, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  let hwmKb = 0;
  const poll = useTime ? undefined : setInterval(() => {
    readFile(`/proc/${child.pid}/status`, 'utf8').then((s) => {
      const kb = Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0);
      if (kb > hwmKb) hwmKb = kb;
    }, () => undefined);
  }, 50);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (c) => resolve(c));
  });
  const wallS = (performance.now() - started) / 1000;
  if (poll) clearInterval(poll);
  let peakKb = hwmKb;
  if (useTime) {
    peakKb = Number((await readFile(rusageFile, 'utf8')).trim().split('\n').at(-1));
    await rm(rusageFile, { force: true });
  }
  return { wallS, peakRssMb: peakKb > 0 ? Math.round(peakKb / 1024) : null, code };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function dirSize(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) total += (await stat(path.join(e.parentPath, e.name))).size;
  }
  return total;
}

const work = values.keep ?? (await mkdtemp(path.join(os.tmpdir(), 'recon-bench-')));
const exportsDir = path.join(work, `exports-${rows}-${format}`);
try {
  // A kept world of the same size and format is reused: generating 10M rows takes minutes.
  if (!existsSync(path.join(exportsDir, 'expected.json'))) {
    const inject = Object.fromEntries(DRIFT_KINDS.map((k) => [k, 3]));
    process.stderr.write(`generating ${rows.toLocaleString('en-US')} usage rows (${format}) in ${exportsDir}\n`);
    await generateExports({ outDir: exportsDir, seed: 1, usageRows: rows, tenants: Math.max(10, Math.round(rows / 100)), format, inject });
  }
  const exportBytes = await dirSize(exportsDir);
  const floorCmd = [process.execPath, '--import', 'tsx', path.join('bench', 'floor.ts'), exportsDir];
  const auditCmd = [process.execPath, path.join('bin', 'recon.js'), 'audit', '--exports', exportsDir, '--out', path.join(work, 'out')];

  const floor: Measure[] = [];
  const audit: Measure[] = [];
  for (let i = 0; i < runs; i++) {
    floor.push(await measure(floorCmd));
    const a = await measure(auditCmd);
    // 1 is "drift found", which the generated world carries on purpose; 2 is a broken audit.
    if (a.code !== 0 && a.code !== 1) throw new Error(`recon audit exited ${a.code}`);
    audit.push(a);
    process.stderr.write(`run ${i + 1}/${runs}: floor ${floor[i]!.wallS.toFixed(1)} s, audit ${a.wallS.toFixed(1)} s\n`);
  }
  const summary = (ms: Measure[]) => ({
    median_s: +median(ms.map((m) => m.wallS)).toFixed(2),
    min_s: +Math.min(...ms.map((m) => m.wallS)).toFixed(2),
    max_s: +Math.max(...ms.map((m) => m.wallS)).toFixed(2),
    peak_rss_mb: Math.max(...ms.map((m) => m.peakRssMb ?? 0)) || null,
  });
  const entry = {
    date: new Date().toISOString(),
    usage_rows: rows,
    format,
    export_mb: +(exportBytes / 1e6).toFixed(1),
    runs,
    rss_source: existsSync(TIME) ? 'GNU time %M (kernel rusage)' : 'VmHWM polled every 50 ms (approximate)',
    floor: summary(floor),
    audit: summary(audit),
    ratio_audit_to_floor: +median(audit.map((a, i) => a.wallS / floor[i]!.wallS)).toFixed(2),
  };
  const machine = {
    cpus: os.cpus().length,
    cpu_model: os.cpus()[0]?.model ?? 'unknown',
    ram_gb: +(os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
  const previous = existsSync(RESULTS) ? (JSON.parse(await readFile(RESULTS, 'utf8')) as { results?: typeof entry[] }).results ?? [] : [];
  const results = [...previous.filter((r) => r.usage_rows !== rows || r.format !== format), entry]
    .sort((a, b) => a.usage_rows - b.usage_rows || a.format.localeCompare(b.format));
  await writeFile(RESULTS, `${JSON.stringify({ machine, results }, null, 2)}\n`);

  const fmt = (s: ReturnType<typeof summary>) =>
    `${s.median_s.toFixed(2).padStart(8)} s (${s.min_s.toFixed(2)}–${s.max_s.toFixed(2)})  peak RSS ${s.peak_rss_mb ?? '?'} MB`;
  console.log(`\nbilling-recon bench: ${rows.toLocaleString('en-US')} usage rows, ${format}, ${entry.export_mb} MB, ${runs} runs each`);
  console.log(`machine: ${machine.cpus} × ${machine.cpu_model}, ${machine.ram_gb} GB RAM, Node ${machine.node}`);
  console.log(`floor (DuckDB typed read only)   ${fmt(entry.floor)}`);
  console.log(`recon audit (every output)       ${fmt(entry.audit)}`);
  console.log(`ratio audit / floor (median)     ${entry.ratio_audit_to_floor.toFixed(2)} x`);
  console.log(`written to ${path.relative(process.cwd(), RESULTS)}`);
} finally {
  if (!values.keep) await rm(work, { recursive: true, force: true });
}
