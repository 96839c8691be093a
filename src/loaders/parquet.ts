import { quoteIdent } from '../contract/tables.ts';
import type { Db } from '../db.ts';
import type { SourceFile } from './discover.ts';

/**
 * Stages one Parquet file with its native types; typing then casts what is already typed and
 * parses what is text. `__line` is the 1-based row ordinal in the file. Timestamps without a
 * time zone (BigQuery's Parquet) are read as UTC because the session time zone is UTC.
 */
export async function stageParquet(db: Db, file: SourceFile, raw: string): Promise<void> {
  await db.run(
    `CREATE OR REPLACE TEMP TABLE ${quoteIdent(raw)} AS
     SELECT * EXCLUDE (file_row_number), $rel AS __file, file_row_number + 1 AS __line
     FROM read_parquet($path, file_row_number = true)`,
    { path: file.path, rel: file.rel },
  );
}
