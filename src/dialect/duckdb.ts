import type { Dialect } from './dialect.ts';

const string = (text: string): string => `'${text.replaceAll("'", "''")}'`;

/** DuckDB's SQL: the dialect the audit runs today. */
export const duckdb: Dialect = {
  name: 'duckdb',
  ident: (name) => `"${name.replaceAll('"', '""')}"`,
  string,
  jsonObject: (fields) => `json_object(${fields.map(([k, v]) => `${string(k)}, ${v}`).join(', ')})`,
  countIf: (condition) => `count(*) FILTER (WHERE ${condition})`,
  aggregateIf: (fn, expr, condition) => `${fn}(${expr}) FILTER (WHERE ${condition})`,
  antiJoin: (left, right, on) => `${left.table} ${left.alias}\n   ANTI JOIN ${right.table} ${right.alias} ON ${on}`,
  cappedList: (expr, orderBy, limit) => `list(${expr} ORDER BY ${orderBy})[1:${limit}]`,
  sortedSet: (expr) => `list(DISTINCT ${expr} ORDER BY ${expr})`,
  emptyStringList: () => `[]::VARCHAR[]`,
  nonNullList: (items) => `list_filter([${items.join(', ')}], x -> x IS NOT NULL)`,
  list: (items) => `[${items.join(', ')}]`,
  listLength: (list) => `len(${list})`,
  listContains: (list, value) => `list_contains(${list}, ${value})`,
  // strftime's %f is always six digits, so a whole second is recognised by its zeros.
  isoTimestamp: (expr) => `regexp_replace(strftime(${expr}, '%Y-%m-%dT%H:%M:%S.%fZ'), '\\.000000Z$', 'Z')`,
  // `||` casts its operands to text itself.
  text: (expr) => expr,
  qualify: (where, condition) => `${where ? `\n  WHERE ${where}` : ''}\n  QUALIFY ${condition}`,
  valuesCte: (name, columns, rows) =>
    `${name}(${columns.join(', ')}) AS (VALUES\n  ${rows.map((r) => `(${r.map(literal).join(', ')})`).join(',\n  ')})`,
};

function literal(value: string | number): string {
  return typeof value === 'number' ? String(value) : string(value);
}
