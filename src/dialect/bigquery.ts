import type { Dialect } from './dialect.ts';

/** GoogleSQL escapes with backslashes inside quotes, where DuckDB doubles the quote. */
const escape = (text: string, quote: string): string =>
  text.replaceAll('\\', '\\\\').replaceAll(quote, `\\${quote}`).replaceAll('\n', '\\n').replaceAll('\r', '\\r');

const string = (text: string): string => `'${escape(text, "'")}'`;

const ident = (name: string): string => `\`${escape(name, '`')}\``;

/** BigQuery's GoogleSQL, as ZetaSQL (its front end) analyses it. */
export const bigquery: Dialect = {
  name: 'bigquery',
  ident,
  string,
  jsonObject: (fields) => `JSON_OBJECT(${fields.map(([k, v]) => `${string(k)}, ${v}`).join(', ')})`,
  countIf: (condition) => `COUNTIF(${condition})`,
  aggregateIf: (fn, expr, condition) => `${fn}(IF(${condition}, ${expr}, NULL))`,
  countDistinctIf: (expr, condition) => `COUNT(DISTINCT IF(${condition}, ${expr}, NULL))`,
  boolOr: (condition) => `LOGICAL_OR(${condition})`,
  // No ANTI JOIN in GoogleSQL: the left side is filtered by NOT EXISTS under its own alias.
  antiJoin: (left, right, on) =>
    `(SELECT ${left.alias}.* FROM ${left.table} ${left.alias}\n   WHERE NOT EXISTS (SELECT 1 FROM ${right.table} ${right.alias} WHERE ${on})) ${left.alias}`,
  cappedList: (expr, orderBy, limit) => `ARRAY_AGG(${expr} ORDER BY ${orderBy} LIMIT ${limit})`,
  orderedList: (expr, orderBy) => `ARRAY_AGG(${expr} ORDER BY ${orderBy})`,
  // ARRAY_AGG refuses a NULL element, so the value travels in a struct.
  firstBy: (expr, orderBy) => `ARRAY_AGG(STRUCT(${expr} AS v) ORDER BY ${orderBy} LIMIT 1)[OFFSET(0)].v`,
  nullsLast: (key) => `${key} NULLS LAST`,
  sortedSet: (expr) => `ARRAY_AGG(DISTINCT ${expr} ORDER BY ${expr})`,
  emptyStringList: () => `ARRAY<STRING>[]`,
  nonNullList: (items) => `ARRAY(SELECT x FROM UNNEST([${items.join(', ')}]) AS x WITH OFFSET AS i WHERE x IS NOT NULL ORDER BY i)`,
  listTransform: (list, x, expr) => `ARRAY(SELECT ${expr} FROM UNNEST(${list}) AS ${x} WITH OFFSET AS i ORDER BY i)`,
  listLength: (list) => `ARRAY_LENGTH(${list})`,
  listContains: (list, value) => `(${value} IN UNNEST(${list}))`,
  isoTimestamp: (expr) => `REGEXP_REPLACE(FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', ${expr}, 'UTC'), r'\\.000000Z$', 'Z')`,
  // Microseconds to seconds to minutes, the two divisions DuckDB's epoch(interval) / 60 makes.
  minutesBetween: (later, earlier) => `TIMESTAMP_DIFF(${later}, ${earlier}, MICROSECOND) / 1000000 / 60`,
  shiftMinutes: (ts, sign, minutes) => `TIMESTAMP_${sign === '+' ? 'ADD' : 'SUB'}(${ts}, INTERVAL ${minutes} MINUTE)`,
  // TRIM alone strips every whitespace character, DuckDB's trim only spaces.
  trimSpaces: (expr) => `TRIM(${expr}, ' ')`,
  concatText: (expr) => `CAST(${expr} AS STRING)`,
  castText: (expr) => `CAST(${expr} AS STRING)`,
  fullMatch: (expr, pattern) => `REGEXP_CONTAINS(${expr}, ${string(`^(?:${pattern})$`)})`,
  struct: (fields) => `STRUCT(${fields.map(([k, v]) => `${v} AS ${ident(k)}`).join(', ')})`,
  // GoogleSQL as ZetaSQL knows it has no UNION BY NAME: every SELECT lists every column, in one order.
  unionAllByName: (selects) => {
    const names = [...new Set(selects.flatMap((s) => s.columns.map(([name]) => name)))];
    return selects
      .map((s) => {
        const of = new Map(s.columns);
        return `SELECT ${names.map((n) => `${of.get(n) ?? 'NULL'} AS ${ident(n)}`).join(', ')}\n${s.rest}`;
      })
      .join('\nUNION ALL\n');
  },
  // BigQuery accepts QUALIFY only beside a WHERE, GROUP BY or HAVING.
  qualify: (where, condition) => `\n  WHERE ${where ?? 'true'}\n  QUALIFY ${condition}`,
  valuesCte: (name, columns, rows) =>
    `${name} AS (\n  ${rows.map((r) => `SELECT ${r.map((v, i) => `${literal(v)} AS ${columns[i]}`).join(', ')}`).join('\n  UNION ALL ')})`,
};

function literal(value: string | number): string {
  return typeof value === 'number' ? String(value) : string(value);
}
