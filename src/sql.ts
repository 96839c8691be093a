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
