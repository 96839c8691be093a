import { DuckDBConnection, DuckDBInstance, type DuckDBValue } from '@duckdb/node-api';
import { DatabaseError, errorMessage } from './errors.ts';

export type Params = Record<string, DuckDBValue> | DuckDBValue[];

/**
 * One DuckDB session. Every query goes through `run`/`all`/`one` with bound parameters;
 * identifiers are quoted with `quoteIdent` from the contract module.
 */
export class Db {
  private constructor(
    readonly instance: DuckDBInstance,
    readonly conn: DuckDBConnection,
    readonly path: string,
  ) {}

  /**
   * Opens (or creates) a database. Timestamps are UTC instants everywhere, so the session
   * time zone is pinned: a naive timestamp read from a file must never shift with the
   * machine's TZ.
   */
  static async open(path = ':memory:', opts: { readOnly?: boolean; memoryLimit?: string; threads?: number } = {}): Promise<Db> {
    const config: Record<string, string> = {};
    if (opts.readOnly) config['access_mode'] = 'READ_ONLY';
    if (opts.memoryLimit) config['memory_limit'] = opts.memoryLimit;
    if (opts.threads) config['threads'] = String(opts.threads);
    let instance: DuckDBInstance | undefined;
    try {
      instance = await DuckDBInstance.create(path, config);
      const conn = await instance.connect();
      await conn.run(`SET TimeZone = 'UTC'`);
      return new Db(instance, conn, path);
    } catch (err) {
      instance?.closeSync();
      throw new DatabaseError(`cannot open DuckDB database ${path}: ${errorMessage(err)}`, { cause: err });
    }
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
  }
}
