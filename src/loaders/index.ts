import { createTableSql, quoteIdent, TABLES, type TableName } from '../contract/tables.ts';
import type { Config } from '../config.ts';
import type { Db } from '../db.ts';
import type { InputFile } from '../invariants/types.ts';
import { stageArrow } from './arrow.ts';
import { stageCsv } from './csv.ts';
import { discoverSources, type SourceFile } from './discover.ts';
import { sha256File } from './files.ts';
import { stageNdjson } from './ndjson.ts';
import { stageParquet } from './parquet.ts';
import { REJECTS_DDL, REJECTS_TABLE, typeStagedFile } from './typing.ts';

export { discoverSources } from './discover.ts';
export { REJECTS_TABLE } from './typing.ts';

export interface LoadResult {
  /** The contract tables present in this export (required ones always are). */
  tables: Set<TableName>;
  inputs: InputFile[];
}

export interface LoadOptions {
  /** Called after each file; the CLI turns it into a progress line on a terminal. */
  onProgress?: (p: { table: TableName; file: string; rows: number; elapsedMs: number }) => void;
}

/** Stages one file into `raw`; returns the relation typing reads (the file's columns, `__file`, `__line`). */
async function stage(db: Db, file: SourceFile, raw: string, table: TableName, config: Config): Promise<string> {
  switch (file.format) {
    case 'csv':
      return stageCsv(db, file, raw, table);
    case 'ndjson':
      await stageNdjson(db, file, raw, TABLES[table], config);
      break;
    case 'parquet':
      await stageParquet(db, file, raw);
      break;
    case 'arrow':
      await stageArrow(db, file, raw);
      break;
  }
  return quoteIdent(raw);
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
      const staged = await stage(db, file, raw, table, config);
      const rows = await typeStagedFile(db, staged, TABLES[table], config, file.rel, file.format !== 'ndjson');
      await db.run(`DROP TABLE ${quoteIdent(raw)}`);
      // Structural rejects (short rows, broken JSON) never reach typing but count all the same.
      const rejected = await db.one<{ n: bigint }>(
        `SELECT count(*) AS n FROM ${REJECTS_TABLE} WHERE table_name = $table AND file = $file`,
        { table, file: file.rel },
      );
      inputs.push({
        table,
        source: file.rel,
        format: file.format,
        rows,
        rejected_rows: Number(rejected?.n ?? 0n),
        sha256: await sha256File(file.path),
      });
      opts.onProgress?.({ table, file: file.rel, rows, elapsedMs: Date.now() - started });
    }
  }
  return { tables: new Set(sources.keys()), inputs };
}
