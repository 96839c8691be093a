import type { TableSpec } from '../contract/tables.ts';
import type { Config } from '../config.ts';
import type { Db } from '../db.ts';
import { sqlString } from '../sql.ts';
import type { SourceFile } from './discover.ts';
import { typeStagedFile } from './typing.ts';

/**
 * Loads one Parquet file, read in place with its native types; typing casts what is already
 * typed and parses what is text. `__line` is the 1-based row ordinal in the file. Timestamps
 * without a time zone (BigQuery's Parquet) are read as UTC because the session time zone is UTC.
 *
 * A clean file is typed in one read; a file with a row that does not type is rolled back and
 * typed again in two (good rows, then rejects), still straight from the file: a columnar read
 * costs less than a staged copy.
 */
export async function loadParquet(db: Db, file: SourceFile, spec: TableSpec, config: Config): Promise<number> {
  const relation = `(SELECT * EXCLUDE (file_row_number), ${sqlString(file.rel)} AS __file, file_row_number + 1 AS __line
                     FROM read_parquet(${sqlString(file.path)}, file_row_number = true))`;
  await db.run('BEGIN TRANSACTION');
  let rows: number | null;
  try {
    rows = await typeStagedFile(db, relation, spec, config, file.rel, true, true);
  } catch (err) {
    await db.run('ROLLBACK');
    throw err;
  }
  if (rows !== null) {
    await db.run('COMMIT');
    return rows;
  }
  await db.run('ROLLBACK');
  return typeStagedFile(db, relation, spec, config, file.rel, true);
}
