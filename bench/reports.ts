/**
 * The reports stage alone, on one export folder: audits it once, then renders every page and
 * prints the wall and CPU time of the rendering (issue: 10,000 tenant pages in 15 s).
 *
 *   npm run bench:reports -- EXPORTS_DIR OUT_DIR
 *
 * Run it in a fresh process per measurement: charts drawn once are kept for the process.
 */
import { auditExports } from '../src/audit.ts';
import { renderReports } from '../src/report/render.ts';

const [exportsDir, outDir] = process.argv.slice(2);
if (!exportsDir || !outDir) throw new Error('usage: node --import tsx bench/reports.ts EXPORTS_DIR OUT_DIR');
const run = await auditExports({ exportsDir });
try {
  const started = performance.now();
  const cpu = process.cpuUsage();
  const { files } = await renderReports({ engine: run.engine, findings: run.findings, config: run.config.config }, outDir);
  const used = process.cpuUsage(cpu);
  const pages = (dir: string) => files.filter((f) => f.includes(`/${dir}/`)).length;
  console.log(
    `reports: ${files.length} files (${pages('orgs')} tenant pages, ${pages('app-instances')} app-instance pages) in ` +
      `${((performance.now() - started) / 1000).toFixed(2)} s wall, ${((used.user + used.system) / 1e6).toFixed(2)} s CPU`,
  );
} finally {
  run.db.close();
}
