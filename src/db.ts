import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuckDBConnection, DuckDBInstance, type DuckDBValue } from '@duckdb/node-api';
import { DatabaseError, errorMessage } from './errors.ts';

export type Params = Record<string, DuckDBValue> | DuckDBValue[];

export interface ScratchOptions {
  /** DuckDB's `memory_limit` (`2GB`, `512MB`); default {@link defaultMemoryLimit}. */
  memoryLimit?: string;
  /** Where the scratch database and its spill files live; default the OS temp dir. */
  tempDir?: string;
  /**
   * Keep the tables in memory rather than in a file, still bounded by the limit and spilling to
   * the same folder beyond it: for an export that fits well inside the limit, writing DuckDB's
   * compressed file format was a third of the load (1M usage rows: load 12 s in a file, 7 s in
   * memory). The caller decides from the export's size ({@link fitsInMemory}).
   */
  inMemory?: boolean;
}

/**
 * A quarter of the machine's memory, at most 1.5 GiB and at least 512 MiB: an audit's tables live
 * in a file and spill to disk beyond it, so a nightly job's memory does not grow with the
 * warehouse, and the rest of the machine stays free for whatever runs beside it. DuckDB's own
 * allocations, Node and the reports come on top: at 2 GiB the 10M-row audit peaked at 3.0 GB
 * RSS, at 1.5 GiB at 2.1 GB.
 */
export function defaultMemoryLimit(totalBytes = os.totalmem()): string {
  const mib = Math.min(1536, Math.max(512, Math.floor(totalBytes / 4 / 2 ** 20)));
  return `${mib}MB`;
}

const SIZE_UNITS: Readonly<Record<string, number>> = { kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** A memory size as `--memory-limit` takes it (`512MB`, `1.5GB`, `4GiB`) in bytes; undefined if it is not one. */
export function sizeBytes(size: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]i?b)$/i.exec(size.trim());
  return m ? Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]! : undefined;
}

/**
 * Whether tables estimated at `estimatedBytes` (in DuckDB's uncompressed in-memory form) fit in
 * half of `memoryLimit`, leaving the other half to the checks' joins and aggregates.
 */
export function fitsInMemory(estimatedBytes: number, memoryLimit = defaultMemoryLimit()): boolean {
  return estimatedBytes <= (sizeBytes(memoryLimit) ?? 0) / 2;
}

/**
 * One DuckDB session. Every query goes through `run`/`all`/`one` with bound parameters;
 * identifiers are quoted with `quoteIdent` from the contract module.
 */
export class Db {
  private constructor(
    readonly instance: DuckDBInstance,
    readonly conn: DuckDBConnection,
    readonly path: string,
    /** A scratch directory this session created and removes when it closes. */
    private readonly ownedDir?: string,
  ) {}

  /**
   * Opens (or creates) a database. Timestamps are UTC instants everywhere, so the session
   * time zone is pinned: a naive timestamp read from a file must never shift with the
   * machine's TZ.
   */
  static async open(
    path = ':memory:',
    opts: { readOnly?: boolean; memoryLimit?: string; threads?: number; tempDirectory?: string; scratch?: boolean } = {},
    ownedDir?: string,
  ): Promise<Db> {
    const config: Record<string, string> = {};
    // A scratch database is thrown away on close: checkpointing it every 16 MiB of WAL (the
    // default) only rewrites tables nobody will reopen, and doubled the load's time. Its tables
    // still live in the file and spill beyond the memory limit.
    if (opts.scratch) config['checkpoint_threshold'] = '1TB';
    // FSST string compression was a third of the CPU of loading a table into the file; the
    // cheap encodings (dictionary, RLE, bit-packing) stay, so spilled tables stay compact.
    if (opts.scratch) config['disabled_compression_methods'] = 'fsst';
    if (opts.readOnly) config['access_mode'] = 'READ_ONLY';
    if (opts.memoryLimit) config['memory_limit'] = opts.memoryLimit;
    if (opts.threads) config['threads'] = String(opts.threads);
    if (opts.tempDirectory) config['temp_directory'] = opts.tempDirectory;
    let instance: DuckDBInstance | undefined;
    try {
      instance = await DuckDBInstance.create(path, config);
      const conn = await instance.connect();
      await conn.run(`SET TimeZone = 'UTC'`);
      return new Db(instance, conn, path, ownedDir);
    } catch (err) {
      instance?.closeSync();
      if (ownedDir) rmSync(ownedDir, { recursive: true, force: true });
      throw new DatabaseError(`cannot open DuckDB database ${path}: ${errorMessage(err)}`, { cause: err });
    }
  }

  /**
   * A file-backed database (or, with `inMemory`, an in-memory one) in a fresh temp directory,
   * with a memory limit and a spill folder beside it: exports larger than memory spill to disk
   * instead of failing. Closing removes it.
   */
  static async openScratch(opts: ScratchOptions = {}): Promise<Db> {
    let dir: string;
    try {
      dir = mkdtempSync(path.join(opts.tempDir ?? os.tmpdir(), 'recon-db-'));
    } catch (err) {
      throw new DatabaseError(`cannot create a scratch database in ${opts.tempDir ?? os.tmpdir()}: ${errorMessage(err)}`, { cause: err });
    }
    const db = await Db.open(
      opts.inMemory ? ':memory:' : path.join(dir, 'audit.duckdb'),
      { memoryLimit: opts.memoryLimit ?? defaultMemoryLimit(), tempDirectory: path.join(dir, 'spill'), scratch: true },
      dir,
    );
    // The file is deleted on close: writing its last changes into it first (a checkpoint, about
    // 0.2 s even for the demo) would be wasted.
    await db.run('PRAGMA disable_checkpoint_on_shutdown');
    return db;
  }

  async run(sql: string, params?: Params): Promise<void> {
    await this.conn.run(sql, params);
  }

  /** Runs a statement and returns how many rows it inserted, updated or deleted. */
  async change(sql: string, params?: Params): Promise<number> {
    return (await this.conn.run(sql, params)).rowsChanged;
  }

  /** Rows as objects with DuckDB's lossless JS values (BIGINT → bigint, TIMESTAMPTZ → value objects). */
  async all<T = Record<string, unknown>>(sql: string, params?: Params): Promise<T[]> {
    const reader = await this.conn.runAndReadAll(sql, params);
    return reader.getRowObjects() as T[];
  }

  /** Rows as JSON-safe objects: BIGINT as decimal strings, timestamps as ISO-like text. */
  async allJson<T = Record<string, unknown>>(sql: string, params?: Params): Promise<T[]> {
    const reader = await this.conn.runAndReadAll(sql, params);
    return reader.getRowObjectsJson() as T[];
  }

  async one<T = Record<string, unknown>>(sql: string, params?: Params): Promise<T | undefined> {
    return (await this.all<T>(sql, params))[0];
  }

  close(): void {
    this.conn.closeSync();
    this.instance.closeSync();
    if (this.ownedDir) rmSync(this.ownedDir, { recursive: true, force: true });
  }
}
