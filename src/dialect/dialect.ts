/**
 * What differs between the SQL engines the catalog renders for, and nothing more: each
 * invariant is written once against this interface and rendered per engine, the way kysely
 * keeps one query and lets each dialect's compiler override only what it spells differently.
 * Every method returns SQL text built from our own constants and expressions; values from the
 * user never pass through here (they are bound parameters or rows of the tables).
 */
export interface Dialect {
  readonly name: 'duckdb' | 'bigquery';
  /** A quoted identifier. */
  ident(name: string): string;
  /** A string literal of one of our own constants. */
  string(text: string): string;
  /** A JSON object of `[key, expression]` pairs, in that order. */
  jsonObject(fields: ReadonlyArray<readonly [key: string, expr: string]>): string;
  /** Aggregate: the number of rows of the group where `condition` holds. */
  countIf(condition: string): string;
  /**
   * Aggregate `fn(expr)` over the rows of the group where `condition` holds (NULL, or 0 for
   * count, when none does). `fn` must ignore NULLs (count, sum, min, max, any_value).
   */
  aggregateIf(fn: string, expr: string, condition: string): string;
  /**
   * A FROM item: the rows of `left` with no row of `right` where `on` holds, under the alias of
   * `left`. Both are `table alias`.
   */
  antiJoin(left: { table: string; alias: string }, right: { table: string; alias: string }, on: string): string;
  /** Aggregate: the number of distinct non-NULL values of `expr` among the rows where `condition` holds. */
  countDistinctIf(expr: string, condition: string): string;
  /** Aggregate: whether `condition` holds for some row of the group (NULL when it is NULL for all). */
  boolOr(condition: string): string;
  /** Aggregate: at most `limit` values of `expr` in `orderBy` order. `expr` must not be NULL. */
  cappedList(expr: string, orderBy: string, limit: number): string;
  /** Aggregate: every value of `expr` (NULLs too) in `orderBy` order. */
  orderedList(expr: string, orderBy: string): string;
  /** Aggregate: the value of `expr` (NULL too) on the group's first row in `orderBy` order. */
  firstBy(expr: string, orderBy: string): string;
  /** An ascending ORDER BY key that sorts NULLs last, as DuckDB does by default and BigQuery does not. */
  nullsLast(key: string): string;
  /** Aggregate: the distinct values of `expr`, sorted. `expr` must not be NULL. */
  sortedSet(expr: string): string;
  /** An empty list of strings (so a missing list reads `[]`, never NULL). */
  emptyStringList(): string;
  /** The non-NULL values of `items`, in their order, as a list. */
  nonNullList(items: readonly string[]): string;
  /** The list of `expr` for each element `x` of `list` (a name `expr` refers to), in order. */
  listTransform(list: string, x: string, expr: string): string;
  listLength(list: string): string;
  /** Whether `list` holds `value` (`value` not NULL). */
  listContains(list: string, value: string): string;
  /** An instant as ISO-8601 UTC text: microseconds only when it has them. */
  isoTimestamp(expr: string): string;
  /** The minutes from instant `earlier` to instant `later`, as a DOUBLE (negative when `later` is earlier). */
  minutesBetween(later: string, earlier: string): string;
  /** The instant `minutes` (an integer expression) after (`+`) or before (`-`) the instant `ts`. */
  shiftMinutes(ts: string, sign: '+' | '-', minutes: string): string;
  /** `expr` without leading and trailing spaces (only U+0020, as DuckDB's trim). */
  trimSpaces(expr: string): string;
  /** `expr` as an operand of `||`, which DuckDB casts to text itself and GoogleSQL does not. */
  concatText(expr: string): string;
  /** `expr` cast to text. */
  castText(expr: string): string;
  /** Whether the whole of `expr` matches the RE2 `pattern`. */
  fullMatch(expr: string, pattern: string): string;
  /** A struct of `[field, expression]` pairs. */
  struct(fields: ReadonlyArray<readonly [name: string, expr: string]>): string;
  /**
   * `UNION ALL` of SELECTs matched by column name: a column one SELECT lacks is NULL there.
   * `rest` follows the select list (`FROM ...`).
   */
  unionAllByName(selects: ReadonlyArray<{ columns: ReadonlyArray<readonly [name: string, expr: string]>; rest: string }>): string;
  /** A `WHERE` (when given) and a `QUALIFY` clause over window functions. */
  qualify(where: string | undefined, condition: string): string;
  /** A named table of constant rows, as a CTE: `name AS (...)` with the columns `columns`. */
  valuesCte(name: string, columns: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string;
}

/**
 * The id a violation gives the table row it is about (CONTRACT.md §4): the row's key or, when the
 * key is null, its source location `table:file:line`, the id `contract.invalid_value` gives the
 * same row. So an entity_id is never null, and two key-less rows are never merged into one
 * violation. `alias` qualifies the columns (`u` gives `u.usage_record_id`, `u.__file`, ...).
 */
export function rowEntityId(d: Dialect, table: string, key: string, alias?: string): string {
  const col = (name: string) => (alias ? `${alias}.${name}` : name);
  return `coalesce(${col(key)}, ${d.string(`${table}:`)} || ${col('__file')} || ':' || ${d.concatText(col('__line'))})`;
}

/**
 * A query over `source` (a table, view or CTE with `__file` and `__line`) that keeps one row per
 * `key`: the first in the export, by file and line. `contract.duplicate_key` reports a repeated
 * key; every other check joins or counts this one row, so a row exported twice never doubles a
 * join, a sum or a list. Rows whose key is null are all kept: each is an entity of its own.
 *
 * `where` narrows the rows before they are ranked, so the window runs over the few rows a check
 * needs rather than over the whole table. On the key alone (`key IN (...)`) it keeps the first
 * row of each key in the whole source; on other columns, the first of the rows it selects.
 */
export function firstRowPerKey(d: Dialect, source: string, key: string, where?: string): string {
  return `SELECT * FROM ${source}${d.qualify(where, `${key} IS NULL OR row_number() OVER (PARTITION BY ${key} ORDER BY __file, __line) = 1`)}`;
}
