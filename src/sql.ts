/**
 * SQL text helpers. Values from the user always go in as bound parameters; these only render
 * our own constants (contract vocabulary, column names from TABLES, messages) and expressions.
 */

/** A string literal of one of our own constants. */
export function sqlString(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** A fixed vocabulary (statuses, enum values) as an SQL list. */
export function sqlList(values: readonly string[]): string {
  return values.map(sqlString).join(', ');
}

/**
 * An instant as ISO-8601 UTC text (microseconds only when it has them), so findings.json and
 * every `detail` read the same whatever DuckDB's default rendering is.
 */
export function isoSql(expr: string): string {
  return `regexp_replace(strftime(${expr}, '%Y-%m-%dT%H:%M:%S.%fZ'), '\\.000000Z$', 'Z')`;
}

/**
 * The id a violation gives the table row it is about (CONTRACT.md §4): the row's key or, when the
 * key is null, its source location `table:file:line`, the id `contract.invalid_value` gives the
 * same row. So an entity_id is never null, and two key-less rows are never merged into one
 * violation. `alias` qualifies the columns (`u` gives `u.usage_record_id`, `u.__file`, ...).
 */
export function rowEntityId(table: string, key: string, alias?: string): string {
  const col = (name: string) => (alias ? `${alias}.${name}` : name);
  return `coalesce(${col(key)}, ${sqlString(`${table}:`)} || ${col('__file')} || ':' || ${col('__line')})`;
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
export function firstRowPerKey(source: string, key: string, where?: string): string {
  return `SELECT * FROM ${source}${where ? `\n  WHERE ${where}` : ''}
  QUALIFY ${key} IS NULL OR row_number() OVER (PARTITION BY ${key} ORDER BY __file, __line) = 1`;
}
