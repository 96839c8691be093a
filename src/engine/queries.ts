/** Queries over the contract tables that both engines run, written once against the dialect and each engine's way of naming parameters. */
import type { TableName } from '../contract/tables.ts';
import type { EntityType } from '../contract/violations.ts';
import type { Dialect } from '../dialect/dialect.ts';

/** How a query names its bound parameters, per engine: `$since` in DuckDB, `@since` in BigQuery. */
export interface QueryParams {
  /** The parameter itself (text, possibly NULL). */
  param(name: string): string;
  /** The parameter as an instant. */
  instant(name: string): string;
}

export const DUCKDB_PARAMS: QueryParams = { param: (n) => `$${n}`, instant: (n) => `$${n}::TIMESTAMPTZ` };
export const BIGQUERY_PARAMS: QueryParams = { param: (n) => `@${n}`, instant: (n) => `TIMESTAMP(@${n})` };

/**
 * When each kind of entity was active, for a windowed audit (`--since/--until`), written once for
 * every engine: a usage record metering inside the window (start before its end, open or ending
 * after its start), a ledger entry created inside it, a payment session created, completed or
 * credited inside it. `active` is a query of the ids (never NULL) active in the window.
 */
export const WINDOW_ENTITIES: ReadonlyArray<{
  entity: EntityType;
  id: string;
  tables: readonly TableName[];
  active: (d: Dialect, p: QueryParams) => string;
}> = [
  {
    entity: 'usage_record',
    id: 'usage_record_id',
    tables: ['usage_records'],
    active: (_d, p) => `SELECT usage_record_id AS id FROM usage_records WHERE usage_record_id IS NOT NULL
        AND (${p.param('until')} IS NULL OR start_time < ${p.instant('until')})
        AND (${p.param('since')} IS NULL OR end_time IS NULL OR end_time >= ${p.instant('since')})`,
  },
  {
    entity: 'ledger_entry',
    id: 'ledger_entry_id',
    tables: ['ledger_entries'],
    active: (_d, p) => `SELECT ledger_entry_id AS id FROM ledger_entries WHERE ledger_entry_id IS NOT NULL
        AND (${p.param('since')} IS NULL OR created_at >= ${p.instant('since')})
        AND (${p.param('until')} IS NULL OR created_at < ${p.instant('until')})`,
  },
  {
    entity: 'payment_session',
    id: 'payment_session_id',
    tables: ['payment_sessions', 'ledger_entries'],
    active: (_d, p) => {
      const inWindow = (col: string) =>
        `((${p.param('since')} IS NULL OR ${col} >= ${p.instant('since')}) AND (${p.param('until')} IS NULL OR ${col} < ${p.instant('until')}))`;
      return `SELECT payment_session_id AS id FROM payment_sessions WHERE payment_session_id IS NOT NULL AND (${inWindow('created_at')} OR ${inWindow('completed_at')})
        UNION ALL
        SELECT payment_session_id AS id FROM ledger_entries WHERE payment_session_id IS NOT NULL AND ${inWindow('created_at')}`;
    },
  },
];

/** The local table open items by age land in, whatever the engine (Engine.materialiseAging). */
export const AGING_COLUMNS = 'org_id VARCHAR, item VARCHAR, bucket INTEGER, currency VARCHAR, n BIGINT, amount HUGEINT';

/**
 * Open usage and open payment sessions by tenant, age at `@as_of` (bucket: < 1 h, 1–6 h, 6–24 h,
 * 1–7 d, older, unknown start) and currency, written once for every engine; undefined when
 * neither table is present.
 */
export function agingQuery(d: Dialect, p: QueryParams, tables: ReadonlySet<TableName>): string | undefined {
  const parts: string[] = [];
  if (tables.has('usage_records')) {
    parts.push(`SELECT org_id, 'open usage' AS item, start_time AS opened, accrued_cost_minor AS amount, currency
                FROM usage_records WHERE end_time IS NULL`);
  }
  if (tables.has('payment_sessions')) {
    parts.push(`SELECT org_id, 'open payment session' AS item, created_at AS opened, amount_minor AS amount, currency
                FROM payment_sessions WHERE status = 'open'`);
  }
  if (parts.length === 0) return undefined;
  return `SELECT org_id, item, bucket, currency, COUNT(*) AS n, SUM(amount) AS amount FROM (
       SELECT org_id, item, currency, amount,
              CASE WHEN age IS NULL THEN 5 WHEN age < 60 THEN 0 WHEN age < 360 THEN 1
                   WHEN age < 1440 THEN 2 WHEN age < 10080 THEN 3 ELSE 4 END AS bucket
       FROM (SELECT *, ${d.minutesBetween(p.instant('as_of'), 'opened')} AS age FROM (${parts.join(' UNION ALL ')}) i) a) b
     WHERE org_id IS NOT NULL GROUP BY 1, 2, 3, 4`;
}
