import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { auditExports } from '../src/audit.ts';
import { Db } from '../src/db.ts';
import { startLocalBigQuery, type LocalBigQuery } from '../src/sources/bigquery-local.ts';
import type { BigQuerySource } from '../src/sources/bigquery.ts';
import { useZetaSql } from './helpers/zetasql.ts';

/**
 * `--engine bigquery` on every fixture (tests/bigquery-engine-outputs.test.ts has its jobs, errors
 * and outputs): the catalog as GoogleSQL query jobs, run by the repository's BigQuery
 * endpoint on 127.0.0.1 in ZetaSQL (BigQuery's own SQL front end, with its reference evaluator),
 * through the real `@google-cloud/bigquery` client. Held to the DuckDB engine on the same exports
 * loaded from files (bigquery.test.ts holds `--bigquery` to them too).
 */

process.env['METADATA_SERVER_DETECTION'] = 'none';
delete process.env['BIGQUERY_EMULATOR_HOST'];

const zeta = useZetaSql();
const FIXTURES = path.resolve('fixtures');
/**
 * Every committed fixture; `demo` only with RECON_ENGINE_FIXTURES=all: ZetaSQL's reference
 * evaluator re-runs a correlated subquery for every row, so the demo's 3,600 rows take minutes
 * (more than 85 s for contract.duplicate_key alone), too long for `npm test`.
 */
const ENGINE_FIXTURES = readdirSync(FIXTURES, { withFileTypes: true })
  .filter((e) => e.isDirectory() && e.name !== 'remediation' && (e.name !== 'demo' || process.env['RECON_ENGINE_FIXTURES'] === 'all'))
  .map((e) => e.name);

function source(bq: LocalBigQuery, extra: Partial<BigQuerySource> = {}): BigQuerySource {
  return { dataset: `${bq.projectId}.${bq.datasetId}`, endpoint: bq.url, retry: { maxRetries: 2, maxRetryDelaySeconds: 0.05 }, ...extra };
}

/** JSON with every object's keys sorted: BigQuery's JSON_OBJECT orders keys itself, DuckDB keeps them as written. */
function sortedKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortedKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, x]) => [k, sortedKeys(x)]));
  return v;
}

/**
 * Every violation as comparable text: every column, and the detail as the same JSON whatever its
 * key order. A row that could not be loaded (`contract.rejected_row`) never reaches a typed
 * warehouse table, and where a row came from (`file`, `line`) is the warehouse's to say.
 */
async function violationsOf(db: Db): Promise<string[]> {
  const rows = await db.allJson<Record<string, unknown>>(
    `SELECT * EXCLUDE (detail), detail::VARCHAR AS detail FROM violations WHERE invariant_id <> 'contract.rejected_row' ORDER BY invariant_id, entity_id`,
  );
  return rows.map((r) => {
    const detail = JSON.parse(String(r['detail'] ?? 'null')) as Record<string, unknown> | null;
    if (detail) for (const k of ['file', 'line', 'locations']) delete detail[k];
    return JSON.stringify({ ...r, detail: sortedKeys(detail) });
  });
}

const serve = (dir: string) => startLocalBigQuery({ exportsDir: dir, zetaSql: zeta.server() });

describe('--engine bigquery finds exactly what the DuckDB engine finds on the same exports loaded from files', () => {
  test.concurrent.each(ENGINE_FIXTURES)('%s', async (name) => {
    const dir = path.join(FIXTURES, name);
    const bq = await serve(dir);
    const [read, pushed] = await Promise.all([auditExports({ exportsDir: dir }), auditExports({ bigquery: source(bq), engine: 'bigquery' })]);
    try {
      expect(await violationsOf(pushed.db)).toEqual(await violationsOf(read.db));
      expect(pushed.findings.as_of).toBe(read.findings.as_of);
      expect(pushed.findings.inputs.map((i) => [i.table, i.rows])).toEqual(read.findings.inputs.map((i) => [i.table, i.rows - i.rejected_rows]));
      expect(pushed.findings.invariants.filter((r) => r.error !== undefined)).toEqual([]);
    } finally {
      read.db.close();
      pushed.db.close();
      await bq.close();
    }
  });
});

