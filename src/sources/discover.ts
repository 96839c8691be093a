import { readdir, realpath, stat } from 'node:fs/promises';
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

/** What a directory entry is once symlinks are followed; a dangling or unreadable link is an input error. */
async function kindOf(full: string, rel: string, isLink: boolean, isDir: boolean): Promise<'file' | 'dir' | 'other'> {
  if (!isLink) return isDir ? 'dir' : 'file';
  try {
    const target = await stat(full);
    return target.isDirectory() ? 'dir' : target.isFile() ? 'file' : 'other';
  } catch (err) {
    throw new InputError(`${rel}: symbolic link that cannot be followed (dangling or unreadable): ${errorMessage(err)}`, { cause: err });
  }
}

/**
 * Every file below a table's shard folder, depth first and in name order, with `rel` paths from
 * the export directory. Nested folders are Hive-style partitions (`dt=2026-11-20/part-1.csv`,
 * as warehouse exports write them): their files are read like any other shard and the
 * partition names are ignored (the rows carry their own columns). Symlinks are followed;
 * `seen` stops a link cycle. A file that is not a readable export format is an error, since
 * it would otherwise be left out of the audit without a word.
 */
async function walkShards(dir: string, rel: string, seen: Set<string>): Promise<{ shards: SourceFile[]; unread: string[] }> {
  const real = await realpath(dir);
  if (seen.has(real)) return { shards: [], unread: [] };
  seen.add(real);
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw new InputError(`${rel}/: cannot read shard folder: ${errorMessage(err)}`, { cause: err });
  }
  const shards: SourceFile[] = [];
  const unread: string[] = [];
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const full = path.join(dir, entry.name);
    const childRel = `${rel}/${entry.name}`;
    const kind = await kindOf(full, childRel, entry.isSymbolicLink(), entry.isDirectory());
    if (kind === 'dir') {
      const nested = await walkShards(full, childRel, seen);
      shards.push(...nested.shards);
      unread.push(...nested.unread);
    } else {
      const format = kind === 'file' ? formatOf(entry.name) : undefined;
      if (format) shards.push({ path: full, rel: childRel, format });
      else unread.push(childRel);
    }
  }
  return { shards, unread };
}

/**
 * Finds one source per table in an export directory (CONTRACT.md §1): `<table>.<ext>` or a
 * folder `<table>/` of shards (nested partition folders included). Two sources for one table
 * are ambiguous and refused rather than guessed between; a shard folder may not mix formats,
 * since its files are one table.
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
    const full = path.join(exportsDir, entry.name);
    const isLink = entry.isSymbolicLink();
    const named = (dir: boolean) => TABLE_NAMES.find((t) => t === (dir ? entry.name : stem(entry.name)));
    // Only entries that could be a table source are followed: a dangling link elsewhere is not ours.
    if (!named(true) && !(named(false) && formatOf(entry.name))) continue;
    const kind = await kindOf(full, entry.name, isLink, entry.isDirectory());
    const table = named(kind === 'dir');
    if (!table) continue;
    if (kind === 'dir') {
      const { shards, unread } = await walkShards(full, entry.name, new Set());
      if (unread.length > 0) {
        throw new InputError(
          `${entry.name}/: ${unread.length === 1 ? 'a file that is' : `${unread.length} files that are`} not a readable shard of ${table} ` +
            `(expected .csv, .csv.gz, .parquet, .ndjson/.jsonl/.json[.gz] or .arrow); move ${unread.length === 1 ? 'it' : 'them'} out ` +
            `of the folder or the audit would not see ${unread.length === 1 ? 'it' : 'them'}: ${unread.slice(0, 10).join(', ')}${unread.length > 10 ? ', …' : ''}`,
        );
      }
      const formats = new Set(shards.map((f) => f.format));
      if (formats.size > 1) {
        throw new InputError(`${entry.name}/: shards of one table mix formats (${[...formats].join(', ')})`);
      }
      add(table, { table, files: shards });
    } else if (kind === 'file') {
      add(table, { table, files: [{ path: full, rel: entry.name, format: formatOf(entry.name)! }] });
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
