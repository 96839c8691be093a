import { listValue } from '@duckdb/node-api';
import { quoteIdent, type TableSpec } from '../contract/tables.ts';
import { sourceColumn, type Config } from '../config.ts';
import type { Db } from '../db.ts';
import { sqlString } from '../sql.ts';
import { LINE_READER_DELIM, LINE_READER_OPTIONS } from './csv.ts';
import type { LineAccount } from './csv-lines.ts';
import type { SourceFile } from './discover.ts';
import { REJECTS_TABLE } from '../contract/rejects.ts';

/** A JSON Pointer (RFC 6901) to one top-level key, so any key name is addressed safely. */
function pointer(key: string): string {
  return '/' + key.replaceAll('~', '~0').replaceAll('/', '~1');
}

/**
 * A cheap test on the raw line for the only values that need their JSON kind checked: a `{` or
 * `[` after the line's first character (an object or array value), or a key followed by a
 * number with a fraction or exponent (or NaN/Infinity, which DuckDB accepts). It never misses
 * one; a false hit only costs one `json_type`.
 */
const KIND_CHECK_CANDIDATE = String.raw`.[\[{]|"\s*:\s*-?([0-9]+[.eE]|NaN|Inf)`;

const MESSAGES = {
  object: 'a JSON object where a scalar was expected',
  array: 'a JSON array where a scalar was expected',
  inexact: 'a number that cannot be represented exactly as text (write it as a JSON string)',
};

/** What the line reader could not read, by DuckDB's error type. */
const LINE_READER_MESSAGE = `CASE error_type::VARCHAR
  WHEN 'TOO MANY COLUMNS' THEN 'invalid JSON (control character)'
  WHEN 'INVALID ENCODING' THEN 'invalid JSON (not valid UTF-8)'
  WHEN 'LINE SIZE OVER MAXIMUM' THEN 'line too long (over the line reader''s maximum line size)'
  ELSE 'unreadable line: ' || lower(error_type::VARCHAR) || ': ' || error_message END`;

/**
 * Stages one newline-delimited JSON file (plain or gzip). The file is read as physical lines so
 * every object keeps its exact line number; a line that is not a JSON object is rejected with
 * that line, never skipped, and so is an object naming one key twice (DuckDB would keep the
 * first value silently). Blank lines are allowed and ignored. A missing key is NULL.
 *
 * Values come out as text: strings as they are, integers exactly (`->>` renders INT64 beyond
 * 2^53 and integers beyond 64 bits digit for digit, so INT64-as-string and INT64-as-number read
 * the same) and booleans as `true`/`false`. A value whose text would not be the file's is
 * rejected with its column instead: an object or array where a scalar belongs, and a number
 * with a fraction or exponent in a string column (DuckDB reads it as a DOUBLE, so `1.10` would
 * become `1.1` and long numbers would be rounded). Money and integer columns leave such numbers
 * to typing, which rejects anything that is not an exact integer.
 *
 * Passes over the data: one to split the file into lines, one to extract the columns, one to
 * find the lines that are not objects; a file with bad lines adds a small join for line numbers
 * and a delete of the rejected rows.
 */
export async function stageNdjson(db: Db, file: SourceFile, raw: string, spec: TableSpec, config: Config): Promise<LineAccount> {
  const lines = `${raw}__lines`;
  const params = { table: spec.name, rel: file.rel };
  await db.run(`DROP TABLE IF EXISTS __rej; DROP TABLE IF EXISTS __rejscan`);
  await db.run(
    `CREATE OR REPLACE TEMP TABLE ${quoteIdent(lines)} AS
     SELECT line,
            -- Vectorised CASE and AND evaluate every argument: only valid text reaches json_type.
            -- An object with a key twice is read with the first value only: its kind is DUPLICATE_KEY.
            CASE WHEN len(keys) <> len(list_distinct(keys)) THEN 'DUPLICATE_KEY' ELSE kind END AS kind
     FROM (SELECT line, json_type(valid) AS kind, json_keys(valid) AS keys
           FROM (SELECT line, CASE WHEN json_valid(line) THEN line END AS valid
                 FROM (SELECT rtrim(line, chr(13)) AS line
           FROM read_csv($path, ${LINE_READER_OPTIONS},
                         store_rejects = true, rejects_table = '__rej', rejects_scan = '__rejscan'))))`,
    { path: file.path, delim: LINE_READER_DELIM },
  );

  // Lines the line reader could not read (U+0001, invalid UTF-8, over max_line_size) are not in
  // the lines table, so a row's physical line is its rowid + 1 plus the rejected lines before it.
  // `__rej.line` is physical here: this reader has no quotes, every line is one record.
  const readerRejects = await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM __rej`);
  let numbered = `(SELECT *, rowid + 1 AS __line FROM ${quoteIdent(lines)})`;
  if ((readerRejects?.n ?? 0n) > 0n) {
    // Rejected line k (in file order) at physical line p has p - k accepted lines before it, so
    // every accepted row from index p - k on sits k lines further down.
    await db.run(
      `CREATE OR REPLACE TEMP TABLE __ndjson_breaks AS
       SELECT line - k AS idx, max(k) AS delta
       FROM (SELECT line, row_number() OVER (ORDER BY line) AS k FROM (SELECT DISTINCT line FROM __rej))
       GROUP BY ALL`,
    );
    numbered = `(SELECT l.* EXCLUDE (__rowid), l.__rowid + 1 + coalesce(b.delta, 0) AS __line
                 FROM (SELECT *, rowid AS __rowid FROM ${quoteIdent(lines)}) l
                 ASOF LEFT JOIN __ndjson_breaks b ON l.__rowid >= b.idx)`;
    await db.run(
      `INSERT INTO ${REJECTS_TABLE}
       SELECT $table, $rel, line,
              [{'column': NULL, 'value': left(trim(arg_min(csv_line, byte_position), chr(10) || chr(13)), 200),
                'message': arg_min(${LINE_READER_MESSAGE}, byte_position)}]
       FROM __rej GROUP BY line`,
      params,
    );
  }

  // One entry per distinct source column (two canonical columns may read the same key).
  const sources = new Map<string, { string: boolean }>();
  for (const c of spec.columns) {
    const src = sourceColumn(config, spec.name, c.name);
    const seen = sources.get(src);
    sources.set(src, { string: (seen?.string ?? false) || c.type === 'string' });
  }
  const names = [...sources.keys()];
  const paths = listValue(names.map(pointer));
  const problems = names.map((src, i) => {
    const [s, t] = [`s[${i + 1}]`, `t[${i + 1}]`];
    const problem = (message: string) => `{'column': $c${i}, 'value': left(${s}, 200), 'message': ${sqlString(message)}}`;
    return `CASE ${t} WHEN 'OBJECT' THEN ${problem(MESSAGES.object)} WHEN 'ARRAY' THEN ${problem(MESSAGES.array)}${
      // A DOUBLE rendered as digits only is an integer beyond 64 bits, which DuckDB keeps exact.
      sources.get(src)!.string ? ` WHEN 'DOUBLE' THEN CASE WHEN NOT regexp_full_match(${s}, '-?[0-9]+') THEN ${problem(MESSAGES.inexact)} END` : ''
    } END`;
  });
  const columnParams = Object.fromEntries(names.map((src, i) => [`c${i}`, src]));

  // Each JSON function call parses the line: the list forms parse it once for every column.
  await db.run(
    `CREATE OR REPLACE TEMP TABLE ${quoteIdent(raw)} AS
     SELECT ${names.map((src, i) => `s[${i + 1}] AS ${quoteIdent(src)}`).join(', ')}, $rel AS __file, __line,
            CASE WHEN t IS NOT NULL THEN nullif(list_filter([${problems.join(', ')}], p -> p IS NOT NULL), []) END AS __problems
     FROM (SELECT json_extract_string(line, $paths) AS s,
                  CASE WHEN regexp_matches(line, $candidate) THEN json_type(line, $paths) END AS t,
                  __line
           FROM ${numbered} WHERE kind = 'OBJECT')`,
    { rel: file.rel, paths, candidate: KIND_CHECK_CANDIDATE, ...columnParams },
  );
  const kindRejects = await db.change(
    `INSERT INTO ${REJECTS_TABLE} SELECT $table, __file, __line, __problems FROM ${quoteIdent(raw)} WHERE __problems IS NOT NULL`,
    { table: spec.name },
  );
  if (kindRejects > 0) await db.run(`DELETE FROM ${quoteIdent(raw)} WHERE __problems IS NOT NULL`);
  await db.run(`ALTER TABLE ${quoteIdent(raw)} DROP COLUMN __problems`);

  await db.run(
    `INSERT INTO ${REJECTS_TABLE}
     SELECT $table, $rel, __line, [{'column': NULL, 'value': left(line, 200),
       'message': CASE kind WHEN 'DUPLICATE_KEY' THEN 'a JSON object with a key given twice (which value counts is ambiguous)'
                            ELSE CASE WHEN kind IS NULL THEN 'invalid JSON' ELSE 'not a JSON object' END END}]
     FROM ${numbered}
     WHERE kind IS DISTINCT FROM 'OBJECT' AND trim(line) <> ''`,
    params,
  );
  const count = await db.one<{ physical: bigint; blank: bigint }>(
    `SELECT count(*) + (SELECT count(DISTINCT line) FROM __rej) AS physical,
            count(*) FILTER (WHERE line IS NULL OR trim(line) = '') AS blank
     FROM ${quoteIdent(lines)}`,
  );
  await db.run(`DROP TABLE ${quoteIdent(lines)}; DROP TABLE IF EXISTS __ndjson_breaks`);
  return { physical: Number(count?.physical ?? 0n), header: 0, blank: Number(count?.blank ?? 0n), continuation: 0 };
}
