import { quoteIdent, type ColumnSpec, type TableSpec } from '../contract/tables.ts';
import { sourceColumn, type Config } from '../config.ts';
import type { Db } from '../db.ts';
import { InputError } from '../errors.ts';
import { sqlString } from '../sql.ts';
import { TIMESTAMP_TEXT } from '../contract/instant.ts';
import { REJECTS_TABLE } from '../contract/rejects.ts';

const INTEGER_TYPES = new Set(['TINYINT', 'SMALLINT', 'INTEGER', 'BIGINT', 'UTINYINT', 'USMALLINT', 'UINTEGER', 'UBIGINT', 'HUGEINT', 'UHUGEINT']);
const TIMESTAMP_TYPES = new Set(['TIMESTAMP', 'TIMESTAMP WITH TIME ZONE', 'TIMESTAMP_S', 'TIMESTAMP_MS', 'TIMESTAMP_NS']);

/**
 * A native timestamp must be an instant a text export could also carry: `infinity` and values
 * beyond year 9999 are rejected, as in text, instead of crashing a report later.
 */
export const TIMESTAMP_MIN = `TIMESTAMPTZ '0001-01-01 00:00:00+00'`;
export const TIMESTAMP_MAX = `TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'`;
/** DuckDB's names for nested types (a STRUCT, LIST, MAP, UNION or fixed-size ARRAY). */
const NESTED_TYPE = /^(STRUCT|MAP|UNION)\(|\]$/;
const INTEGER_TEXT = '[+-]?[0-9]+';

interface Typing {
  /** SQL typing `v` (the value as trimmed text) or `r` (the raw value) into the column's type. */
  readonly expr: (v: string, r: string) => string;
  readonly message: string;
}

function typingFor(col: ColumnSpec, rawType: string): Typing {
  // Rendered as text, a STRUCT would become `{'p': p_3_1}` and pass as an id.
  if (NESTED_TYPE.test(rawType)) return { expr: () => 'NULL', message: `a nested value (${rawType}) where a scalar was expected` };
  switch (col.type) {
    case 'string':
      return { expr: (v) => v, message: '' };
    case 'bigint':
    case 'int':
      return {
        // DuckDB's own cast rounds '12.5' to 13 and reads '1e3' as 1000: money must be an
        // exact integer, so text has to look like one before it is cast.
        expr: (v, r) =>
          INTEGER_TYPES.has(rawType)
            ? `TRY_CAST(${r} AS BIGINT)`
            : `CASE WHEN regexp_full_match(${v}, '${INTEGER_TEXT}') THEN TRY_CAST(${v} AS BIGINT) END`,
        message: col.type === 'bigint' ? 'not an integer amount of minor units (or out of BIGINT range)' : 'not an integer',
      };
    case 'timestamp':
      return {
        expr: (v, r) =>
          TIMESTAMP_TYPES.has(rawType)
            ? `CASE WHEN CAST(${r} AS TIMESTAMPTZ) BETWEEN ${TIMESTAMP_MIN} AND ${TIMESTAMP_MAX} THEN CAST(${r} AS TIMESTAMPTZ) END`
            : // ' UTC' means Z; spelled as a zone name it costs an ICU lookup per row.
              `CASE WHEN regexp_full_match(${v}, '${TIMESTAMP_TEXT}') THEN TRY_CAST(CASE WHEN suffix(${v}, ' UTC') THEN left(${v}, -4) || 'Z' ELSE ${v} END AS TIMESTAMPTZ) END`,
        message: TIMESTAMP_TYPES.has(rawType)
          ? 'not a finite timestamp between the years 1 and 9999'
          : 'not a valid timestamp (ISO-8601 with Z or an offset up to ±18:00, or YYYY-MM-DD HH:MM:SS[.ffffff][ UTC])',
      };
    case 'bool':
      return {
        expr: (v, r) =>
          rawType === 'BOOLEAN'
            ? r
            : `CASE lower(${v}) WHEN 'true' THEN true WHEN 't' THEN true WHEN '1' THEN true WHEN 'false' THEN false WHEN 'f' THEN false WHEN '0' THEN false END`,
        message: 'not a boolean (true/false, t/f, 1/0)',
      };
  }
}

/** The message of the error a fail-fast typing pass raises inside DuckDB; nothing else says it. */
const TYPING_FAILED = 'recon: a row does not type (fail-fast pass)';

/**
 * Types one staged file into the contract table, and moves every row that cannot be typed to
 * `recon_rejects` with the column, value and reason. A value that was present and does not
 * survive typing always rejects the row: it never becomes NULL.
 *
 * `staged` is a relation (table name or parenthesised query) with the file's columns plus
 * `__file` and `__line`. Typing runs twice over it, once for the good rows and once for the
 * bad: casts are cheap next to materialising a second wide copy of a million rows.
 *
 * With `failFast`, typing runs once and the first row that does not type aborts the statement
 * (the result is then null, and the caller rolls back and takes the two-pass way): the common
 * clean file is read once, straight from its source, with no rejects pass.
 *
 * `requireColumns` is false for JSON, where a key missing from an object (BigQuery omits NULLs)
 * means NULL; for header-based formats a missing column is a schema error (exit 2).
 */
export async function typeStagedFile(
  db: Db,
  staged: string,
  spec: TableSpec,
  config: Config,
  fileRel: string,
  requireColumns: boolean,
): Promise<number>;
export async function typeStagedFile(
  db: Db,
  staged: string,
  spec: TableSpec,
  config: Config,
  fileRel: string,
  requireColumns: boolean,
  failFast: true,
): Promise<number | null>;
export async function typeStagedFile(
  db: Db,
  staged: string,
  spec: TableSpec,
  config: Config,
  fileRel: string,
  requireColumns: boolean,
  failFast = false,
): Promise<number | null> {
  const described = await db.all<{ column_name: string; column_type: string }>(`DESCRIBE SELECT * FROM ${staged}`);
  const rawTypes = new Map(described.map((d) => [d.column_name, d.column_type]));

  const missing = spec.columns
    .map((c) => ({ c, src: sourceColumn(config, spec.name, c.name) }))
    .filter(({ src }) => !rawTypes.has(src));
  if (requireColumns && missing.length > 0) {
    const names = missing.map(({ c, src }) => (src === c.name ? `"${src}"` : `"${src}" (mapped to ${c.name})`));
    throw new InputError(`${fileRel}: ${spec.name} is missing column${names.length > 1 ? 's' : ''} ${names.join(', ')}`);
  }

  const inner: string[] = [];
  const typed: string[] = [];
  const failed: string[] = [];
  const problems: string[] = [];
  spec.columns.forEach((col, i) => {
    const src = sourceColumn(config, spec.name, col.name);
    const rawType = rawTypes.get(src);
    const v = `v${i}`;
    const r = `r${i}`;
    if (rawType === undefined) {
      inner.push(`NULL::VARCHAR AS ${v}`, `NULL AS ${r}`);
    } else {
      const text = `CAST(${quoteIdent(src)} AS VARCHAR)`;
      // An empty field is NULL (CONTRACT.md §1); surrounding blanks only matter in free text.
      inner.push(`NULLIF(${col.type === 'string' ? text : `trim(${text})`}, '') AS ${v}`, `${quoteIdent(src)} AS ${r}`);
    }
    const typing = typingFor(col, rawType ?? 'VARCHAR');
    typed.push(`${typing.expr(v, r)} AS ${quoteIdent(col.name)}`);
    if (col.type !== 'string' || NESTED_TYPE.test(rawType ?? '')) {
      const bad = `(${v} IS NOT NULL AND ${quoteIdent(col.name)} IS NULL)`;
      failed.push(bad);
      problems.push(`CASE WHEN ${bad} THEN {'column': ${sqlString(src)}, 'value': left(${v}, 200), 'message': ${sqlString(typing.message)}} END`);
    }
  });

  const rows = `(SELECT ${typed.join(', ')}, ${spec.columns.map((_, i) => `v${i}`).join(', ')}, __file, __line
                 FROM (SELECT ${inner.join(', ')}, __file, __line FROM ${staged}))`;
  const anyFailed = failed.join(' OR ') || 'false';
  const cols = spec.columns.map((c) => quoteIdent(c.name)).join(', ');
  const insert = `INSERT INTO ${quoteIdent(spec.name)} SELECT ${cols}, __file, __line FROM ${rows}`;
  if (failFast) {
    try {
      return await db.change(`${insert} WHERE CASE WHEN ${anyFailed} THEN error(${sqlString(TYPING_FAILED)}) ELSE true END`);
    } catch (err) {
      if (String((err as Error)?.message).includes(TYPING_FAILED)) return null;
      throw err;
    }
  }
  const loaded = await db.change(`${insert} WHERE NOT (${anyFailed})`);
  await db.run(
    `INSERT INTO ${REJECTS_TABLE}
     SELECT $table, __file, __line, list_filter([${problems.join(', ') || 'NULL'}], p -> p IS NOT NULL) FROM ${rows} WHERE ${anyFailed}`,
    { table: spec.name },
  );
  return loaded;
}
