import { mkdir } from 'node:fs/promises';
import * as data from './data.ts';
import { Writer, type Limits, type RenderInput, type RenderOptions } from './pages/context.ts';
import { renderAppBatch } from './pages/app-instances.ts';
import { renderInvariantPages, renderNoTenantPage } from './pages/invariants.ts';
import { renderOrgBatch } from './pages/orgs.ts';
import { renderIndex, renderListPages } from './pages/overview.ts';

const DEFAULTS: Limits = { maxRows: 50, indexRows: 100, listPageSize: 500, batchSize: 1000 };

/**
 * Writes the HTML drift reports (CONTRACT.md §4): `outDir/index.html`, one page per tenant with
 * violations under `outDir/orgs/`, one per app instance with violations under
 * `outDir/app-instances/`, and ranked list pages under `outDir/lists/` when there are more
 * tenants or app instances than the index shows. Reads the `violations` table and the contract
 * tables of `db`; every file is self-contained (inline CSS, SVG charts, hashed CSP).
 */
export async function renderReports(input: RenderInput, outDir: string, opts: RenderOptions = {}): Promise<{ files: string[] }> {
  const o: Limits = {
    maxRows: opts.maxRows ?? DEFAULTS.maxRows,
    indexRows: opts.indexRows ?? DEFAULTS.indexRows,
    listPageSize: opts.listPageSize ?? DEFAULTS.listPageSize,
    batchSize: opts.batchSize ?? DEFAULTS.batchSize,
  };
  for (const [k, v] of Object.entries(o)) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`renderReports: ${k} must be a positive integer, got ${v}`);
  }
  await mkdir(outDir, { recursive: true });
  const w = new Writer(outDir);
  const env = await data.prepare(input.engine, input.findings.as_of, o.batchSize);
  try {
    const overview = await renderIndex(input, env, w, o);
    await renderInvariantPages(input, w, overview);
    await renderNoTenantPage(input, env, w, overview.unattributed);
    await renderListPages(input, w, o, overview.totals);
    const orgBatches = await data.batchCount(input.engine.db, 'org');
    for (let b = 0; b < orgBatches; b++) await renderOrgBatch(input, env, w, b, o);
    const appBatches = await data.batchCount(input.engine.db, 'app');
    for (let b = 0; b < appBatches; b++) await renderAppBatch(input, env, w, b, o);
  } finally {
    await data.dropReportTables(input.engine.db);
  }
  return { files: w.files };
}
