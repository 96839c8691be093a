import type { TableName } from '../contract/tables.ts';
import type { Dialect } from '../dialect/dialect.ts';
import { duckdb } from '../dialect/duckdb.ts';
import type { EntityType, OwningLayer, Severity } from '../contract/violations.ts';

/** How many entries a list in a `detail` keeps: enough to act on, bounded for the reports. */
export const DETAIL_LIST_LIMIT = 20;
export type Family = 'contract' | 'usage' | 'ledger' | 'payments' | 'app_runtime' | 'events' | 'waivers';

/** What an invariant's SQL may look at besides the tables it needs. */
export interface SqlContext {
  /** The tables present in this audit (loaded, possibly empty). */
  readonly tables: ReadonlySet<TableName>;
  /** The engine's SQL dialect; DuckDB when not given. */
  readonly dialect?: Dialect;
}

/** The dialect an invariant renders its query in. */
export function dialectOf(ctx: SqlContext): Dialect {
  return ctx.dialect ?? duckdb;
}

/**
 * One check of CONTRACT.md §3, as data. `sql` returns one row per violating entity with
 * `entity_id` (text) and any other column of VIOLATION_COLUMNS up to `detail` (a JSON value saying what
 * exactly is wrong). The SQL reads the typed tables, the `effective_ledger_entries` view and the
 * `recon_settings` / `recon_control_plane_components` tables created by the audit; it never
 * embeds a value: thresholds come from `recon_settings`.
 */
export interface Invariant {
  readonly id: string;
  readonly family: Family;
  readonly title: string;
  readonly severity: Severity;
  readonly entity: EntityType;
  /** Tables that must be present; if one is absent the invariant is `skipped`. */
  readonly needs: readonly TableName[];
  /** The runbook step this automates, quoted or paraphrased. */
  readonly runbook: string;
  /** One paragraph for a finance reader: what it means, why it costs money. */
  readonly explanation: string;
  readonly sql: (ctx: SqlContext) => string;
  /** Where the runbooks send the follow-up, refined per violation where they distinguish. */
  readonly owner: OwnerRule;
  /**
   * Which kind of money a violation puts at stake, for the reports' money card (MoneyKind in
   * src/report/data.ts): SQL over one violation row (its columns and `detail` JSON), written beside
   * the query that writes that detail. Absent: the check prices no money of its own kind.
   */
  readonly moneyKind?: string;
  /**
   * `after_waivers`: a check of the audit itself, run once waivers have been matched (it reads
   * `recon_waivers`). Default: with the catalog.
   */
  readonly phase?: 'after_waivers';
}

export interface OwnerRule {
  readonly layer: OwningLayer;
  /** First match wins: `when` is SQL over one violation row (its columns and `detail` JSON). */
  readonly refine?: ReadonlyArray<{ readonly when: string; readonly layer: OwningLayer; readonly why: string }>;
}
