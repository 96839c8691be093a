import type { Dialect } from './dialect.ts';

const string = (text: string): string => `'${text.replaceAll("'", "''")}'`;

const ident = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/** A select-list item named `name`: the expression alone when it already is that column. */
const selectItem = (name: string, expr: string): string => (expr === name || expr === ident(name) ? expr : `${expr} AS ${ident(name)}`);

/** DuckDB's SQL: the dialect the audit runs today. */
export const duckdb: Dialect = {
  name: 'duckdb',
  ident,
  string,
  jsonObject: (fields) => `json_object(${fields.map(([k, v]) => `${string(k)}, ${v}`).join(', ')})`,
  countIf: (condition) => `count(*) FILTER (WHERE ${condition})`,
  aggregateIf: (fn, expr, condition) => `${fn}(${expr}) FILTER (WHERE ${condition})`,
  countDistinctIf: (expr, condition) => `count(DISTINCT ${expr}) FILTER (WHERE ${condition})`,
  boolOr: (condition) => `bool_or(${condition})`,
  antiJoin: (left, right, on) => `${left.table} ${left.alias}\n   ANTI JOIN ${right.table} ${right.alias} ON ${on}`,
  cappedList: (expr, orderBy, limit) => `list(${expr} ORDER BY ${orderBy})[1:${limit}]`,
  orderedList: (expr, orderBy) => `list(${expr} ORDER BY ${orderBy})`,
  firstBy: (expr, orderBy) => `first(${expr} ORDER BY ${orderBy})`,
  // DuckDB's default null order is NULLS LAST, so its spelling stays as it was.
  nullsLast: (key) => key,
  sortedSet: (expr) => `list(DISTINCT ${expr} ORDER BY ${expr})`,
  emptyStringList: () => `[]::VARCHAR[]`,
  nonNullList: (items) => `list_filter([${items.join(', ')}], x -> x IS NOT NULL)`,
  listTransform: (list, x, expr) => `list_transform(${list}, ${x} -> ${expr})`,
  listLength: (list) => `len(${list})`,
  listContains: (list, value) => `list_contains(${list}, ${value})`,
  // strftime's %f is always six digits, so a whole second is recognised by its zeros.
  isoTimestamp: (expr) => `regexp_replace(strftime(${expr}, '%Y-%m-%dT%H:%M:%S.%fZ'), '\\.000000Z$', 'Z')`,
  minutesBetween: (later, earlier) => `epoch(${later} - ${earlier}) / 60`,
  shiftMinutes: (ts, sign, minutes) => `${ts} ${sign} to_minutes(${minutes})`,
  trimSpaces: (expr) => `trim(${expr})`,
  concatText: (expr) => expr,
  castText: (expr) => `${expr}::VARCHAR`,
  fullMatch: (expr, pattern) => `regexp_full_match(${expr}, ${string(pattern)})`,
  struct: (fields) => `{${fields.map(([k, v]) => `${string(k)}: ${v}`).join(', ')}}`,
  unionAllByName: (selects) =>
    selects.map((s) => `SELECT ${s.columns.map(([name, expr]) => selectItem(name, expr)).join(', ')}\n${s.rest}`).join('\nUNION ALL BY NAME\n'),
  qualify: (where, condition) => `${where ? `\n  WHERE ${where}` : ''}\n  QUALIFY ${condition}`,
  valuesCte: (name, columns, rows) =>
    `${name}(${columns.join(', ')}) AS (VALUES\n  ${rows.map((r) => `(${r.map(literal).join(', ')})`).join(',\n  ')})`,
};

function literal(value: string | number): string {
  return typeof value === 'number' ? String(value) : string(value);
}
