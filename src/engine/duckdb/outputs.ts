import { listValue, type DuckDBListValue } from '@duckdb/node-api';
import type { TableName } from '../../contract/tables.ts';
import type { Db } from '../../db.ts';
import { duckdb } from '../../dialect/duckdb.ts';
import type { AppInstanceRow, BackingRow, BackingSummary, UsageSplit } from '../engine.ts';
import { AGING_COLUMNS, agingQuery, DUCKDB_PARAMS } from '../queries.ts';

/** The ids as a bound list (a batch of report pages: bounded). */
const idsParam = (ids: readonly string[]) => listValue([...ids]);
const IN_IDS = `app_instance_id IN (SELECT unnest($ids::VARCHAR[]))`;

export async function materialiseAging(db: Db, tables: ReadonlySet<TableName>, asOf: string, into: string): Promise<void> {
  const query = agingQuery(duckdb, DUCKDB_PARAMS, tables);
  await db.run(`CREATE OR REPLACE TEMP TABLE ${into} (${AGING_COLUMNS})`);
  if (query) await db.run(`INSERT INTO ${into} ${query}`, { as_of: asOf });
}

export async function appInstances(db: Db, tables: ReadonlySet<TableName>, ids: readonly string[]): Promise<AppInstanceRow[]> {
  if (!tables.has('app_instances')) return [];
  const rows = await db.all<AppInstanceRow & { copies: bigint }>(
    `SELECT * EXCLUDE (rn) FROM (
       SELECT app_instance_id, org_id, project_id, app_type, operating_mode, control_plane_scope, runtime_backend, status,
              strftime(started_at, '%Y-%m-%dT%H:%M:%SZ') AS started_at, strftime(stopped_at, '%Y-%m-%dT%H:%M:%SZ') AS stopped_at,
              correlation_id, trace_id,
              count(*) OVER (PARTITION BY app_instance_id) AS copies,
              row_number() OVER (PARTITION BY app_instance_id ORDER BY org_id, project_id) AS rn
       FROM app_instances WHERE ${IN_IDS})
     WHERE rn <= 3 ORDER BY app_instance_id, rn`,
    { ids: idsParam(ids) },
  );
  return rows.map((r) => ({ ...r, copies: Number(r.copies) }));
}

export async function usageSplit(db: Db, tables: ReadonlySet<TableName>, ids: readonly string[]): Promise<UsageSplit[]> {
  if (!tables.has('usage_records')) return [];
  const rows = await db.all<UsageSplit & { n: bigint; open: bigint }>(
    `SELECT app_instance_id, usage_source, control_plane_component, currency,
            count(*) AS n, count(*) FILTER (WHERE end_time IS NULL) AS open, sum(accrued_cost_minor)::HUGEINT AS accrued
     FROM usage_records WHERE ${IN_IDS}
     GROUP BY ALL ORDER BY 1, 2, 3 DESC NULLS LAST, 4`,
    { ids: idsParam(ids) },
  );
  return rows.map((r) => ({ ...r, n: Number(r.n), open: Number(r.open) }));
}

/**
 * The usage rows of each app instance with the `usage_debit` entries that back them (joined on
 * usage_record_id), rows named by a violation first, `limit` per instance; plus per-instance
 * counts of rows with and without an effective debit. "Effective" is the catalog's own view
 * (src/catalog/setup.ts), so a report never judges a debit differently from the checks.
 */
export async function ledgerBacking(
  db: Db,
  tables: ReadonlySet<TableName>,
  ids: readonly string[],
  limit: number,
  violationsTable: string,
): Promise<{ rows: BackingRow[]; summary: BackingSummary[] }> {
  if (!tables.has('usage_records')) return { rows: [], summary: [] };
  // Debits are summed only in the usage row's own currency; debits in another currency are
  // counted apart, never added in.
  const debits = tables.has('ledger_entries')
    ? `SELECT l.usage_record_id,
              count(*) FILTER (WHERE eff) AS debits,
              sum(l.amount_minor) FILTER (WHERE eff AND l.currency IS NOT DISTINCT FROM uc.currency)::HUGEINT AS debited,
              count(*) FILTER (WHERE eff AND l.currency IS DISTINCT FROM uc.currency) AS other_currency,
              count(*) FILTER (WHERE NOT eff) AS reversed,
              list(l.ledger_entry_id ORDER BY l.created_at, l.ledger_entry_id)[1:5] AS ledger_ids
       FROM (SELECT *, coalesce(ledger_entry_id IN (SELECT ledger_entry_id FROM effective_ledger_entries), false) AS eff
             FROM ledger_entries WHERE entry_type = 'usage_debit') l
       JOIN (SELECT usage_record_id, any_value(currency) AS currency FROM u GROUP BY 1) uc USING (usage_record_id)
       GROUP BY 1`
    : `SELECT NULL::VARCHAR AS usage_record_id, 0 AS debits, NULL::BIGINT AS debited, 0 AS other_currency, 0 AS reversed, []::VARCHAR[] AS ledger_ids WHERE false`;
  const base = `WITH u AS (SELECT * FROM usage_records WHERE ${IN_IDS}),
    d AS (${debits}),
    j AS (SELECT u.*, coalesce(d.debits, 0) AS debits, d.debited, coalesce(d.other_currency, 0) AS other_currency, coalesce(d.reversed, 0) AS reversed,
                 coalesce(d.ledger_ids, []::VARCHAR[]) AS ledger_ids,
                 u.usage_record_id IN (SELECT usage_record_id FROM ${violationsTable} WHERE usage_record_id IS NOT NULL) AS in_violations
          FROM u LEFT JOIN d USING (usage_record_id))`;
  const rows = await db.all<Omit<BackingRow, 'debits' | 'reversed' | 'other_currency' | 'ledger_ids'> & { debits: bigint; reversed: bigint; other_currency: bigint; ledger_ids: DuckDBListValue }>(
    `${base}
     SELECT * EXCLUDE (rn) FROM (
       SELECT app_instance_id, usage_record_id, usage_source, component, control_plane_component,
              strftime(start_time, '%Y-%m-%dT%H:%M:%SZ') AS start_time, strftime(end_time, '%Y-%m-%dT%H:%M:%SZ') AS end_time,
              accrued_cost_minor, currency, debits, debited, other_currency, reversed, ledger_ids, in_violations,
              row_number() OVER (PARTITION BY app_instance_id ORDER BY in_violations DESC, start_time, usage_record_id) AS rn
       FROM j)
     WHERE rn <= $limit ORDER BY app_instance_id, rn`,
    { ids: idsParam(ids), limit },
  );
  const summary = await db.all<{ app_instance_id: string; rows: bigint; open: bigint; backed: bigint; unbacked: bigint }>(
    `${base}
     SELECT app_instance_id, count(*) AS rows, count(*) FILTER (WHERE end_time IS NULL) AS open,
            count(*) FILTER (WHERE debits > 0) AS backed,
            count(*) FILTER (WHERE debits = 0 AND end_time IS NOT NULL AND accrued_cost_minor > 0) AS unbacked
     FROM j GROUP BY 1 ORDER BY 1`,
    { ids: idsParam(ids) },
  );
  return {
    rows: rows.map((r) => ({ ...r, debits: Number(r.debits), reversed: Number(r.reversed), other_currency: Number(r.other_currency), ledger_ids: r.ledger_ids.items.map(String) })),
    summary: summary.map((s) => ({ app_instance_id: s.app_instance_id, rows: Number(s.rows), open: Number(s.open), backed: Number(s.backed), unbacked: Number(s.unbacked) })),
  };
}

export async function materialiseMovementTimes(
  db: Db,
  tables: ReadonlySet<TableName>,
  from: string,
  into: { usage: string; sessions: string; ledger: string },
): Promise<void> {
  await db.run(
    `CREATE OR REPLACE TEMP TABLE ${into.usage} AS ${
      tables.has('usage_records')
        ? `SELECT usage_record_id, min(start_time) AS start_time, max(end_time) AS end_time FROM usage_records
           WHERE usage_record_id IN (SELECT usage_record_id FROM ${from}) GROUP BY ALL`
        : `SELECT NULL::VARCHAR AS usage_record_id, NULL::TIMESTAMPTZ AS start_time, NULL::TIMESTAMPTZ AS end_time WHERE false`
    }`,
  );
  await db.run(
    `CREATE OR REPLACE TEMP TABLE ${into.sessions} AS ${
      tables.has('payment_sessions')
        ? `SELECT payment_session_id, min(created_at) AS created_at FROM payment_sessions
           WHERE payment_session_id IN (SELECT payment_session_id FROM ${from}) GROUP BY ALL`
        : `SELECT NULL::VARCHAR AS payment_session_id, NULL::TIMESTAMPTZ AS created_at WHERE false`
    }`,
  );
  await db.run(
    `CREATE OR REPLACE TEMP TABLE ${into.ledger} AS ${
      tables.has('ledger_entries')
        ? `SELECT ledger_entry_id, min(created_at) AS created_at FROM ledger_entries
           WHERE ledger_entry_id IN (SELECT ledger_entry_id FROM ${from}) GROUP BY ALL`
        : `SELECT NULL::VARCHAR AS ledger_entry_id, NULL::TIMESTAMPTZ AS created_at WHERE false`
    }`,
  );
}
