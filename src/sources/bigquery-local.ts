import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { quoteIdent, type TableName } from '../contract/tables.ts';
import { parseConfig } from '../config.ts';
import { Db } from '../db.ts';
import { errorMessage } from '../errors.ts';
import { loadExports } from './index.ts';

/**
 * A folder of exports served as a BigQuery dataset on 127.0.0.1, speaking the REST calls the
 * `@google-cloud/bigquery` client makes for `recon --bigquery`: datasets.get, tables.get,
 * tabledata.list, jobs.insert (with dryRun, maximumBytesBilled, labels), jobs.get, jobs.query
 * and getQueryResults with pageToken paging, with BigQuery's error bodies. Queries run in
 * DuckDB over the loaded tables: it understands the plain SELECTs recon sends (backquoted
 * `project.dataset.table` names, @named parameters), not all of GoogleSQL. For tests and for
 * trying `--bigquery` without a Google account; never a production endpoint.
 */
export interface LocalBigQueryOptions {
  exportsDir: string;
  projectId?: string;
  datasetId?: string;
  /** 0 or absent: a free port. */
  port?: number;
}

/** A canned failure, for tests of how recon meets BigQuery's errors. */
export interface Fault {
  /** Matched against `METHOD /path` (without the `/bigquery/v2` prefix). */
  match: RegExp;
  status: number;
  reason: string;
  message: string;
  /** How many matching requests fail before the rest succeed; default every one. */
  times?: number;
}

export interface LocalBigQuery {
  /** `http://127.0.0.1:PORT`: pass as `--bigquery-endpoint` or BIGQUERY_EMULATOR_HOST. */
  url: string;
  projectId: string;
  datasetId: string;
  /** The contract tables found in the exports, served under their own names. */
  tables: string[];
  /** The dataset's tables; tests may alter them (drop a column, change a type). */
  db: Db;
  faults: Fault[];
  /** Every request seen, as `METHOD /path`. */
  requests: string[];
  /** Every job's labels and maximumBytesBilled, in order. */
  jobs: Array<{ query: string; dryRun: boolean; labels: Record<string, string>; maximumBytesBilled?: string }>;
  close(): Promise<void>;
}

interface StoredJob {
  id: string;
  table: string;
  columns: Array<{ name: string; type: string }>;
  rows: number;
  bytes: bigint;
}

class BigQueryHttpError extends Error {
  constructor(readonly status: number, readonly reason: string, message: string) {
    super(message);
  }
}

const BQ_TYPE: Readonly<Record<string, string>> = {
  VARCHAR: 'STRING',
  BIGINT: 'INT64',
  INTEGER: 'INT64',
  HUGEINT: 'NUMERIC',
  DOUBLE: 'FLOAT64',
  BOOLEAN: 'BOOL',
  'TIMESTAMP WITH TIME ZONE': 'TIMESTAMP',
  TIMESTAMP: 'DATETIME',
};

function bqType(duckType: string): string {
  return BQ_TYPE[duckType] ?? (duckType.startsWith('DECIMAL') ? 'NUMERIC' : 'STRING');
}

/** A column as BigQuery's REST API renders it: text, INT64 exact, TIMESTAMP in microseconds. */
function renderSql(name: string, type: string): string {
  const c = quoteIdent(name);
  return type === 'TIMESTAMP' ? `epoch_us(${c})::VARCHAR` : type === 'DATETIME' ? `strftime(${c}, '%Y-%m-%dT%H:%M:%S.%f')` : `${c}::VARCHAR`;
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' });
  res.end(JSON.stringify(body));
}

function sendError(res: ServerResponse, err: BigQueryHttpError): void {
  const statusText: Record<number, string> = { 400: 'INVALID_ARGUMENT', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND', 429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL' };
  send(res, err.status, {
    error: {
      code: err.status,
      message: err.message,
      errors: [{ message: err.message, domain: 'global', reason: err.reason }],
      status: statusText[err.status] ?? 'UNKNOWN',
    },
  });
}

type Param = { name?: string; parameterType?: { type?: string }; parameterValue?: { value?: string } };

export async function startLocalBigQuery(opts: LocalBigQueryOptions): Promise<LocalBigQuery> {
  const projectId = opts.projectId ?? 'local-project';
  const datasetId = opts.datasetId ?? 'billing';
  const db = await Db.open();
  const loaded = await loadExports(db, opts.exportsDir, parseConfig({}, '(bigquery-local)').config);
  const stored = new Map<string, StoredJob>();
  const faults: Fault[] = [];
  const requests: string[] = [];
  const jobs: LocalBigQuery['jobs'] = [];

  const checkDataset = (p: string, d: string) => {
    if (p !== projectId || d !== datasetId) throw new BigQueryHttpError(404, 'notFound', `Not found: Dataset ${p}:${d}`);
  };
  const tableNames = async () =>
    (await db.all<{ table_name: string }>(`SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND NOT temporary`)).map((t) => t.table_name);
  let served = new Set(await tableNames());
  const checkTable = (p: string, d: string, t: string) => {
    checkDataset(p, d);
    if (!served.has(t)) throw new BigQueryHttpError(404, 'notFound', `Not found: Table ${p}:${d}.${t}`);
  };

  async function schemaOf(table: string): Promise<Array<{ name: string; type: string; mode: string }>> {
    const cols = await db.all<{ column_name: string; column_type: string; null: string }>(`DESCRIBE ${quoteIdent(table)}`);
    return cols.map((c) => ({ name: c.column_name, type: bqType(c.column_type), mode: 'NULLABLE' }));
  }

  /** recon's SELECTs in DuckDB: backquoted names become quoted identifiers, @p becomes $p. */
  function translate(sql: string): string {
    return sql
      .replace(/`([^`]+)`/g, (_, name: string) => {
        const parts = name.split('.');
        if (parts.length === 3) {
          checkTable(parts[0]!, parts[1]!, parts[2]!);
          return quoteIdent(parts[2]!);
        }
        if (parts.length === 2) {
          checkTable(projectId, parts[0]!, parts[1]!);
          return quoteIdent(parts[1]!);
        }
        return quoteIdent(name);
      })
      .replace(/@([A-Za-z_][A-Za-z0-9_]*)/g, '$$$1');
  }

  function params(list: Param[] | undefined): Record<string, string | bigint | null> {
    const out: Record<string, string | bigint | null> = {};
    for (const p of list ?? []) {
      const v = p.parameterValue?.value ?? null;
      out[p.name!] = v !== null && p.parameterType?.type === 'INT64' ? BigInt(v) : v;
    }
    return out;
  }

  async function runJob(
    config: { query?: string; queryParameters?: Param[]; maximumBytesBilled?: string },
    dryRun: boolean,
    jobId = `job_${randomUUID().replaceAll('-', '')}`,
  ): Promise<StoredJob> {
    const query = config.query ?? '';
    const id = jobId;
    let sql: string;
    try {
      sql = translate(query);
    } catch (err) {
      if (err instanceof BigQueryHttpError) throw err;
      throw new BigQueryHttpError(400, 'invalidQuery', errorMessage(err));
    }
    const table = `__job_${randomUUID().replaceAll('-', '')}`;
    try {
      await db.run(`CREATE TEMP TABLE ${quoteIdent(table)} AS ${sql}`, params(config.queryParameters));
    } catch (err) {
      throw new BigQueryHttpError(400, 'invalidQuery', errorMessage(err));
    }
    const columns = await schemaOf(table);
    const size = await db.one<{ rows: bigint; bytes: bigint | null }>(
      `SELECT count(*) AS rows, sum(${columns.map((c) => `coalesce(strlen(${quoteIdent(c.name)}::VARCHAR), 0)`).join(' + ') || '0'})::BIGINT AS bytes FROM ${quoteIdent(table)}`,
    );
    const bytes = size?.bytes ?? 0n;
    if (dryRun) await db.run(`DROP TABLE ${quoteIdent(table)}`);
    if (config.maximumBytesBilled !== undefined && bytes > BigInt(config.maximumBytesBilled)) {
      if (!dryRun) await db.run(`DROP TABLE ${quoteIdent(table)}`);
      throw new BigQueryHttpError(400, 'bytesBilledLimitExceeded', `Query exceeded limit for bytes billed: ${config.maximumBytesBilled}. ${bytes} or higher required.`);
    }
    const job: StoredJob = { id, table, columns, rows: Number(size?.rows ?? 0n), bytes };
    if (!dryRun) stored.set(id, job);
    return job;
  }

  function jobResource(job: StoredJob, dryRun: boolean, location = 'US') {
    return {
      kind: 'bigquery#job',
      id: `${projectId}:${location}.${job.id}`,
      jobReference: { projectId, jobId: job.id, location },
      status: { state: 'DONE' },
      statistics: { totalBytesProcessed: job.bytes.toString(), query: { totalBytesProcessed: job.bytes.toString() } },
      configuration: { dryRun },
    };
  }

  async function page(job: StoredJob, url: URL) {
    const max = Number(url.searchParams.get('maxResults') ?? 100_000);
    const offset = Number(url.searchParams.get('pageToken') ?? url.searchParams.get('startIndex') ?? 0);
    const render = job.columns.map((c) => `${renderSql(c.name, c.type)} AS ${quoteIdent(c.name)}`).join(', ');
    const rows = await db.all<Record<string, string | null>>(
      `SELECT ${render} FROM ${quoteIdent(job.table)} ORDER BY rowid LIMIT $max OFFSET $offset`,
      { max: BigInt(max), offset: BigInt(offset) },
    );
    const next = offset + rows.length;
    return {
      schema: { fields: job.columns.map((c) => ({ name: c.name, type: c.type, mode: 'NULLABLE' })) },
      rows: rows.map((r) => ({ f: job.columns.map((c) => ({ v: r[c.name] ?? null })) })),
      totalRows: String(job.rows),
      ...(next < job.rows ? { pageToken: String(next) } : {}),
      jobComplete: true,
    };
  }

  async function route(method: string, path: string, url: URL, req: IncomingMessage): Promise<unknown> {
    let m: RegExpExecArray | null;
    if (method === 'GET' && (m = /^\/projects\/([^/]+)\/datasets\/([^/]+)$/.exec(path))) {
      checkDataset(m[1]!, m[2]!);
      return { kind: 'bigquery#dataset', id: `${projectId}:${datasetId}`, datasetReference: { projectId, datasetId }, location: 'US' };
    }
    if (method === 'GET' && (m = /^\/projects\/([^/]+)\/datasets\/([^/]+)\/tables\/([^/]+)$/.exec(path))) {
      checkTable(m[1]!, m[2]!, m[3]!);
      const n = await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM ${quoteIdent(m[3]!)}`);
      return {
        kind: 'bigquery#table',
        id: `${projectId}:${datasetId}.${m[3]}`,
        tableReference: { projectId, datasetId, tableId: m[3] },
        schema: { fields: await schemaOf(m[3]!) },
        numRows: String(n?.n ?? 0n),
        type: 'TABLE',
      };
    }
    if (method === 'GET' && (m = /^\/projects\/([^/]+)\/datasets\/([^/]+)\/tables\/([^/]+)\/data$/.exec(path))) {
      checkTable(m[1]!, m[2]!, m[3]!);
      const table = m[3] as TableName;
      const job: StoredJob = {
        id: 'tabledata', table, columns: await schemaOf(table), bytes: 0n,
        rows: Number((await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM ${quoteIdent(table)}`))?.n ?? 0n),
      };
      const { rows, totalRows, pageToken } = await page(job, url);
      return { kind: 'bigquery#tableDataList', rows, totalRows, ...(pageToken ? { pageToken } : {}) };
    }
    if (method === 'POST' && (m = /^\/projects\/([^/]+)\/jobs$/.exec(path))) {
      const body = (await readBody(req)) as {
        configuration?: { query?: Parameters<typeof runJob>[0]; dryRun?: boolean; labels?: Record<string, string> };
        jobReference?: { jobId?: string; location?: string };
      };
      const config = body.configuration?.query ?? {};
      const dryRun = body.configuration?.dryRun === true;
      jobs.push({ query: config.query ?? '', dryRun, labels: body.configuration?.labels ?? {}, ...(config.maximumBytesBilled !== undefined ? { maximumBytesBilled: config.maximumBytesBilled } : {}) });
      return jobResource(await runJob(config, dryRun, body.jobReference?.jobId), dryRun, body.jobReference?.location);
    }
    if (method === 'POST' && (m = /^\/projects\/([^/]+)\/queries$/.exec(path))) {
      const body = (await readBody(req)) as { query?: string; queryParameters?: Param[]; maximumBytesBilled?: string; dryRun?: boolean; maxResults?: number };
      const dryRun = body.dryRun === true;
      jobs.push({ query: body.query ?? '', dryRun, labels: {}, ...(body.maximumBytesBilled !== undefined ? { maximumBytesBilled: body.maximumBytesBilled } : {}) });
      const job = await runJob(body, dryRun);
      if (dryRun) return { kind: 'bigquery#queryResponse', jobComplete: true, totalBytesProcessed: job.bytes.toString() };
      if (body.maxResults !== undefined) url.searchParams.set('maxResults', String(body.maxResults));
      return { kind: 'bigquery#queryResponse', jobReference: { projectId, jobId: job.id, location: 'US' }, ...(await page(job, url)) };
    }
    if (method === 'GET' && (m = /^\/projects\/([^/]+)\/queries\/([^/]+)$/.exec(path))) {
      const job = stored.get(m[2]!);
      if (!job) throw new BigQueryHttpError(404, 'notFound', `Not found: Job ${projectId}:${m[2]}`);
      return { kind: 'bigquery#getQueryResultsResponse', jobReference: { projectId, jobId: job.id, location: 'US' }, ...(await page(job, url)) };
    }
    if (method === 'GET' && (m = /^\/projects\/([^/]+)\/jobs\/([^/]+)$/.exec(path))) {
      const job = stored.get(m[2]!);
      if (!job) throw new BigQueryHttpError(404, 'notFound', `Not found: Job ${projectId}:${m[2]}`);
      return jobResource(job, false);
    }
    throw new BigQueryHttpError(404, 'notFound', `the local BigQuery endpoint does not serve ${method} ${path}`);
  }

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = url.pathname.replace(/^\/bigquery\/v2/, '');
    const method = req.method ?? 'GET';
    const key = `${method} ${path}`;
    requests.push(key);
    const fault = faults.find((f) => f.match.test(key) && (f.times === undefined || f.times > 0));
    if (fault) {
      if (fault.times !== undefined) fault.times--;
      req.resume();
      sendError(res, new BigQueryHttpError(fault.status, fault.reason, fault.message));
      return;
    }
    // Tests rename and drop tables under a running endpoint; it serves what is there now.
    tableNames()
      .then((names) => {
        served = new Set(names);
        return route(method, path, url, req);
      })
      .then(
      (body) => send(res, 200, body),
      (err: unknown) => sendError(res, err instanceof BigQueryHttpError ? err : new BigQueryHttpError(500, 'internalError', errorMessage(err))),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    projectId,
    datasetId,
    tables: [...loaded.tables],
    db,
    faults,
    requests,
    jobs,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      db.close();
    },
  };
}
