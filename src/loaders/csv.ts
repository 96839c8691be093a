import { parse } from 'csv-parse';
import { listValue, structValue } from '@duckdb/node-api';
import { quoteIdent } from '../contract/tables.ts';
import type { Db } from '../db.ts';
import { InputError, errorMessage } from '../errors.ts';
import { mapCsvLines } from './csv-lines.ts';
import type { SourceFile } from './discover.ts';
import { openDecompressed } from './files.ts';
import { REJECTS_TABLE } from './typing.ts';

/** The header record, read by csv-parse before DuckDB reads the body; null for an empty file. */
export async function readCsvHeader(file: string): Promise<string[] | null> {
  const input = openDecompressed(file);
  const parser = input.pipe(parse({ bom: true, to_line: 1, relax_column_count: true }));
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

/**
 * Stages one CSV file into `raw` as text columns plus `__file`, and returns the relation that adds
 * each row's physical `__line`. Records DuckDB cannot
 * split into the header's columns (too many or too few fields, broken quoting, invalid UTF-8)
 * go to `recon_rejects` with their physical line.
 */
export async function stageCsv(db: Db, file: SourceFile, raw: string, table: string): Promise<string> {
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
    if (seen.has(name.toLowerCase())) throw new InputError(`${file.rel}: line 1, column ${i + 1}: duplicate column name "${name}"`);
    seen.add(name.toLowerCase());
  });

  await db.run(`DROP TABLE IF EXISTS __rej; DROP TABLE IF EXISTS __rejscan`);
  await db.run(
    `CREATE OR REPLACE TEMP TABLE ${quoteIdent(raw)} AS
     SELECT *, $rel AS __file
     FROM read_csv($path, header = true, auto_detect = false, columns = $columns,
                   delim = ',', quote = '"', escape = '"',
                   store_rejects = true, rejects_table = '__rej', rejects_scan = '__rejscan')`,
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
  const rows = stats?.rows ?? 0n;
  const simple = rejects.length === 0 && stats?.lines === rows + 1n;

  const named = `(SELECT ${header.map((name, i) => `c${i} AS ${quoteIdent(name)}`).join(', ')}, __file, rowid AS __rowid FROM ${quoteIdent(raw)})`;
  // DuckDB keeps the file's row order in rowid: after the header, row i sits on line i + 2.
  if (simple) return `(SELECT * EXCLUDE (__rowid), __rowid + 2 AS __line FROM ${named})`;
  const map = await mapCsvLines(file.path, new Set(rejects.map((r) => Number(r.line))));
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
  return `(SELECT r.* EXCLUDE (__rowid), r.__rowid + 2 + coalesce(b.delta, 0) AS __line
           FROM ${named} r
           ASOF LEFT JOIN __breaks b ON r.__rowid >= b.idx)`;
}
