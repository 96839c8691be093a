import { quoteIdent, type TableSpec } from '../contract/tables.ts';
import { sourceColumn, type Config } from '../config.ts';
import type { Db } from '../db.ts';
import { LINE_READER_DELIM, LINE_READER_OPTIONS } from './csv.ts';
import type { SourceFile } from './discover.ts';
import { REJECTS_TABLE } from './typing.ts';

/** A JSON Pointer (RFC 6901) to one top-level key, so any key name is addressed safely. */
function pointer(key: string): string {
  return '/' + key.replaceAll('~', '~0').replaceAll('/', '~1');
}

/**
 * Stages one newline-delimited JSON file (plain or gzip). The file is read as physical lines so
 * every object keeps its exact line number; a line that is not a JSON object is rejected with
 * that line, never skipped. Blank lines are allowed and ignored. Values come out as text
 * (`->>` renders numbers exactly, so INT64-as-string and INT64-as-number read the same), and a
 * missing key is NULL.
 */
export async function stageNdjson(db: Db, file: SourceFile, raw: string, spec: TableSpec, config: Config): Promise<void> {
  const lines = `${raw}__lines`;
  await db.run(`DROP TABLE IF EXISTS __rej; DROP TABLE IF EXISTS __rejscan`);
  await db.run(
    `CREATE OR REPLACE TEMP TABLE ${quoteIdent(lines)} AS
     SELECT line,
            -- Vectorised CASE and AND evaluate every argument: only valid text reaches json_type.
            json_type(CASE WHEN json_valid(line) THEN line END) AS kind
     FROM (SELECT rtrim(line, chr(13)) AS line
           FROM read_csv($path, ${LINE_READER_OPTIONS},
                         store_rejects = true, rejects_table = '__rej', rejects_scan = '__rejscan'))`,
    { path: file.path, delim: LINE_READER_DELIM },
  );
  const params: Record<string, string> = { rel: file.rel };
  const cols = spec.columns.map((c, i) => {
    params[`k${i}`] = pointer(sourceColumn(config, spec.name, c.name));
    return `json_extract_string(obj, $k${i}) AS ${quoteIdent(sourceColumn(config, spec.name, c.name))}`;
  });
  await db.run(
    `CREATE OR REPLACE TEMP TABLE ${quoteIdent(raw)} AS
     SELECT ${cols.join(', ')}, $rel AS __file, __line
     FROM (SELECT rowid + 1 AS __line, CASE WHEN kind = 'OBJECT' THEN line END AS obj
           FROM ${quoteIdent(lines)} WHERE trim(line) <> '')
     WHERE obj IS NOT NULL`,
    params,
  );
  await db.run(
    `INSERT INTO ${REJECTS_TABLE}
     SELECT $table, $rel, rowid + 1, [{'column': NULL, 'value': left(line, 200),
       'message': CASE WHEN kind IS NULL THEN 'invalid JSON' ELSE 'not a JSON object' END}]
     FROM ${quoteIdent(lines)}
     WHERE trim(line) <> '' AND kind IS DISTINCT FROM 'OBJECT'`,
    { table: spec.name, rel: file.rel },
  );
  // The line reader only rejects a line holding U+0001, which JSON forbids unescaped.
  await db.run(
    `INSERT INTO ${REJECTS_TABLE}
     SELECT $table, $rel, line, [{'column': NULL, 'value': left(csv_line, 200), 'message': 'invalid JSON (control character)'}]
     FROM __rej`,
    { table: spec.name, rel: file.rel },
  );
  await db.run(`DROP TABLE ${quoteIdent(lines)}`);
}
