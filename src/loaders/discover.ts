import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { TABLE_NAMES, TABLES, type TableName } from '../contract/tables.ts';
import { InputError, errorMessage } from '../errors.ts';

export type FileFormat = 'csv' | 'parquet' | 'ndjson' | 'arrow';

export interface SourceFile {
  /** Absolute path. */
  readonly path: string;
  /** Relative to the export directory, with forward slashes: what messages and entity ids show. */
  readonly rel: string;
  readonly format: FileFormat;
}

export interface TableSource {
  readonly table: TableName;
  readonly files: readonly SourceFile[];
}

const SUFFIXES: ReadonlyArray<readonly [string, FileFormat]> = [
  ['.csv', 'csv'],
  ['.csv.gz', 'csv'],
  ['.parquet', 'parquet'],
  ['.ndjson', 'ndjson'],
  ['.ndjson.gz', 'ndjson'],
  ['.jsonl', 'ndjson'],
  ['.jsonl.gz', 'ndjson'],
  ['.json', 'ndjson'],
  ['.json.gz', 'ndjson'],
  ['.arrow', 'arrow'],
];

function formatOf(name: string): FileFormat | undefined {
  const lower = name.toLowerCase();
  let best: readonly [string, FileFormat] | undefined;
  for (const entry of SUFFIXES) {
    if (lower.endsWith(entry[0]) && (!best || entry[0].length > best[0].length)) best = entry;
  }
  return best?.[1];
}

function stem(name: string): string {
  const lower = name.toLowerCase();
  for (const [suffix] of [...SUFFIXES].sort((a, b) => b[0].length - a[0].length)) {
    if (lower.endsWith(suffix)) return name.slice(0, -suffix.length);
  }
  return name;
}

/**
 * Finds one source per table in an export directory (CONTRACT.md §1): `<table>.<ext>` or a
 * folder `<table>/` of shards. Two sources for one table are ambiguous and refused rather than
 * guessed between; a shard folder may not mix formats, since its files are one table.
 */
export async function discoverSources(exportsDir: string): Promise<Map<TableName, TableSource>> {
  let entries;
  try {
    entries = await readdir(exportsDir, { withFileTypes: true });
  } catch (err) {
    throw new InputError(`cannot read export directory ${exportsDir}: ${errorMessage(err)}`, { cause: err });
  }
  const found = new Map<TableName, TableSource[]>();
  const add = (table: TableName, src: TableSource) => found.set(table, [...(found.get(table) ?? []), src]);

  for (const entry of entries) {
    const table = TABLE_NAMES.find((t) => t === (entry.isDirectory() ? entry.name : stem(entry.name)));
    if (!table) continue;
    const full = path.join(exportsDir, entry.name);
    if (entry.isDirectory()) {
      const shards = (await readdir(full, { withFileTypes: true }))
        .filter((e) => e.isFile() && formatOf(e.name))
        .map((e) => e.name)
        .sort();
      const formats = new Set(shards.map((n) => formatOf(n)));
      if (formats.size > 1) {
        throw new InputError(`${entry.name}/: shards of one table mix formats (${[...formats].join(', ')})`);
      }
      add(table, {
        table,
        files: shards.map((n) => ({ path: path.join(full, n), rel: `${entry.name}/${n}`, format: formatOf(n)! })),
      });
    } else if (entry.isFile() || (entry.isSymbolicLink() && (await stat(full)).isFile())) {
      const format = formatOf(entry.name);
      if (format) add(table, { table, files: [{ path: full, rel: entry.name, format }] });
    }
  }

  const result = new Map<TableName, TableSource>();
  for (const table of TABLE_NAMES) {
    const sources = found.get(table) ?? [];
    if (sources.length > 1) {
      const names = sources.map((s) => (s.files.length === 1 ? s.files[0]!.rel : `${table}/`));
      throw new InputError(`${exportsDir}: more than one source for table ${table}: ${names.join(', ')}`);
    }
    const [source] = sources;
    if (source && source.files.length === 0) {
      throw new InputError(`${exportsDir}/${table}/: folder holds no .csv, .parquet, .ndjson/.jsonl/.json or .arrow file`);
    }
    if (source) result.set(table, source);
  }
  const missing = TABLE_NAMES.filter((t) => TABLES[t].required && !result.has(t));
  if (missing.length > 0) {
    throw new InputError(
      `${exportsDir}: required table${missing.length > 1 ? 's' : ''} missing: ${missing.join(', ')} ` +
        `(expected e.g. ${missing[0]}.csv, ${missing[0]}.parquet, ${missing[0]}.ndjson, ${missing[0]}.arrow or a folder ${missing[0]}/)`,
    );
  }
  return result;
}
