import { createTableSql, quoteIdent, TABLES, type TableName } from '../contract/tables.ts';
import { sourceColumn, type Config } from '../config.ts';
import type { Db } from '../db.ts';
import type { InputFile } from '../contract/inputs.ts';
import { csvHeader, loadCsvInOnePass, stageCsv } from './csv.ts';
import type { LineAccount } from './csv-lines.ts';
import { discoverSources, type SourceFile } from './discover.ts';
import { scanFile, type FileScan } from './files.ts';
import { InputError, ReconError, errorMessage } from '../errors.ts';
import { stageNdjson } from './ndjson.ts';
import { loadParquet } from './parquet.ts';
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
 * Loads one file into its contract table; returns the rows loaded and, for text formats, how the
 * file's physical lines divide up. `scan` is the byte pass over the same file, running meanwhile.
 */
async function loadFile(db: Db, file: SourceFile, table: TableName, config: Config, scan: Promise<FileScan>): Promise<{ rows: number; lines?: LineAccount | undefined }> {
  const spec = TABLES[table];
  const raw = `__raw_${table}`;
  let staged: { relation: string; lines?: LineAccount };
  switch (file.format) {
    case 'csv': {
      const header = await csvHeader(file, table);
      const direct = await loadCsvInOnePass(db, file, spec, config, header, scan);
      if (direct) return direct;
      staged = await stageCsv(db, file, raw, table, header);
      break;
    }
    case 'parquet':
      return { rows: await loadParquet(db, file, spec, config) };
    case 'ndjson':
      staged = { relation: quoteIdent(raw), lines: await stageNdjson(db, file, raw, spec, config) };
      break;
    case 'arrow':
      // apache-arrow is a sixth of the CLI's start-up; only an Arrow export needs it.
      const { stageArrow } = await import('./arrow.ts');
      await stageArrow(db, file, raw, table, new Set(spec.columns.map((c) => sourceColumn(config, table, c.name))));
      staged = { relation: quoteIdent(raw) };
      break;
  }
  const rows = await typeStagedFile(db, staged.relation, spec, config, file.rel, file.format !== 'ndjson');
  await db.run(`DROP TABLE ${quoteIdent(raw)}`);
  return { rows, lines: staged.lines };
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
      // Hashing, counting lines and checking a gzip trailer overlap DuckDB's read of the file.
      const scan = scanFile(file.path, file.rel);
      scan.catch(() => undefined);
      let rows: number;
      let lines: LineAccount | undefined;
      let sha256: string;
      try {
        ({ rows, lines } = await loadFile(db, file, table, config, scan));
        sha256 = (await scan).sha256;
      } catch (err) {
        // A truncated gzip file is named as such, whatever DuckDB made of it meanwhile.
        await scan;
        // A corrupt shard surfaces as a reader error deep in DuckDB or apache-arrow: name the file.
        if (err instanceof ReconError) throw err;
        throw new InputError(`${file.rel}: cannot read this ${file.format} file (corrupt or truncated?): ${errorMessage(err).split('\n')[0]}`, { cause: err });
      }
      // Structural rejects (short rows, broken JSON) never reach typing but count all the same.
      const rejected = await db.one<{ n: bigint }>(
        `SELECT count(*) AS n FROM ${REJECTS_TABLE} WHERE table_name = $table AND file = $file`,
        { table, file: file.rel },
      );
      const rejectedRows = Number(rejected?.n ?? 0n);
      const input: InputFile = { table, source: file.rel, format: file.format, rows, rejected_rows: rejectedRows, sha256 };
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
