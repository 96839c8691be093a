/**
 * The floor the audit is measured against: DuckDB alone reading the same export files into
 * typed tables, with nothing of ours in between (no reject handling, no line numbers, no checks).
 * Its own process, so the benchmark times and measures it from outside like the audit.
 *
 *   node --import tsx bench/floor.ts EXPORTS_DIR
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { TABLES, TABLE_NAMES, quoteIdent, type ColumnType } from '../src/contract/tables.ts';

const DUCKDB_TYPE: Readonly<Record<ColumnType, string>> = {
  string: 'VARCHAR', timestamp: 'TIMESTAMPTZ', bigint: 'BIGINT', int: 'INTEGER', bool: 'BOOLEAN',
};
const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;

const dir = process.argv[2];
if (!dir) throw new Error('usage: bench/floor.ts EXPORTS_DIR');
const files = await readdir(dir);
const instance = await DuckDBInstance.create(':memory:');
const conn = await instance.connect();
await conn.run(`SET TimeZone = 'UTC'`);
for (const table of TABLE_NAMES) {
  const file = files.find((f) => f.split('.')[0] === table);
  if (!file) continue;
  const full = quote(path.join(dir, file));
  const columns = `{${TABLES[table].columns.map((c) => `${quote(c.name)}: ${quote(DUCKDB_TYPE[c.type])}`).join(', ')}}`;
  const source = file.endsWith('.parquet')
    ? `read_parquet(${full})`
    : file.includes('.csv')
      ? `read_csv(${full}, header = true, columns = ${columns})`
      : `read_json(${full}, format = 'newline_delimited', columns = ${columns})`;
  await conn.run(`CREATE TABLE ${quoteIdent(table)} AS SELECT * FROM ${source}`);
}
conn.closeSync();
instance.closeSync();
