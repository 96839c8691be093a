import { parse } from 'csv-parse';
import { listValue, structValue } from '@duckdb/node-api';
import { quoteIdent, type TableSpec } from '../contract/tables.ts';
import type { Config } from '../config.ts';
import type { Db } from '../db.ts';
import { InputError, ReconError, errorMessage } from '../errors.ts';
import { sqlString } from '../sql.ts';
import { mapCsvLines, type LineAccount } from './csv-lines.ts';
import type { SourceFile } from './discover.ts';
import { openDecompressed, type FileScan } from './files.ts';
import { REJECTS_TABLE } from '../contract/rejects.ts';
import { typeStagedFile } from './typing.ts';

/** The header record, read by csv-parse before DuckDB reads the body; null for an empty file. */
export async function readCsvHeader(file: string): Promise<string[] | null> {
  const input = openDecompressed(file);
  const parser = input.pipe(parse({ bom: true, to_line: 1, relax_column_count: true }));
  input.on('error', (err) => parser.destroy(err));
  try {
    for await (const record of parser) return record as string[];
    return null;
  } finally {
    input.destroy();
  }
}

/** One column per physical line: counting lines this way stays inside DuckDB. */
export const LINE_READER_OPTIONS = `header = false, auto_detect = false, columns = {'line': 'VARCHAR'}, delim = $delim, quote = '', escape = ''`;
/** U+0001 cannot occur in valid JSON text and hardly in a CSV, so every line is one value. */
export const LINE_READER_DELIM = '\u0001';

/** A staged text file: the relation typing reads, and how its physical lines divide up. */
export interface StagedText {
  readonly relation: string;
  readonly lines: LineAccount;
}

/** The header's column names, refused when the file has none or names a column twice. */
export async function csvHeader(file: SourceFile, table: string): Promise<string[]> {
  let header: string[] | null;
  try {
    header = await readCsvHeader(file.path);
  } catch (err) {
    throw new InputError(`${file.rel}: line 1: cannot read the CSV header: ${errorMessage(err)}`, { cause: err });
  }
  if (!header || header.length === 0 || (header.length === 1 && header[0] === '')) {
    throw new InputError(`${file.rel}: empty file: no header line naming the ${table} columns`);
  }
  // DuckDB's names are case-insensitive, so `Cost` and `cost` cannot both be columns.
  const seen = new Set<string>();
  header.forEach((name, i) => {
    if (name === '') return;
    if (seen.has(name.toLowerCase())) throw new InputError(`${file.rel}: line 1, column ${i + 1}: duplicate column name "${name}"`);
    seen.add(name.toLowerCase());
  });
  return header;
}

/** DuckDB's CSV reader over one file, every column text under a positional name (`c0`, `c1`, ...). */
function readCsvSql(pathSql: string, columnsSql: string): string {
  return `read_csv(${pathSql}, header = true, auto_detect = false, columns = ${columnsSql},
                   delim = ',', quote = '"', escape = '"',
                   store_rejects = true, rejects_table = '__rej', rejects_scan = '__rejscan')`;
}

/**
 * The common case in one read: a CSV file whose every line after the header is one record that
 * types cleanly goes straight from DuckDB's reader into the contract table, while `scan` (the
 * byte pass that hashes the file) counts its lines. The file qualifies only when nothing needs a
 * line map: no record rejected by the reader or by typing, no lone carriage return, and exactly
 * one record per physical line, so the n-th row sits on line n + 1. Anything else is rolled back
 * and returns null, and the caller takes the staged way ({@link stageCsv}), which accounts for
 * every line. Line numbers come from the rows' order of insertion, which DuckDB keeps.
 */
export async function loadCsvInOnePass(
  db: Db,
  file: SourceFile,
  spec: TableSpec,
  config: Config,
  header: readonly string[],
  scan: Promise<FileScan>,
): Promise<{ rows: number; lines: LineAccount } | null> {
  // An unnamed column must be checked for values before it is dropped: that needs the staged copy.
  if (header.includes('')) return null;
  const columns = `{${header.map((_, i) => `'c${i}': 'VARCHAR'`).join(', ')}}`;
  const relation = `(SELECT ${header.map((name, i) => `c${i} AS ${quoteIdent(name)}`).join(', ')},
                            ${sqlString(file.rel)} AS __file, NULL::BIGINT AS __line
                     FROM ${readCsvSql(sqlString(file.path), columns)})`;
  const table = quoteIdent(spec.name);
  await db.run(`DROP TABLE IF EXISTS __rej; DROP TABLE IF EXISTS __rejscan`);
  await db.run('BEGIN TRANSACTION');
  let clean: { rows: number; lines: number } | undefined;
  try {
    const rows = await typeStagedFile(db, relation, spec, config, file.rel, true, true);
    const rejected = await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM __rej`);
    const { lines, loneCr } = await scan;
    if (rows !== null && (rejected?.n ?? 1n) === 0n && !loneCr && lines === rows + 1) clean = { rows, lines };
  } catch (err) {
    await db.run('ROLLBACK');
    // A schema error is the file's answer either way; any other failure is left to the staged way.
    if (err instanceof ReconError) throw err;
    return null;
  }
  if (!clean) {
    await db.run('ROLLBACK');
    return null;
  }
  await db.run('COMMIT');
  // After the commit: updating rows of an open transaction made its commit rewrite them.
  await db.run(
    `UPDATE ${table} SET __line = rowid - (SELECT min(rowid) FROM ${table} WHERE __file = $rel) + 2 WHERE __file = $rel`,
    { rel: file.rel },
  );
  return { rows: clean.rows, lines: { physical: clean.lines, header: 1, blank: 0, continuation: 0 } };
}

/**
 * Stages one CSV file into `raw` as text columns plus `__file`, and returns the relation that adds
 * each row's physical `__line`. Records DuckDB cannot
 * split into the header's columns (too many or too few fields, broken quoting, invalid UTF-8)
 * go to `recon_rejects` with their physical line.
 */
export async function stageCsv(db: Db, file: SourceFile, raw: string, table: string, header: string[]): Promise<StagedText> {
  await db.run(`DROP TABLE IF EXISTS __rej; DROP TABLE IF EXISTS __rejscan`);
  await db.run(
    `CREATE OR REPLACE TEMP TABLE ${quoteIdent(raw)} AS
     SELECT *, $rel AS __file
     FROM ${readCsvSql('$path', '$columns')}`,
    {
      path: file.path,
      rel: file.rel,
      // Staged under positional names: a header may say `rowid`, which would hide DuckDB's own.
      columns: structValue(Object.fromEntries(header.map((_, i) => [`c${i}`, 'VARCHAR']))),
    },
  );

  const rejects = await db.all<{ line: bigint }>(`SELECT DISTINCT line FROM __rej ORDER BY line`);
  const stats = await db.one<{ rows: bigint; lines: bigint }>(
    `SELECT (SELECT count(*) FROM ${quoteIdent(raw)}) AS rows,
            (SELECT count(*) FROM read_csv($path, ${LINE_READER_OPTIONS}, ignore_errors = true)) AS lines`,
    { path: file.path, delim: LINE_READER_DELIM },
  );
  if (!stats) throw new InputError(`${file.rel}: cannot count the file's rows and lines`);
  const rows = stats.rows;
  const simple = rejects.length === 0 && stats.lines === rows + 1n;

  // A header column without a name is what a trailing comma on every line leaves (a spreadsheet
  // artefact): it is dropped when it holds nothing, and refused when it holds values.
  const unnamed = header.flatMap((name, i) => (name === '' ? [i] : []));
  for (const i of unnamed) {
    const filled = await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM ${quoteIdent(raw)} WHERE trim(c${i}) <> ''`);
    if ((filled?.n ?? 0n) > 0n) {
      throw new InputError(`${file.rel}: line 1, column ${i + 1}: the header gives no name to a column that holds values in ${filled?.n} row(s)`);
    }
  }
  const named = `(SELECT ${header.flatMap((name, i) => (name === '' ? [] : [`c${i} AS ${quoteIdent(name)}`])).join(', ')}, __file, rowid AS __rowid FROM ${quoteIdent(raw)})`;
  // DuckDB keeps the file's row order in rowid: after the header, row i sits on line i + 2.
  if (simple) {
    return {
      relation: `(SELECT * EXCLUDE (__rowid), __rowid + 2 AS __line FROM ${named})`,
      lines: { physical: Number(stats.lines), header: 1, blank: 0, continuation: 0 },
    };
  }
  const map = await mapCsvLines(file.path, new Set(rejects.map((r) => Number(r.line))));
  // The byte scan and DuckDB must see the same records, or rows went missing between them.
  if (map.records !== Number(rows) + rejects.length) {
    throw new InputError(
      `${file.rel}: ${map.records} records after the header, but the CSV reader loaded ${rows} and rejected ${rejects.length}: ` +
        'the reader and a byte scan disagree on the file\'s quoting, so rows could go unseen',
    );
  }
  await db.run(`CREATE OR REPLACE TEMP TABLE __breaks (idx BIGINT, delta BIGINT)`);
  await db.run(`CREATE OR REPLACE TEMP TABLE __reject_lines (logical BIGINT, physical BIGINT)`);
  for (const [idx, delta] of map.breaks) await db.run(`INSERT INTO __breaks VALUES ($idx, $delta)`, { idx, delta });
  for (const [logical, physical] of map.rejectPhysical) {
    await db.run(`INSERT INTO __reject_lines VALUES ($logical, $physical)`, { logical, physical });
  }
  await db.run(
    `INSERT INTO ${REJECTS_TABLE}
     SELECT $table, $rel, coalesce(l.physical, r.line),
            list({'column': list_extract($header, (r.column_idx + 1)::BIGINT), 'value': left(r.csv_line, 200),
                  'message': lower(replace(r.error_type::VARCHAR, '_', ' ')) || ': ' || r.error_message}
                 ORDER BY r.column_idx)
     FROM __rej r LEFT JOIN __reject_lines l ON l.logical = r.line
     GROUP BY ALL`,
    { table, rel: file.rel, header: listValue(header) },
  );
  if (map.unterminatedQuote) {
    const { line, swallowed } = map.unterminatedQuote;
    await db.run(
      `INSERT INTO ${REJECTS_TABLE}
       SELECT $table, $rel, l, [{'column': NULL, 'value': NULL, 'message': $message}]
       FROM range($from, $to) t(l)`,
      {
        table,
        rel: file.rel,
        from: line + 1,
        to: line + 1 + swallowed,
        message: `unreadable: inside the quoted field opened on line ${line}, which is never closed`,
      },
    );
  }
  return {
    relation: `(SELECT r.* EXCLUDE (__rowid), r.__rowid + 2 + coalesce(b.delta, 0) AS __line
           FROM ${named} r
           ASOF LEFT JOIN __breaks b ON r.__rowid >= b.idx)`,
    lines: map.lines,
  };
}
