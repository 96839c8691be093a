import type { TableName } from '../contract/tables.ts';
import type { EntityType } from '../contract/violations.ts';
import type { Dialect } from '../dialect/dialect.ts';

/** How a query names its bound parameters, per engine: `$since` in DuckDB, `@since` in BigQuery. */
export interface WindowParams {
  /** The parameter itself (text, possibly NULL). */
  param(name: 'since' | 'until'): string;
  /** The parameter as an instant. */
  instant(name: 'since' | 'until'): string;
}

export const DUCKDB_PARAMS: WindowParams = { param: (n) => `$${n}`, instant: (n) => `$${n}::TIMESTAMPTZ` };
export const BIGQUERY_PARAMS: WindowParams = { param: (n) => `@${n}`, instant: (n) => `TIMESTAMP(@${n})` };

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
  active: (d: Dialect, p: WindowParams) => string;
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
