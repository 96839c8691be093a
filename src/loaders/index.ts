import { createTableSql, quoteIdent, TABLES, type TableName } from '../contract/tables.ts';
import { sourceColumn, type Config } from '../config.ts';
import type { Db } from '../db.ts';
import type { InputFile } from '../contract/inputs.ts';
import { stageArrow } from './arrow.ts';
import { stageCsv } from './csv.ts';
import type { LineAccount } from './csv-lines.ts';
import { discoverSources, type SourceFile } from './discover.ts';
import { sha256File } from '../shared/hash.ts';
import { verifyGzip } from './files.ts';
import { InputError, ReconError, errorMessage } from '../errors.ts';
import { stageNdjson } from './ndjson.ts';
import { stageParquet } from './parquet.ts';
import { REJECTS_DDL, REJECTS_TABLE } from '../contract/rejects.ts';
import { typeStagedFile } from './typing.ts';

export { discoverSources } from './discover.ts';

export interface LoadResult {
  /** The contract tables present in this export (required ones always are). */
  tables: Set<TableName>;
  inputs: InputFile[];
}

export interface LoadOptions {
  /** Called after each file; the CLI turns it into a progress line on a terminal. */
  onProgress?: (p: { table: TableName; file: string; rows: number; elapsedMs: number }) => void;
}

/**
 * Stages one file into `raw`; returns the relation typing reads (the file's columns, `__file`,
 * `__line`) and, for text formats, how the file's physical lines divide up.
 */
async function stage(db: Db, file: SourceFile, raw: string, table: TableName, config: Config): Promise<{ relation: string; lines?: LineAccount }> {
  switch (file.format) {
    case 'csv':
      return stageCsv(db, file, raw, table);
    case 'ndjson':
      return { relation: quoteIdent(raw), lines: await stageNdjson(db, file, raw, TABLES[table], config) };
    case 'parquet':
      await stageParquet(db, file, raw);
      break;
    case 'arrow':
      await stageArrow(db, file, raw, table, new Set(TABLES[table].columns.map((c) => sourceColumn(config, table, c.name))));
      break;
  }
  return { relation: quoteIdent(raw) };
}

/**
 * Loads every table of an export directory into typed DuckDB tables named after the contract
 * tables. Rows that cannot be typed land in `recon_rejects`; nothing is dropped silently and
 * input files are only ever read.
 */
export async function loadExports(db: Db, exportsDir: string, config: Config, opts: LoadOptions = {}): Promise<LoadResult> {
  const sources = await discoverSources(exportsDir);
  await db.run(REJECTS_DDL);
  const inputs: InputFile[] = [];
  const started = Date.now();
  for (const [table, source] of sources) {
    await db.run(createTableSql(TABLES[table]));
    for (const file of source.files) {
      const raw = `__raw_${table}`;
      let rows: number;
      let lines: LineAccount | undefined;
      try {
        await verifyGzip(file.path, file.rel);
        const staged = await stage(db, file, raw, table, config);
        lines = staged.lines;
        rows = await typeStagedFile(db, staged.relation, TABLES[table], config, file.rel, file.format !== 'ndjson');
      } catch (err) {
        // A corrupt shard surfaces as a reader error deep in DuckDB or apache-arrow: name the file.
        if (err instanceof ReconError) throw err;
        throw new InputError(`${file.rel}: cannot read this ${file.format} file (corrupt or truncated?): ${errorMessage(err).split('\n')[0]}`, { cause: err });
      }
      await db.run(`DROP TABLE ${quoteIdent(raw)}`);
      // Structural rejects (short rows, broken JSON) never reach typing but count all the same.
      const rejected = await db.one<{ n: bigint }>(
        `SELECT count(*) AS n FROM ${REJECTS_TABLE} WHERE table_name = $table AND file = $file`,
        { table, file: file.rel },
      );
      const rejectedRows = Number(rejected?.n ?? 0n);
      const input: InputFile = { table, source: file.rel, format: file.format, rows, rejected_rows: rejectedRows, sha256: await sha256File(file.path) };
      if (lines) {
        // Every physical line is a loaded row, a rejected line, a blank line, the header or the
        // continuation of a quoted field: if they do not add up, rows went unseen.
        const accounted = lines.header + rows + rejectedRows + lines.blank + lines.continuation;
        if (accounted !== lines.physical) {
          throw new InputError(
            `${file.rel}: ${lines.physical} lines, but only ${accounted} accounted for (header ${lines.header}, loaded ${rows}, ` +
              `rejected ${rejectedRows}, blank ${lines.blank}, quoted-field continuations ${lines.continuation}): rows would go unseen`,
          );
        }
        input.lines = { physical: lines.physical, header: lines.header, loaded: rows, rejected: rejectedRows, blank: lines.blank, continuation: lines.continuation };
      }
      inputs.push(input);
      opts.onProgress?.({ table, file: file.rel, rows, elapsedMs: Date.now() - started });
    }
  }
  return { tables: new Set(sources.keys()), inputs };
}
