/**
 * SQL text helpers. Values from the user always go in as bound parameters; these only render
 * our own constants (contract vocabulary, column names from TABLES, messages) and expressions.
 * They are DuckDB's spelling of src/dialect/, for the SQL outside the catalog (the audit's own
 * checks, outputs, snapshots, history), which runs on the DuckDB session only.
 */
import { firstRowPerKey as dialectFirstRowPerKey } from './dialect/dialect.ts';
import { duckdb } from './dialect/duckdb.ts';

/** A string literal of one of our own constants. */
export const sqlString = duckdb.string;

/** A fixed vocabulary (statuses, enum values) as an SQL list. */
export function sqlList(values: readonly string[]): string {
  return values.map(sqlString).join(', ');
}

/**
 * An instant as ISO-8601 UTC text (microseconds only when it has them), so findings.json and
 * every `detail` read the same whatever DuckDB's default rendering is.
 */
export const isoSql = duckdb.isoTimestamp;

/** {@link firstRowPerKey} of the dialect module, in DuckDB's SQL. */
export function firstRowPerKey(source: string, key: string, where?: string): string {
  return dialectFirstRowPerKey(duckdb, source, key, where);
}

/** Parquet settings fixed on purpose: the same rows must give the same bytes. */
export const PARQUET_OPTIONS = `FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880`;
