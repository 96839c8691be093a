import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { auditExports } from '../src/audit.ts';
import { CATALOG } from '../src/catalog/index.ts';
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
 * The fixtures whose drift, between them, makes every invariant of the catalog find something
 * (checked below); RECON_ENGINE_FIXTURES=all runs every committed fixture, the demo too. Each
 * engine audit runs some sixty jobs through ZetaSQL's reference evaluator, which re-runs a
 * correlated subquery for every row: the demo's 3,600 rows take minutes.
 */
const EVERY_CHECK_FINDS = [
  'ledger_drift', 'events_drift', 'usage_lifecycle_drift', 'app_runtime_misattributed', 'app_runtime_missing_usage',
  'duplicate_credit_after_retry', 'billing_worker_stalled', 'control_plane_unclassified', 'release_failed',
];
const ALL_FIXTURES = readdirSync(FIXTURES, { withFileTypes: true })
  .filter((e) => e.isDirectory() && e.name !== 'remediation')
  .map((e) => e.name);
const ENGINE_FIXTURES = process.env['RECON_ENGINE_FIXTURES'] === 'all' ? ALL_FIXTURES : EVERY_CHECK_FINDS;

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

/** The invariants with a violation in any of the fixtures run here. */
const found = new Set<string>();

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
      for (const r of pushed.findings.invariants) if (r.violations > 0) found.add(r.id);
    } finally {
      read.db.close();
      pushed.db.close();
      await bq.close();
    }
  });
});

test('between them, the fixtures run here make every check of the catalog find something', () => {
  // Unreadable rows never reach a typed warehouse table: contract.rejected_row finds nothing there.
  // Only the demo repeats a key; dialect.test.ts runs contract.duplicate_key's GoogleSQL in ZetaSQL on
  // a hand-made export, and RECON_ENGINE_FIXTURES=all runs it here on the demo.
  const absent = process.env['RECON_ENGINE_FIXTURES'] === 'all' ? ['contract.rejected_row'] : ['contract.rejected_row', 'contract.duplicate_key'];
  expect([...found].sort()).toEqual(CATALOG.map((i) => i.id).filter((id) => !absent.includes(id)).sort());
});
