import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { quoteIdent } from '../contract/tables.ts';
import { parseConfig } from '../config.ts';
import { Db } from '../db.ts';
import { errorMessage } from '../errors.ts';
import { loadExports } from './index.ts';
import {
  duckDbColumns,
  duckDbTable,
  mapDuckDbType,
  numericCell,
  numericText,
  scannedTables,
  startZetaSql,
  timestampCell,
  ZetaSqlError,
  type TypeProto,
  type TypeProto__Output,
  type ValueProto__Output,
  type ZetaParam,
  type ZetaSql,
  type ZetaTable,
} from './zetasql.ts';

/**
 * A folder of exports served as a BigQuery dataset on 127.0.0.1, speaking the REST calls the
 * `@google-cloud/bigquery` client makes: datasets.get, tables.get, tabledata.list, jobs.insert
 * (dryRun, maximumBytesBilled, labels, defaultDataset, named parameters), jobs.get, jobs.query
 * and getQueryResults with pageToken paging, with BigQuery's error bodies. Every query runs in
 * ZetaSQL, BigQuery's own SQL front end and reference engine, over the dataset's tables as they
 * are in DuckDB at the time of the job: GoogleSQL is accepted and refused as BigQuery would.
 * For tests and for trying `--bigquery` without a Google account; never a production endpoint.
 * It needs the devDependency `@fivetrandevelopers/zetasql`: the `recon` CLI never imports it.
 */
export interface LocalBigQueryOptions {
  exportsDir: string;
  projectId?: string;
  datasetId?: string;
  /** 0 or absent: a free port. */
  port?: number;
  /**
   * A running ZetaSQL server to share (a test file's one), left running by `close()`. Without
   * it the endpoint starts its own at its first query and stops it when it closes.
   */
  zetaSql?: ZetaSql;
}

/** The REST calls the endpoint serves, by their API names. */
export type BigQueryCall = 'datasets.get' | 'tables.get' | 'tabledata.list' | 'jobs.insert' | 'jobs.get' | 'jobs.query' | 'jobs.getQueryResults';

const CALL_PATHS: Readonly<Record<BigQueryCall, RegExp>> = {
  'datasets.get': /^GET \/projects\/[^/]+\/datasets\/[^/]+$/,
  'tables.get': /^GET \/projects\/[^/]+\/datasets\/[^/]+\/tables\/[^/]+$/,
  'tabledata.list': /^GET \/projects\/[^/]+\/datasets\/[^/]+\/tables\/[^/]+\/data$/,
  'jobs.insert': /^POST \/projects\/[^/]+\/jobs$/,
  'jobs.get': /^GET \/projects\/[^/]+\/jobs\/[^/]+$/,
  'jobs.query': /^POST \/projects\/[^/]+\/queries$/,
  'jobs.getQueryResults': /^GET \/projects\/[^/]+\/queries\/[^/]+$/,
};

/**
 * BigQuery's errors as its REST API sends them (cloud.google.com/bigquery/docs/error-messages):
 * the reason, its usual HTTP status and a message of BigQuery's wording. The client retries
 * 429, 500, 502, 503 and the reasons rateLimitExceeded and userRateLimitExceeded, whatever
 * their status; accessDenied, notFound and quotaExceeded are not retried.
 */
export const CANNED_ERRORS = {
  accessDenied: { status: 403, message: 'Access Denied: Project local-project: User does not have bigquery.jobs.create permission in project local-project.' },
  notFound: { status: 404, message: 'Not found: Dataset local-project:billing was not found in location US' },
  rateLimitExceeded: {
    status: 403,
    message: 'Exceeded rate limits: too many api requests per user per method for this user_method. For more information, see https://cloud.google.com/bigquery/docs/troubleshoot-quotas',
  },
  quotaExceeded: { status: 403, message: 'Quota exceeded: Your project exceeded quota for concurrent queries. For more information, see https://cloud.google.com/bigquery/docs/troubleshoot-quotas' },
  backendError: { status: 500, message: 'An internal error occurred and the request could not be completed. This is usually caused by a transient issue. Retrying the job with back-off as described in the BigQuery SLA should solve the problem.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type CannedError = keyof typeof CANNED_ERRORS;

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

/** One job as it was asked for, in order of arrival (jobs.insert and jobs.query alike). */
export interface JobRecord {
  /** The job's id; a dry run's too, though BigQuery keeps no dry run to get later. */
  jobId: string;
  call: 'jobs.insert' | 'jobs.query';
  query: string;
  dryRun: boolean;
  labels: Record<string, string>;
  /** As sent: BigQuery's REST API takes int64 as a decimal string. */
  maximumBytesBilled?: string;
  defaultDataset?: { projectId?: string; datasetId: string };
  /** `@name` parameters as sent (name, type, value). */
  queryParameters: Array<{ name: string; type: string; value: string | null | Array<string | null> }>;
  /** Bytes the dry-run estimate gave; absent when the query was refused before that. */
  totalBytesProcessed?: string;
  /** How the job failed, if it did: the HTTP status and BigQuery reason the client received. */
  error?: { status: number; reason: string; message: string };
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
  /** Raw failures, matched by request line; `failNext` is the usual way in. */
  faults: Fault[];
  /**
   * Makes the next `times` (default 1) calls of one kind fail with BigQuery's error body for
   * `reason`, at its usual status or `status` (e.g. 429 for rateLimitExceeded).
   */
  failNext(call: BigQueryCall, reason: CannedError, opts?: { times?: number; status?: number; message?: string }): void;
  /** Every request seen, as `METHOD /path`. */
  requests: string[];
  /** Every job, in order of arrival. */
  jobs: JobRecord[];
  close(): Promise<void>;
}

interface StoredJob {
  id: string;
  record: JobRecord;
  columns: Array<{ name: string; type: TypeProto__Output }>;
  rows: ValueProto__Output[][];
  bytes: bigint;
  billed: bigint;
}

class BigQueryHttpError extends Error {
  constructor(readonly status: number, readonly reason: string, message: string) {
    super(message);
  }
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'INVALID_ARGUMENT',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ALREADY_EXISTS',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
};

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
  send(res, err.status, {
    error: {
      code: err.status,
      message: err.message,
      errors: [{ message: err.message, domain: 'global', reason: err.reason }],
      status: STATUS_TEXT[err.status] ?? 'UNKNOWN',
    },
  });
}

// ---- Values as BigQuery's REST API renders them --------------------------------------------

/** How TIMESTAMP values are sent: the request's `formatOptions`, float seconds when it has none. */
type TimestampFormat = 'int64' | 'float' | 'iso';

function timestampFormat(useInt64Timestamp: unknown, outputFormat: unknown): TimestampFormat {
  if (outputFormat === 'ISO8601_STRING') return 'iso';
  if (outputFormat === 'INT64' || useInt64Timestamp === true || useInt64Timestamp === 'true') return 'int64';
  return 'float';
}

const KIND_NAMES: Readonly<Record<number, string>> = {
  1: 'INTEGER',
  2: 'INTEGER',
  3: 'INTEGER',
  4: 'INTEGER',
  5: 'BOOLEAN',
  6: 'FLOAT',
  7: 'FLOAT',
  8: 'STRING',
  9: 'BYTES',
  10: 'DATE',
  19: 'TIMESTAMP',
  20: 'TIME',
  21: 'DATETIME',
  22: 'GEOGRAPHY',
  23: 'NUMERIC',
  24: 'BIGNUMERIC',
  26: 'JSON',
  27: 'INTERVAL',
};

const KIND_NUMBER: Readonly<Record<string, number>> = {
  TYPE_INT64: 2,
  TYPE_BOOL: 5,
  TYPE_DOUBLE: 7,
  TYPE_STRING: 8,
  TYPE_BYTES: 9,
  TYPE_DATE: 10,
  TYPE_ARRAY: 16,
  TYPE_STRUCT: 17,
  TYPE_TIMESTAMP: 19,
  TYPE_DATETIME: 21,
  TYPE_NUMERIC: 23,
};

/** A ZetaSQL type (as sent: kind names; as received: kind numbers) as one shape. */
function kindOf(type: TypeProto | TypeProto__Output): number {
  const k = type.typeKind;
  return typeof k === 'number' ? k : (KIND_NUMBER[k as string] ?? 8);
}

interface RestField {
  name: string;
  type: string;
  mode: 'NULLABLE' | 'REPEATED';
  fields?: RestField[];
}

/** A schema field as BigQuery's REST API names types: INTEGER, FLOAT, BOOLEAN, RECORD (its legacy names). */
function restField(name: string, type: TypeProto | TypeProto__Output): RestField {
  const kind = kindOf(type);
  if (kind === 16) return { ...restField(name, type.arrayType!.elementType!), mode: 'REPEATED' };
  if (kind === 17) {
    return { name, type: 'RECORD', mode: 'NULLABLE', fields: (type.structType!.field ?? []).map((f, i) => restField(f.fieldName || `_field_${i + 1}`, f.fieldType!)) };
  }
  return { name, type: KIND_NAMES[kind] ?? 'STRING', mode: 'NULLABLE' };
}

const pad = (n: number | bigint, width = 2) => String(n).padStart(width, '0');

/**
 * Float seconds as BigQuery writes them (`1.672574400123456E9`): the exact decimal of the
 * microseconds, in Java's Double.toString notation, which BigQuery's REST layer uses.
 */
function floatSeconds(us: bigint): string {
  const sign = us < 0n ? '-' : '';
  const abs = us < 0n ? -us : us;
  const whole = (abs / 1_000_000n).toString();
  const fraction = pad(abs % 1_000_000n, 6).replace(/0+$/, '');
  if (abs < 10_000_000n * 1_000_000n) return `${sign}${whole}.${fraction || '0'}`;
  const digits = (whole + fraction).replace(/0+$/, '');
  return `${sign}${digits[0]}.${digits.slice(1) || '0'}E${whole.length - 1}`;
}

function isoMicros(us: bigint, zone: boolean): string {
  const seconds = us >= 0n ? us / 1_000_000n : -((-us + 999_999n) / 1_000_000n);
  const micros = us - seconds * 1_000_000n;
  const d = new Date(Number(seconds) * 1000);
  const text = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  return `${text}${micros ? `.${pad(micros, 6)}` : ''}${zone ? 'Z' : ''}`;
}

const long = (v: unknown): bigint => BigInt(String(v));

/** A cell as the `v` of BigQuery's f/v rows: text for scalars (INT64 exact), arrays of {v}, records of {f}. */
function restValue(type: TypeProto__Output, cell: ValueProto__Output | undefined, ts: TimestampFormat): unknown {
  const kind = kindOf(type);
  if (kind === 16) return (cell?.arrayValue?.element ?? []).map((e) => ({ v: restValue(type.arrayType!.elementType!, e, ts) }));
  // A stored table's cells are ZetaSQL values as sent, without the oneof's `value` name received ones carry.
  const key = cell?.value ?? (cell ? (Object.keys(cell).find((k) => k.endsWith('Value')) as ValueProto__Output['value']) : undefined);
  if (!cell || key === undefined) return null;
  switch (kind) {
    case 17:
      return { f: (type.structType!.field ?? []).map((f, i) => ({ v: restValue(f.fieldType!, cell.structValue!.field[i], ts) })) };
    case 1:
    case 2:
    case 3:
    case 4:
      return String(cell[key]);
    case 5:
      return cell.boolValue ? 'true' : 'false';
    case 6:
    case 7: {
      const x = Number(cell[key]);
      return Number.isFinite(x) ? String(x) : x > 0 ? 'Infinity' : x < 0 ? '-Infinity' : 'NaN';
    }
    case 9:
      return Buffer.from(cell.bytesValue!).toString('base64');
    case 10:
      return isoMicros(BigInt(cell.dateValue!) * 86_400_000_000n, false).slice(0, 10);
    case 19: {
      const us = long(cell.timestampValue!.seconds) * 1_000_000n + BigInt(Math.floor(cell.timestampValue!.nanos / 1000));
      return ts === 'int64' ? us.toString() : ts === 'iso' ? isoMicros(us, true) : floatSeconds(us);
    }
    case 21: {
      const bits = long(cell.datetimeValue!.bitFieldDatetimeSeconds);
      const field = (shift: bigint, width: bigint) => Number((bits >> shift) & ((1n << width) - 1n));
      const micros = Math.floor(cell.datetimeValue!.nanos / 1000);
      return `${pad(field(26n, 14n), 4)}-${pad(field(22n, 4n))}-${pad(field(17n, 5n))}T${pad(field(12n, 5n))}:${pad(field(6n, 6n))}:${pad(field(0n, 6n))}${micros ? `.${pad(micros, 6)}` : ''}`;
    }
    case 23:
      return numericText(cell.numericValue!);
    default:
      return String(cell[key]);
  }
}

// ---- Table references ------------------------------------------------------------------------

/**
 * Every table path of GoogleSQL text (outside strings and comments), handed to `replace`
 * as its dot-separated names (a backquoted `a.b.c` split like `a`.`b`.`c`); a returned string
 * takes the path's place. A project id with dashes is read whole where it starts a path.
 */
function rewritePaths(sql: string, projectId: string, replace: (names: string[]) => string | undefined): string {
  let out = '';
  let i = 0;
  const identStart = /[A-Za-z_]/;
  const identChar = /[A-Za-z0-9_]/;
  const readComponent = (at: number, first: boolean): { names: string[]; end: number } | undefined => {
    if (sql[at] === '`') {
      let j = at + 1;
      while (j < sql.length && sql[j] !== '`') j += sql[j] === '\\' ? 2 : 1;
      return { names: sql.slice(at + 1, j).split('.'), end: j + 1 };
    }
    if (first && sql.startsWith(projectId, at) && sql[at + projectId.length] === '.') return { names: [projectId], end: at + projectId.length };
    if (!identStart.test(sql[at] ?? '')) return undefined;
    let j = at + 1;
    while (j < sql.length && identChar.test(sql[j]!)) j++;
    return { names: [sql.slice(at, j)], end: j };
  };
  while (i < sql.length) {
    const ch = sql[i]!;
    const two = sql.slice(i, i + 2);
    if (two === '--' || ch === '#') {
      const end = sql.indexOf('\n', i);
      const stop = end < 0 ? sql.length : end;
      out += sql.slice(i, stop);
      i = stop;
    } else if (two === '/*') {
      const end = sql.indexOf('*/', i + 2);
      const stop = end < 0 ? sql.length : end + 2;
      out += sql.slice(i, stop);
      i = stop;
    } else if (ch === "'" || ch === '"') {
      const quote = sql.startsWith(ch.repeat(3), i) ? ch.repeat(3) : ch;
      let j = i + quote.length;
      while (j < sql.length && !sql.startsWith(quote, j)) j += sql[j] === '\\' ? 2 : 1;
      out += sql.slice(i, j + quote.length);
      i = j + quote.length;
    } else if (/[0-9]/.test(ch) || ch === '@') {
      let j = i + 1;
      while (j < sql.length && /[A-Za-z0-9_@.]/.test(sql[j]!)) j++;
      out += sql.slice(i, j);
      i = j;
    } else if ((ch === '`' || identStart.test(ch)) && !identChar.test(sql[i - 1] ?? '')) {
      const first = readComponent(i, true)!;
      // A string prefix (r'…', b"…") is not a name.
      if (/^(r|b|rb|br)$/i.test(first.names[0]!) && ch !== '`' && /['"]/.test(sql[first.end] ?? '')) {
        out += sql.slice(i, first.end);
        i = first.end;
        continue;
      }
      const names = [...first.names];
      let end = first.end;
      while (sql[end] === '.') {
        const next = readComponent(end + 1, false);
        if (!next) break;
        names.push(...next.names);
        end = next.end;
      }
      const isCall = /^\s*\(/.test(sql.slice(end, end + 20));
      const replacement = isCall ? undefined : replace(names);
      out += replacement ?? sql.slice(i, end);
      i = end;
    } else {
      out += ch;
      i++;
    }
  }
  return out;
}

interface ParamType {
  type?: string;
  arrayType?: ParamType;
}
interface ParamValue {
  value?: string | null;
  arrayValues?: ParamValue[];
}
type Param = { name?: string; parameterType?: ParamType; parameterValue?: ParamValue };

/** Microseconds since the epoch of a TIMESTAMP parameter: `2026-11-20 12:00:00.123456+00:00`, ISO 8601 too. */
function parameterMicros(text: string): bigint {
  const m = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)?$/i.exec(text.trim());
  if (!m) throw new BigQueryHttpError(400, 'invalidQuery', `Invalid TIMESTAMP parameter value: ${text}`);
  const [, y, mo, d, h, mi, sec, fraction = '', zone = 'Z'] = m;
  const offset = /^[+-]/.test(zone) ? (zone[0] === '-' ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.replace(':', '').slice(3, 5) || 0)) : 0;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec)) - offset * 60_000;
  // The client writes nanoseconds; TIMESTAMP holds microseconds.
  return BigInt(ms) * 1000n + BigInt(fraction.padEnd(9, '0').slice(0, 6));
}

/** A scalar parameter type and value as ZetaSQL's; the types a reconciliation query needs. */
function scalarParam(type: string, value: string | null): { type: TypeProto; value: ZetaParam['value'] } {
  const of = (typeKind: NonNullable<TypeProto['typeKind']>, cell: (v: string) => ZetaParam['value']) => ({ type: { typeKind }, value: value === null ? {} : cell(String(value)) });
  switch (type) {
    case 'STRING':
      return of('TYPE_STRING', (v) => ({ stringValue: v }));
    case 'INT64':
    case 'INTEGER':
      return of('TYPE_INT64', (v) => ({ int64Value: BigInt(v).toString() }));
    case 'BOOL':
    case 'BOOLEAN':
      return of('TYPE_BOOL', (v) => ({ boolValue: v.toLowerCase() === 'true' }));
    case 'FLOAT64':
    case 'FLOAT':
      return of('TYPE_DOUBLE', (v) => ({ doubleValue: Number(v) }));
    case 'NUMERIC':
      return of('TYPE_NUMERIC', (v) => numericCell(v));
    case 'TIMESTAMP':
      return of('TYPE_TIMESTAMP', (v) => timestampCell(parameterMicros(v)));
    default:
      throw new BigQueryHttpError(400, 'invalid', `Query parameters of type ${type} are not served by the local endpoint`);
  }
}

/** A named parameter (a scalar, or an ARRAY of scalars) as ZetaSQL takes it. */
function zetaParam(p: Param): ZetaParam {
  if (!p.name) throw new BigQueryHttpError(400, 'invalid', 'Positional query parameters are not served by the local endpoint; name them (@name)');
  const type = p.parameterType?.type ?? 'STRING';
  if (type !== 'ARRAY') {
    const { type: t, value } = scalarParam(type, p.parameterValue?.value ?? null);
    return { name: p.name, type: t, value };
  }
  const elementType = p.parameterType?.arrayType?.type ?? 'STRING';
  const elements = (p.parameterValue?.arrayValues ?? []).map((v) => scalarParam(elementType, v.value ?? null));
  return {
    name: p.name,
    type: { typeKind: 'TYPE_ARRAY', arrayType: { elementType: scalarParam(elementType, null).type } },
    value: { arrayValue: { element: elements.map((e) => e.value) } },
  };
}

/** A parameter's value as it was sent: text, or a list of texts for an ARRAY. */
const sentValue = (p: Param): string | null | Array<string | null> => {
  // The client sends a JS number or boolean as it is; the REST API's values are text.
  const text = (v: ParamValue | undefined) => (v?.value === undefined || v.value === null ? null : String(v.value));
  return p.parameterType?.type === 'ARRAY' ? (p.parameterValue?.arrayValues ?? []).map(text) : text(p.parameterValue);
};

/** ZetaSQL's `… [at 1:8]` as BigQuery words it: `… at [1:8]`. */
const bigQueryWording = (message: string) => message.replace(/ \[at (\d+:\d+)\]$/, ' at [$1]');

const MIB = 1n << 20n;

export async function startLocalBigQuery(opts: LocalBigQueryOptions): Promise<LocalBigQuery> {
  const projectId = opts.projectId ?? 'local-project';
  const datasetId = opts.datasetId ?? 'billing';
  const db = await Db.open();
  const loaded = await loadExports(db, opts.exportsDir, parseConfig({}, '(bigquery-local)').config);
  const stored = new Map<string, StoredJob>();
  const faults: Fault[] = [];
  const requests: string[] = [];
  const jobs: JobRecord[] = [];
  let ownZeta: Promise<ZetaSql> | undefined;
  const zeta = (): Promise<ZetaSql> => (opts.zetaSql ? Promise.resolve(opts.zetaSql) : (ownZeta ??= startZetaSql()));

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

  async function schemaOf(table: string): Promise<RestField[]> {
    return (await duckDbColumns(db, table)).map((c) => restField(c.name, mapDuckDbType(c.duckType).type));
  }

  /**
   * The dry-run estimate of a table: its logical size by BigQuery's data-size rules (STRING 2
   * bytes + its UTF-8 length; INT64, FLOAT64, TIMESTAMP, DATETIME, DATE 8; BOOL 1; NUMERIC 16;
   * an ARRAY or STRUCT the length of its JSON text; NULL 0), summed over every column and row.
   * A job's estimate is the sum over the tables it scans (each once; a WITH entry nothing reads
   * scans nothing). BigQuery counts only the columns a query reads; the whole table is a
   * deterministic upper bound, which is what a byte limit needs.
   */
  async function tableBytes(table: string): Promise<bigint> {
    const terms = (await duckDbColumns(db, table)).map(({ name, duckType }) => {
      const c = quoteIdent(name);
      const kind = kindOf(mapDuckDbType(duckType).type);
      const size =
        kind === 8 ? `2 + strlen(${c}::VARCHAR)` : kind === 5 ? '1' : kind === 23 ? '16' : kind === 16 || kind === 17 ? `strlen(to_json(${c})::VARCHAR)` : '8';
      return `coalesce(sum(CASE WHEN ${c} IS NULL THEN 0 ELSE ${size} END), 0)::BIGINT`;
    });
    const row = await db.one<{ bytes: bigint }>(`SELECT (${terms.join(' + ') || '0'})::BIGINT AS bytes FROM ${quoteIdent(table)}`);
    return row?.bytes ?? 0n;
  }

  /**
   * A query's served tables, named as ZetaSQL will see them: unqualified names resolve against
   * the job's default dataset (as in BigQuery), and `dataset.table` and `project.dataset.table`,
   * backquoted or not, are rewritten to one backquoted `project.dataset.table`, a table of its
   * own in the catalog (ZetaSQL sets rows only on tables at the catalog's top).
   */
  const tableNamesCache = new Map<string, Promise<string[][]>>();
  const analysisCache = new Map<string, ReturnType<ZetaSql['analyze']>>();

  async function resolveTables(
    query: string,
    jobProject: string,
    defaultDataset: JobRecord['defaultDataset'],
  ): Promise<{ sql: string; catalog: Map<string, string> }> {
    let paths: string[][];
    try {
      paths = await memo(tableNamesCache, query, async () => (await zeta()).tableNames(query));
    } catch (err) {
      if (err instanceof ZetaSqlError) throw new BigQueryHttpError(400, 'invalidQuery', bigQueryWording(err.message));
      throw err;
    }
    const catalog = new Map<string, string>();
    const resolve = (names: string[]): { p: string; d: string; t: string } | undefined =>
      names.length === 3 ? { p: names[0]!, d: names[1]!, t: names[2]! } : names.length === 2 ? { p: jobProject, d: names[0]!, t: names[1]! } : undefined;
    for (const path of paths) {
      const names = path.flatMap((s) => s.split('.'));
      if (names.length === 1) {
        if (!defaultDataset) throw new BigQueryHttpError(400, 'invalid', `Table "${names[0]}" must be qualified with a dataset (e.g. dataset.table).`);
        const p = defaultDataset.projectId ?? jobProject;
        if (p !== projectId || defaultDataset.datasetId !== datasetId) {
          throw new BigQueryHttpError(404, 'notFound', `Not found: Dataset ${p}:${defaultDataset.datasetId} was not found in location US`);
        }
        if (!served.has(names[0]!)) throw new BigQueryHttpError(404, 'notFound', `Not found: Table ${p}:${datasetId}.${names[0]} was not found in location US`);
        catalog.set(names[0]!, names[0]!);
        continue;
      }
      const ref = resolve(names);
      if (!ref) throw new BigQueryHttpError(400, 'invalidQuery', `Invalid table name: ${path.join('.')}`);
      if (ref.p !== projectId || ref.d !== datasetId) throw new BigQueryHttpError(404, 'notFound', `Not found: Dataset ${ref.p}:${ref.d} was not found in location US`);
      if (!served.has(ref.t)) throw new BigQueryHttpError(404, 'notFound', `Not found: Table ${ref.p}:${ref.d}.${ref.t} was not found in location US`);
      catalog.set(`${projectId}.${datasetId}.${ref.t}`, ref.t);
    }
    const sql = rewritePaths(query, projectId, (names) => {
      const ref = resolve(names);
      return ref && ref.p === projectId && ref.d === datasetId && served.has(ref.t) ? `\`${projectId}.${datasetId}.${ref.t}\`` : undefined;
    });
    return { sql, catalog };
  }

  interface QueryConfig {
    query?: string;
    queryParameters?: Param[];
    maximumBytesBilled?: string;
    defaultDataset?: { projectId?: string; datasetId: string };
    useLegacySql?: boolean;
  }

  async function runJob(record: JobRecord, config: QueryConfig, jobProject: string): Promise<StoredJob> {
    try {
      for (const [key, value] of Object.entries(record.labels)) {
        // BigQuery's label rules: lowercase letters (international too), digits, _ and -; at most 63; a key starts with a letter.
        if (!/^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}$/u.test(key)) throw new BigQueryHttpError(400, 'invalid', `Label key "${key}" has invalid characters.`);
        if (!/^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$/u.test(value)) throw new BigQueryHttpError(400, 'invalid', `Label value "${value}" has invalid characters.`);
      }
      if (config.useLegacySql === true) throw new BigQueryHttpError(400, 'invalid', 'The local BigQuery endpoint speaks GoogleSQL only: set useLegacySql to false');
      const params = (config.queryParameters ?? []).map(zetaParam);
      // The dataset served never changes, so reading it as of any instant (BigQuery's time travel,
      // which ZetaSQL's evaluator does not implement) reads it as it is.
      const query = record.query.replace(/\bFOR\s+SYSTEM_TIME\s+AS\s+OF\s+TIMESTAMP\(@\w+\)/gi, '');
      const { sql, catalog } = await resolveTables(query, jobProject, config.defaultDataset);
      const server = await zeta();
      const schemas: ZetaTable[] = [];
      for (const [name, table] of catalog) schemas.push({ name, columns: (await duckDbColumns(db, table)).map((c) => ({ name: c.name, type: mapDuckDbType(c.duckType).type })) });
      const refused = (err: unknown) => (err instanceof ZetaSqlError ? new BigQueryHttpError(400, 'invalidQuery', bigQueryWording(err.message)) : err);
      let scanned: Set<string>;
      try {
        // Validated first, as BigQuery validates before it estimates: a dry run reads no row.
        // A job's dry run and its run analyse the same statement: once is enough.
        scanned = scannedTables(await memo(analysisCache, JSON.stringify([sql, schemas, params]), () => server.analyze(sql, schemas, params)));
      } catch (err) {
        throw refused(err);
      }
      const sizes = await Promise.all([...new Set([...scanned].map((name) => catalog.get(name)!))].map(tableBytes));
      const bytes = sizes.reduce((a, b) => a + b, 0n);
      // Billed as BigQuery bills on demand: each table's bytes rounded up to a whole MiB, at least 10 MiB.
      const billed = sizes.reduce((sum, b) => sum + (b > 10n * MIB ? ((b + MIB - 1n) / MIB) * MIB : 10n * MIB), 0n);
      record.totalBytesProcessed = bytes.toString();
      if (config.maximumBytesBilled !== undefined && billed > BigInt(config.maximumBytesBilled)) {
        throw new BigQueryHttpError(400, 'bytesBilledLimitExceeded', `Query exceeded limit for bytes billed: ${config.maximumBytesBilled}. ${billed} or higher required.`);
      }
      const job: StoredJob = { id: record.jobId, record, columns: [], rows: [], bytes, billed };
      if (!record.dryRun) {
        const tables: ZetaTable[] = [];
        for (const [name, table] of catalog) tables.push(await duckDbTable(db, table, name));
        let result: Awaited<ReturnType<ZetaSql['evaluate']>>;
        try {
          result = await server.evaluate(sql, tables, params);
        } catch (err) {
          throw refused(err);
        }
        // BigQuery names an unnamed column f<position>_; ZetaSQL leaves it empty (or `$col…`).
        job.columns = result.columns.map((c, i) => ({ ...c, name: !c.name || c.name.startsWith('$') ? `f${i}_` : c.name }));
        job.rows = result.rows;
        stored.set(job.id, job);
      }
      return job;
    } catch (err) {
      const e = err instanceof BigQueryHttpError ? err : new BigQueryHttpError(500, 'backendError', errorMessage(err));
      record.error = { status: e.status, reason: e.reason, message: e.message };
      throw e;
    }
  }

  function jobResource(job: StoredJob, location = 'US') {
    const r = job.record;
    const now = String(Date.now());
    return {
      kind: 'bigquery#job',
      id: `${projectId}:${location}.${job.id}`,
      jobReference: { projectId, jobId: job.id, location },
      configuration: {
        jobType: 'QUERY',
        ...(r.dryRun ? { dryRun: true } : {}),
        ...(Object.keys(r.labels).length ? { labels: r.labels } : {}),
        query: {
          query: r.query,
          useLegacySql: false,
          ...(r.defaultDataset ? { defaultDataset: r.defaultDataset } : {}),
          ...(r.maximumBytesBilled !== undefined ? { maximumBytesBilled: r.maximumBytesBilled } : {}),
        },
      },
      status: { state: 'DONE' },
      statistics: {
        creationTime: now,
        ...(r.dryRun ? {} : { startTime: now, endTime: now }),
        totalBytesProcessed: job.bytes.toString(),
        query: {
          totalBytesProcessed: job.bytes.toString(),
          totalBytesBilled: r.dryRun ? '0' : job.billed.toString(),
          cacheHit: false,
          statementType: 'SELECT',
        },
      },
    };
  }

  function page(job: Pick<StoredJob, 'columns' | 'rows'>, max: number, offset: number, ts: TimestampFormat) {
    const slice = job.rows.slice(offset, offset + max);
    const next = offset + slice.length;
    return {
      schema: { fields: job.columns.map((c) => restField(c.name, c.type)) },
      rows: slice.map((row) => ({ f: job.columns.map((c, i) => ({ v: restValue(c.type, row[i], ts) })) })),
      totalRows: String(job.rows.length),
      ...(next < job.rows.length ? { pageToken: String(next) } : {}),
    };
  }

  const paging = (url: URL) => ({
    max: Number(url.searchParams.get('maxResults') ?? 100_000),
    offset: Number(url.searchParams.get('pageToken') ?? url.searchParams.get('startIndex') ?? 0),
    ts: timestampFormat(url.searchParams.get('formatOptions.useInt64Timestamp'), url.searchParams.get('formatOptions.timestampOutputFormat')),
  });

  function record(call: JobRecord['call'], jobId: string, dryRun: boolean, labels: Record<string, string> | undefined, config: QueryConfig): JobRecord {
    const r: JobRecord = {
      jobId,
      call,
      query: config.query ?? '',
      dryRun,
      labels: labels ?? {},
      // The client passes a number through as one; the REST API's int64 is a string.
      ...(config.maximumBytesBilled !== undefined ? { maximumBytesBilled: String(config.maximumBytesBilled) } : {}),
      ...(config.defaultDataset ? { defaultDataset: config.defaultDataset } : {}),
      queryParameters: (config.queryParameters ?? []).map((p) => ({
        name: p.name ?? '',
        type: p.parameterType?.type === 'ARRAY' ? `ARRAY<${p.parameterType.arrayType?.type ?? 'STRING'}>` : (p.parameterType?.type ?? 'STRING'),
        value: sentValue(p),
      })),
    };
    jobs.push(r);
    return r;
  }

  const newJobId = () => `job_${randomUUID().replaceAll('-', '')}`;

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
        numBytes: (await tableBytes(m[3]!)).toString(),
        type: 'TABLE',
        location: 'US',
      };
    }
    if (method === 'GET' && (m = /^\/projects\/([^/]+)\/datasets\/([^/]+)\/tables\/([^/]+)\/data$/.exec(path))) {
      checkTable(m[1]!, m[2]!, m[3]!);
      const table = await duckDbTable(db, m[3]!);
      const { max, offset, ts } = paging(url);
      // tabledata.list renders the table as it is stored, as getQueryResults renders a result.
      const columns = table.columns.map((c) => ({ name: c.name, type: c.type as TypeProto__Output }));
      const { rows, totalRows, pageToken } = page({ columns, rows: table.rows as ValueProto__Output[][] }, max, offset, ts);
      return { kind: 'bigquery#tableDataList', rows, totalRows, ...(pageToken ? { pageToken } : {}) };
    }
    if (method === 'POST' && (m = /^\/projects\/([^/]+)\/jobs$/.exec(path))) {
      const body = (await readBody(req)) as {
        configuration?: { query?: QueryConfig; dryRun?: boolean; labels?: Record<string, string> };
        jobReference?: { jobId?: string; location?: string };
      };
      const config = body.configuration?.query ?? {};
      const r = record('jobs.insert', body.jobReference?.jobId ?? newJobId(), body.configuration?.dryRun === true, body.configuration?.labels, config);
      return jobResource(await runJob(r, config, m[1]!), body.jobReference?.location);
    }
    if (method === 'POST' && (m = /^\/projects\/([^/]+)\/queries$/.exec(path))) {
      const body = (await readBody(req)) as QueryConfig & {
        dryRun?: boolean;
        maxResults?: number;
        labels?: Record<string, string>;
        formatOptions?: { useInt64Timestamp?: boolean; timestampOutputFormat?: string };
      };
      const r = record('jobs.query', newJobId(), body.dryRun === true, body.labels, body);
      const job = await runJob(r, body, m[1]!);
      const ts = timestampFormat(body.formatOptions?.useInt64Timestamp, body.formatOptions?.timestampOutputFormat);
      if (r.dryRun) return { kind: 'bigquery#queryResponse', jobComplete: true, totalBytesProcessed: job.bytes.toString() };
      return {
        kind: 'bigquery#queryResponse',
        jobReference: { projectId, jobId: job.id, location: 'US' },
        jobComplete: true,
        totalBytesProcessed: job.bytes.toString(),
        cacheHit: false,
        ...page(job, body.maxResults ?? 100_000, 0, ts),
      };
    }
    if (method === 'GET' && (m = /^\/projects\/([^/]+)\/queries\/([^/]+)$/.exec(path))) {
      const job = stored.get(m[2]!);
      if (!job) throw new BigQueryHttpError(404, 'notFound', `Not found: Job ${projectId}:US.${m[2]}`);
      const { max, offset, ts } = paging(url);
      return {
        kind: 'bigquery#getQueryResultsResponse',
        jobReference: { projectId, jobId: job.id, location: 'US' },
        jobComplete: true,
        totalBytesProcessed: job.bytes.toString(),
        cacheHit: false,
        ...page(job, max, offset, ts),
      };
    }
    if (method === 'GET' && (m = /^\/projects\/([^/]+)\/jobs\/([^/]+)$/.exec(path))) {
      const job = stored.get(m[2]!);
      if (!job) throw new BigQueryHttpError(404, 'notFound', `Not found: Job ${projectId}:US.${m[2]}`);
      return jobResource(job);
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
        (err: unknown) => sendError(res, err instanceof BigQueryHttpError ? err : new BigQueryHttpError(500, 'backendError', errorMessage(err))),
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
    failNext(call, reason, o = {}) {
      const canned = CANNED_ERRORS[reason];
      faults.push({ match: CALL_PATHS[call], status: o.status ?? canned.status, reason, message: o.message ?? canned.message, times: o.times ?? 1 });
    },
    requests,
    jobs,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      db.close();
      if (ownZeta) await (await ownZeta).close();
    },
  };
}

/**
 * The result of `compute` for `key`, computed once while `cache` holds it. A failure is not kept,
 * and the cache is emptied past 1,000 entries, so a long-running endpoint stays bounded.
 */
function memo<T>(cache: Map<string, Promise<T>>, key: string, compute: () => Promise<T>): Promise<T> {
  const hit = cache.get(key);
  if (hit) return hit;
  if (cache.size >= 1000) cache.clear();
  const p = compute();
  cache.set(key, p);
  p.catch(() => cache.delete(key));
  return p;
}
