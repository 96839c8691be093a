import { TABLES, quoteIdent, type TableName } from '../../contract/tables.ts';
import { duckdb } from '../../dialect/duckdb.ts';
import type { Db } from '../../db.ts';
import type { IncidentIds, ScopeKey } from '../../scope.ts';
import { firstRowPerKey, isoSql, sqlString } from '../../sql.ts';
import type { ActivityWindow, ExportCounts, TableFacts } from '../engine.ts';
import { INCIDENT_LINKS, ORG_TABLES } from '../links.ts';
import { DUCKDB_PARAMS, WINDOW_ENTITIES } from '../queries.ts';

export async function tableRows(db: Db, tables: ReadonlySet<TableName>): Promise<TableFacts['rows']> {
  const rows: TableFacts['rows'] = {};
  for (const t of tables) rows[t] = Number((await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM ${quoteIdent(t)}`))!.n);
  return rows;
}

/**
 * The newest timestamp of each present table (over all its timestamp columns) and of all of them,
 * as ISO text with microseconds, compared in DuckDB (ISO texts of different precision do not sort).
 */
export async function newestTimestamps(db: Db, tables: ReadonlySet<TableName>): Promise<Pick<TableFacts, 'newest' | 'latest'>> {
  const parts = [...tables].flatMap((t) => {
    const cols = TABLES[t].columns.filter((c) => c.type === 'timestamp').map((c) => `max(${quoteIdent(c.name)})`);
    return cols.length ? [`SELECT ${sqlString(t)} AS tbl, greatest(${cols.join(', ')}) AS t FROM ${quoteIdent(t)}`] : [];
  });
  const newest: TableFacts['newest'] = {};
  if (parts.length === 0) return { newest, latest: null };
  const rows = await db.all<{ tbl: TableName; t: string | null; latest: string | null }>(
    `SELECT tbl, ${isoSql('t')} AS t, ${isoSql('max(t) OVER ()')} AS latest FROM (${parts.join(' UNION ALL ')})`,
  );
  for (const r of rows) newest[r.tbl] = r.t;
  return { newest, latest: rows[0]?.latest ?? null };
}

/**
 * The usage row's control-plane flag on every violation that names a usage record, so
 * `--control-plane-component` can narrow any of them (and a diff can, from violations alone).
 */
export async function tagControlPlane(db: Db): Promise<void> {
  await db.run(`UPDATE violations v SET control_plane_component = u.control_plane_component
    FROM (${firstRowPerKey('usage_records', 'usage_record_id', `usage_record_id IN (SELECT usage_record_id FROM violations)`)}) u
    WHERE v.usage_record_id = u.usage_record_id`);
}

export async function restrictToWindow(db: Db, tables: ReadonlySet<TableName>, window: ActivityWindow): Promise<void> {
  for (const w of WINDOW_ENTITIES) {
    if (!w.tables.every((t) => tables.has(t))) continue;
    // A violation whose entity has no key cannot be placed in time: it is kept, never hidden.
    await db.run(
      `DELETE FROM violations WHERE entity_type = $entity AND ${w.id} IS NOT NULL AND ${w.id} NOT IN (${w.active(duckdb, DUCKDB_PARAMS)})`,
      { entity: w.entity, since: window.since, until: window.until },
    );
  }
}

/**
 * Narrows `violations` to one incident: violations carrying one of its correlation or trace
 * ids, and violations about a row that carries one (a debit whose own correlation id differs
 * still bills the incident's usage). Ids of either kind are a union here: the runbooks start
 * from "a correlation_id (and trace_id)" of one incident. Unreadable rows stay, as in every scope.
 */
export async function narrowToIncident(db: Db, tables: ReadonlySet<TableName>, ids: IncidentIds): Promise<void> {
  const linked = INCIDENT_LINKS.filter((l) => tables.has(l.table)).map(
    (l) =>
      `(${l.entityOnly ? `entity_type = '${l.key.replace(/_id$/, '')}' AND ` : ''}${l.key} IN (
         SELECT ${l.key} FROM ${l.table} WHERE list_contains($c::JSON::VARCHAR[], correlation_id) OR list_contains($t::JSON::VARCHAR[], trace_id)))`,
  );
  await db.run(
    `DELETE FROM violations WHERE NOT coalesce(
       entity_type = 'source_row' OR list_contains($c::JSON::VARCHAR[], correlation_id) OR list_contains($t::JSON::VARCHAR[], trace_id)
       ${linked.map((l) => `OR ${l}`).join('\n       ')}, false)`,
    { c: JSON.stringify(ids.correlationIds), t: JSON.stringify(ids.traceIds) },
  );
}

/** Where each dimension's values live in the exports: a value found in none of them matches nothing. */
const DATA_COLUMNS: Record<ScopeKey, ReadonlyArray<readonly [TableName, string]>> = {
  orgs: [['allocations', 'org_id'], ['app_instances', 'org_id'], ['usage_records', 'org_id'], ['ledger_entries', 'org_id'], ['payment_sessions', 'org_id'], ['balances', 'org_id']],
  projects: [['allocations', 'project_id'], ['app_instances', 'project_id'], ['usage_records', 'project_id'], ['ledger_entries', 'project_id']],
  users: [['allocations', 'requested_by_user_id'], ['usage_records', 'requested_by_user_id'], ['ledger_entries', 'requested_by_user_id'], ['payment_sessions', 'requested_by_user_id'], ['balances', 'requested_by_user_id']],
  allocations: [['allocations', 'allocation_id'], ['usage_records', 'allocation_id'], ['events', 'allocation_id']],
  app_instances: [['app_instances', 'app_instance_id'], ['usage_records', 'app_instance_id'], ['events', 'app_instance_id']],
  usage_sources: [['usage_records', 'usage_source']],
  control_plane_components: [['usage_records', 'control_plane_component']],
  correlation_ids: [['allocations', 'correlation_id'], ['app_instances', 'correlation_id'], ['usage_records', 'correlation_id'], ['ledger_entries', 'correlation_id'], ['payment_sessions', 'correlation_id'], ['events', 'correlation_id']],
  trace_ids: [['allocations', 'trace_id'], ['app_instances', 'trace_id'], ['usage_records', 'trace_id'], ['ledger_entries', 'trace_id'], ['payment_sessions', 'trace_id'], ['events', 'trace_id']],
};

/** The present tables and columns holding the dimension's values. */
export function exportValueColumns(key: ScopeKey, tables: ReadonlySet<TableName>): ReadonlyArray<readonly [TableName, string]> {
  return DATA_COLUMNS[key].filter(([t]) => tables.has(t));
}

/** The dimension's values in the exports, as a query with one VARCHAR column `v`. */
export function exportValuesSql(key: ScopeKey, tables: ReadonlySet<TableName>): string {
  const sources = exportValueColumns(key, tables);
  return sources.length ? sources.map(([t, c]) => `SELECT ${quoteIdent(c)}::VARCHAR AS v FROM ${quoteIdent(t)}`).join(' UNION ALL ') : 'SELECT NULL::VARCHAR AS v';
}

export async function exportCounts(db: Db, tables: ReadonlySet<TableName>): Promise<ExportCounts> {
  const orgs = ORG_TABLES.filter((t) => tables.has(t)).map((t) => `SELECT org_id FROM ${quoteIdent(t)}`);
  const r = (await db.one<{ tenants: bigint; open: bigint }>(
    `SELECT (SELECT count(DISTINCT org_id) FROM (${orgs.length ? orgs.join(' UNION ALL ') : 'SELECT NULL::VARCHAR AS org_id'})) AS tenants,
            ${tables.has('usage_records') ? `(SELECT count(DISTINCT usage_record_id) FROM usage_records WHERE end_time IS NULL)` : '0'} AS open`,
  ))!;
  return { tenants_in_exports: Number(r.tenants), open_usage_rows: Number(r.open) };
}
