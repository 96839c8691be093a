import { createHash } from 'node:crypto';
import type { BigQuery, Dataset, Job, TableField } from '@google-cloud/bigquery';
import { BIGINT, BOOLEAN, DuckDBDataChunk, DuckDBTimestampTZValue, TIMESTAMPTZ, VARCHAR, type DuckDBAppender, type DuckDBType, type DuckDBValue } from '@duckdb/node-api';
import { createTableSql, quoteIdent, TABLE_NAMES, TABLES, type ColumnSpec, type ColumnType, type TableName } from '../contract/tables.ts';
import { sourceColumn, type Config } from '../config.ts';
import type { Db } from '../db.ts';
import { InputError, UsageError, errorMessage } from '../errors.ts';
import type { LoadResult } from './index.ts';
import { REJECTS_DDL, REJECTS_TABLE } from '../contract/rejects.ts';
import { typeStagedFile } from './typing.ts';

export interface BigQuerySource {
  /** `PROJECT.DATASET`; the project also runs (and pays for) the query jobs. */
  dataset: string;
  /**
   * A BigQuery-compatible REST endpoint, e.g. `npm run bigquery:local`'s; without it Google's,
   * with Application Default Credentials. `BIGQUERY_EMULATOR_HOST` works too.
   */
  endpoint?: string;
  /** Passed to every job as `maximumBytesBilled`: BigQuery refuses a job that would bill more. */
  maxBytesBilled?: bigint;
  /** Rows per result page; each page is appended to DuckDB and dropped before the next. */
  pageRows?: number;
  /** Progress lines (the CLI sends them to stderr). */
  log?: (line: string) => void;
  /**
   * Retries of a call BigQuery calls retryable (429, 5xx, rate limits), with exponential
   * back-off; default 5 retries, at most 32 s apart.
   */
  retry?: { maxRetries: number; maxRetryDelaySeconds: number };
}

/** What BigQuery may hold for a column of each contract type; everything else is refused. */
const ACCEPTED: Readonly<Record<ColumnType, ReadonlySet<string>>> = {
  string: new Set(['STRING', 'INT64', 'INTEGER']),
  timestamp: new Set(['TIMESTAMP', 'DATETIME', 'STRING']),
  // NUMERIC arrives as exact decimal text, so a fraction is rejected per row; a FLOAT never
  // holds money exactly and is refused for the whole table.
  bigint: new Set(['INT64', 'INTEGER', 'NUMERIC', 'BIGNUMERIC', 'STRING']),
  int: new Set(['INT64', 'INTEGER', 'NUMERIC', 'BIGNUMERIC', 'STRING']),
  bool: new Set(['BOOL', 'BOOLEAN', 'STRING', 'INT64', 'INTEGER']),
};

/** DuckDB's vector size: a data chunk holds at most this many rows. */
const CHUNK_ROWS = 2048;

export interface Staging {
  readonly type: DuckDBType;
  readonly sql: string;
  readonly convert: (v: string) => DuckDBValue;
}

/**
 * How a REST value is staged. The REST API sends every value as text: INT64 exactly (never
 * through a JS number), TIMESTAMP as integer microseconds (`formatOptions.useInt64Timestamp`,
 * which the client sets), so nothing is rounded on the way into DuckDB.
 */
export function stagingFor(field: TableField): Staging {
  switch (field.type) {
    case 'INT64':
    case 'INTEGER':
      return { type: BIGINT, sql: 'BIGINT', convert: (v) => BigInt(v) };
    case 'BOOL':
    case 'BOOLEAN':
      return { type: BOOLEAN, sql: 'BOOLEAN', convert: (v) => v === 'true' };
    case 'TIMESTAMP':
      return { type: TIMESTAMPTZ, sql: 'TIMESTAMPTZ', convert: (v) => new DuckDBTimestampTZValue(BigInt(v)) };
    default:
      return { type: VARCHAR, sql: 'VARCHAR', convert: (v) => v };
  }
}

/** A page of REST rows (every value as text, or null). */
export type RestPage = ReadonlyArray<{ f: ReadonlyArray<{ v: string | null }> }>;

/**
 * Appends one page of REST rows to DuckDB, staged column by column, in data chunks of
 * CHUNK_ROWS; `extra` gives the values of columns after the staged ones, for `count` rows.
 */
export function appendPage(
  appender: DuckDBAppender,
  staging: readonly Staging[],
  page: RestPage,
  extra?: (count: number) => Array<{ type: DuckDBType; values: DuckDBValue[] }>,
): void {
  for (let start = 0; start < page.length; start += CHUNK_ROWS) {
    const count = Math.min(CHUNK_ROWS, page.length - start);
    const more = extra?.(count) ?? [];
    const chunk = DuckDBDataChunk.create([...staging.map((s) => s.type), ...more.map((m) => m.type)], count);
    staging.forEach((s, c) => {
      const values: DuckDBValue[] = new Array(count);
      for (let i = 0; i < count; i++) {
        const v = page[start + i]!.f[c]?.v;
        values[i] = v === null || v === undefined ? null : s.convert(v);
      }
      chunk.setColumnValues(c, values);
    });
    more.forEach((m, k) => chunk.setColumnValues(staging.length + k, m.values));
    appender.appendDataChunk(chunk);
  }
}

export function parseDatasetRef(ref: string): { projectId: string; datasetId: string } {
  const m = /^([a-z0-9.:-]+)\.([A-Za-z0-9_]+)$/i.exec(ref);
  if (!m) throw new UsageError(`--bigquery: "${ref}" is not PROJECT.DATASET (e.g. my-project.billing_exports)`);
  return { projectId: m[1]!, datasetId: m[2]! };
}

interface ApiErrorLike {
  code?: number;
  message?: string;
  errors?: Array<{ reason?: string; message?: string }>;
}

/** A BigQuery failure as the one sentence a user can act on (all exit 2). */
export function bigQueryError(err: unknown, what: string): InputError {
  const e = (err ?? {}) as ApiErrorLike;
  const reasons = new Set((e.errors ?? []).map((x) => x.reason));
  const detail = e.message ?? errorMessage(err);
  let message: string;
  if (/default credentials|GOOGLE_APPLICATION_CREDENTIALS|Could not refresh access token|invalid_grant/i.test(detail)) {
    message = `no usable Google credentials for ${what}: run \`gcloud auth application-default login\` or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key (${detail})`;
  } else if (reasons.has('bytesBilledLimitExceeded')) {
    message = `${what}: the query would bill more bytes than --max-bytes-billed allows (${detail})`;
  } else if (e.code === 429 || reasons.has('rateLimitExceeded') || reasons.has('quotaExceeded') || reasons.has('userRateLimitExceeded')) {
    message = `${what}: BigQuery quota or rate limit exceeded, still failing after retries with back-off (${detail})`;
  } else if (e.code === 404 || reasons.has('notFound')) {
    message = `${what} not found (${detail})`;
  } else if (e.code === 403 || reasons.has('accessDenied')) {
    message = `permission denied on ${what}: the account needs roles/bigquery.dataViewer on the dataset and roles/bigquery.jobUser on the project (${detail})`;
  } else if (e.code === 401) {
    message = `${what}: the credentials were refused (${detail})`;
  } else {
    message = `${what}: BigQuery error${e.code ? ` ${e.code}` : ''}: ${detail}`;
  }
  return new InputError(`bigquery: ${message}`, { cause: err });
}

/**
 * The client libraries are loaded here, on first use, not at start-up: they cost a few hundred
 * milliseconds to load, and most audits read files.
 */
export async function client(projectId: string, source: BigQuerySource): Promise<BigQuery> {
  const [{ BigQuery }, { OAuth2Client }] = await Promise.all([import('@google-cloud/bigquery'), import('google-auth-library')]);
  const local = source.endpoint ?? process.env['BIGQUERY_EMULATOR_HOST'];
  const { maxRetries, maxRetryDelaySeconds } = source.retry ?? { maxRetries: 5, maxRetryDelaySeconds: 32 };
  const retryOptions = { maxRetries, retryDelayMultiplier: 2, maxRetryDelay: maxRetryDelaySeconds };
  if (!local) return new BigQuery({ projectId, retryOptions });
  // A local endpoint takes no Google token, and asking for one must never leave the machine.
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: 'local-endpoint', expiry_date: Number.MAX_SAFE_INTEGER });
  return new BigQuery({ projectId, apiEndpoint: local, authClient: auth, retryOptions });
}

interface WarehouseTable {
  table: TableName;
  name: string;
  /** Source column name → its BigQuery field, in contract order. */
  fields: TableField[];
  query: string;
}

function field(fields: TableField[], name: string): TableField | undefined {
  const lower = name.toLowerCase();
  return fields.find((f) => f.name?.toLowerCase() === lower);
}

/** Checks a warehouse table against the contract before a byte is read. */
function checkSchema(table: TableName, where: string, schema: TableField[], config: Config): TableField[] {
  const problems: string[] = [];
  const picked: TableField[] = [];
  for (const col of TABLES[table].columns as readonly ColumnSpec[]) {
    const src = sourceColumn(config, table, col.name);
    const f = field(schema, src);
    const label = src === col.name ? `"${src}"` : `"${src}" (mapped to ${col.name})`;
    if (!f) problems.push(`missing column ${label}`);
    else if (f.mode === 'REPEATED' || !ACCEPTED[col.type].has(f.type ?? '')) {
      problems.push(`column ${label} is ${f.mode === 'REPEATED' ? `REPEATED ${f.type}` : f.type}, not ${[...ACCEPTED[col.type]].join('/')}`);
    } else picked.push({ ...f, name: f.name! });
  }
  if (problems.length > 0) throw new InputError(`bigquery: ${where}: ${problems.join('; ')}`);
  return picked;
}

const bq = (name: string) => `\`${name.replaceAll('`', '')}\``;

async function findTables(dataset: Dataset, ref: string, config: Config): Promise<WarehouseTable[]> {
  try {
    await dataset.getMetadata();
  } catch (err) {
    throw bigQueryError(err, `dataset ${ref}`);
  }
  const found: WarehouseTable[] = [];
  const missing: string[] = [];
  for (const table of TABLE_NAMES) {
    const name = config.tables[table] ?? table;
    const where = `table ${ref}.${name}`;
    let schema: TableField[];
    try {
      const [meta] = await dataset.table(name).getMetadata();
      schema = (meta as { schema?: { fields?: TableField[] } }).schema?.fields ?? [];
    } catch (err) {
      if ((err as ApiErrorLike).code === 404) {
        if (TABLES[table].required) missing.push(name);
        continue;
      }
      throw bigQueryError(err, where);
    }
    const fields = checkSchema(table, where, schema, config);
    found.push({ table, name, fields, query: `SELECT ${fields.map((f) => bq(f.name!)).join(', ')} FROM ${bq(`${ref}.${name}`)}` });
  }
  if (missing.length > 0) {
    throw new InputError(`bigquery: dataset ${ref}: required table${missing.length > 1 ? 's' : ''} not found: ${missing.join(', ')}`);
  }
  return found;
}

/**
 * Reads every contract table of a BigQuery dataset into typed DuckDB tables, through the same
 * typing (and rejects) as files. Each table is one query job; its result pages are appended to
 * DuckDB one at a time, so memory holds one page, not the table. A dry run of every job comes
 * first and reports the bytes they will scan.
 */
export async function loadBigQuery(db: Db, source: BigQuerySource, config: Config): Promise<LoadResult> {
  const { projectId, datasetId } = parseDatasetRef(source.dataset);
  const ref = `${projectId}.${datasetId}`;
  const log = source.log ?? (() => undefined);
  const bigquery = await client(projectId, source);
  const tables = await findTables(bigquery.dataset(datasetId), ref, config);
  const labels = { tool: 'billing-recon' };
  const jobOptions = (t: WarehouseTable) => ({
    query: t.query,
    useLegacySql: false,
    labels: { ...labels, table: t.table },
    ...(source.maxBytesBilled !== undefined ? { maximumBytesBilled: source.maxBytesBilled.toString() } : {}),
  });

  let totalBytes = 0n;
  for (const t of tables) {
    try {
      const [, meta] = await bigquery.createQueryJob({ ...jobOptions(t), dryRun: true });
      const bytes = BigInt((meta as { statistics?: { totalBytesProcessed?: string } }).statistics?.totalBytesProcessed ?? '0');
      totalBytes += bytes;
      log(`bigquery: ${t.table} (${ref}.${t.name}) would scan ${bytes.toLocaleString('en-US')} bytes`);
    } catch (err) {
      throw bigQueryError(err, `dry run of ${ref}.${t.name}`);
    }
  }
  log(`bigquery: all ${tables.length} tables would scan ${totalBytes.toLocaleString('en-US')} bytes in total`);

  await db.run(REJECTS_DDL);
  const result: LoadResult = { tables: new Set(), inputs: [] };
  for (const t of tables) {
    const rel = `bigquery:${ref}.${t.name}`;
    await db.run(createTableSql(TABLES[t.table]));
    const raw = `__raw_${t.table}`;
    const staging = t.fields.map(stagingFor);
    await db.run(
      `CREATE OR REPLACE TEMP TABLE ${quoteIdent(raw)} (${[
        ...t.fields.map((f, i) => `${quoteIdent(f.name!)} ${staging[i]!.sql}`),
        '__file VARCHAR',
        '__line BIGINT',
      ].join(', ')})`,
    );
    const hash = createHash('sha256');
    let fetched = 0n;
    let job: Job;
    try {
      [job] = await bigquery.createQueryJob(jobOptions(t));
    } catch (err) {
      throw bigQueryError(err, `query on ${ref}.${t.name}`);
    }
    const appender = await db.conn.createAppender(raw, 'main', 'temp');
    try {
      let request: Record<string, unknown> | null = { skipParsing: true, autoPaginate: false, maxResults: source.pageRows ?? 50_000 };
      while (request) {
        let page: RestPage;
        let next: Record<string, unknown> | null;
        try {
          const response: unknown[] = await job.getQueryResults(request);
          page = response[0] as typeof page;
          next = (response[1] as Record<string, unknown> | null | undefined) ?? null;
        } catch (err) {
          throw bigQueryError(err, `results of ${ref}.${t.name}`);
        }
        // What was audited, byte for byte as BigQuery sent it: the input's fingerprint.
        hash.update(JSON.stringify(page));
        appendPage(appender, staging, page, (count) => {
          const lines: DuckDBValue[] = new Array(count);
          for (let i = 0; i < count; i++) lines[i] = ++fetched;
          return [
            { type: VARCHAR, values: new Array<DuckDBValue>(count).fill(rel) },
            { type: BIGINT, values: lines },
          ];
        });
        if (page.length > 0) log(`bigquery: ${t.table}: ${fetched.toLocaleString('en-US')} rows read`);
        request = next;
      }
      appender.flushSync();
    } finally {
      appender.closeSync();
    }
    const rows = await typeStagedFile(db, quoteIdent(raw), TABLES[t.table], config, rel, true);
    await db.run(`DROP TABLE ${quoteIdent(raw)}`);
    const rejected = await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM ${REJECTS_TABLE} WHERE table_name = $table`, { table: t.table });
    result.tables.add(t.table);
    result.inputs.push({ table: t.table, source: rel, format: 'bigquery', rows, rejected_rows: Number(rejected?.n ?? 0n), sha256: hash.digest('hex') });
  }
  return result;
}
