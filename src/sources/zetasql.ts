import { execFile, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { ZetaSQLClient } from '@fivetrandevelopers/zetasql';
import type { LanguageOptionsProto } from '@fivetrandevelopers/zetasql/lib/types/zetasql/LanguageOptionsProto.js';
import type { AnalyzeResponse__Output } from '@fivetrandevelopers/zetasql/lib/types/zetasql/local_service/AnalyzeResponse.js';
import type { EvaluateQueryRequest } from '@fivetrandevelopers/zetasql/lib/types/zetasql/local_service/EvaluateQueryRequest.js';
import type { EvaluateQueryResponse__Output } from '@fivetrandevelopers/zetasql/lib/types/zetasql/local_service/EvaluateQueryResponse.js';
import type { ZetaSqlLocalServiceClient } from '@fivetrandevelopers/zetasql/lib/types/zetasql/local_service/ZetaSqlLocalService.js';
import type { TypeProto, TypeProto__Output } from '@fivetrandevelopers/zetasql/lib/types/zetasql/TypeProto.js';
import type { ValueProto, ValueProto__Output } from '@fivetrandevelopers/zetasql/lib/types/zetasql/ValueProto.js';
import { quoteIdent } from '../contract/tables.ts';
import type { Db } from '../db.ts';
import { parseExact } from '../json.ts';

/**
 * ZetaSQL, BigQuery's SQL front end and reference engine, as a local gRPC server: `analyze`
 * resolves names and checks types of GoogleSQL, `evaluate` runs a query over rows sent with it.
 * For the local BigQuery endpoint and the tests only: it needs the devDependency
 * `@fivetrandevelopers/zetasql`, so nothing the `recon` CLI loads may import this module.
 */

export type { TypeProto, ValueProto, ValueProto__Output, TypeProto__Output };

/** A table of the catalog a statement is resolved against; `rows` only for `evaluate`. */
export interface ZetaTable {
  name: string;
  columns: Array<{ name: string; type: TypeProto }>;
  rows?: ValueProto[][];
}

/** A named query parameter (`@name`), typed and valued as ZetaSQL takes them. */
export interface ZetaParam {
  name: string;
  type: TypeProto;
  value: ValueProto;
}

export interface ZetaResult {
  columns: Array<{ name: string; type: TypeProto__Output }>;
  rows: ValueProto__Output[][];
}

/** A statement ZetaSQL refused: `message` is its one-line error, `[at line:column]` included. */
export class ZetaSqlError extends Error {}

export interface ZetaSql {
  /** The resolved statement, or a ZetaSqlError. */
  analyze(sql: string, tables: readonly ZetaTable[], params?: readonly ZetaParam[]): Promise<AnalyzeResponse__Output>;
  /** The analyzer's error for a statement, or undefined when it resolves and type-checks. */
  analyzeError(sql: string, tables: readonly ZetaTable[]): Promise<string | undefined>;
  /** Runs a query over the tables' rows. */
  evaluate(sql: string, tables: readonly ZetaTable[], params?: readonly ZetaParam[]): Promise<ZetaResult>;
  /** The table paths a statement reads (WITH names left out), each as written: `a.b` is `['a', 'b']`. */
  tableNames(sql: string): Promise<string[][]>;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** The server binary the package ships for this machine (what its `runServer` starts). */
function serverBinary(): string {
  const pkg = path.dirname(createRequire(import.meta.url).resolve('@fivetrandevelopers/zetasql/package.json'));
  const name = `remote_server${process.arch.startsWith('arm') ? '_arm' : ''}${process.platform === 'darwin' ? '' : '.so'}`;
  return path.join(pkg, 'lib', 'zetasql', name);
}

type Rpc<Req, Res> = (request: Req) => Promise<Res>;

/**
 * Starts ZetaSQL's server on a free loopback port. It is started here rather than with the
 * package's `runServer`, which echoes its log to stdout and keeps no handle to stop it; and the
 * gRPC client is kept here, since the package's `ZetaSQLClient` is one static for the process
 * and two servers (two endpoints, or an endpoint and a test) would overwrite each other's.
 */
export async function startZetaSql(): Promise<ZetaSql> {
  const port = await freePort();
  const server: ChildProcess = execFile(serverBinary(), ['localhost', String(port)]);
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  ZetaSQLClient.init(port);
  const api: ZetaSqlLocalServiceClient = ZetaSQLClient.API;
  const rpc = <Req, Res>(method: (req: Req, cb: (err: unknown, res?: Res) => void) => unknown): Rpc<Req, Res> => {
    const call = promisify(method.bind(api) as (req: Req, cb: (err: unknown, res?: Res) => void) => void);
    return async (req) => (await call(req)) as Res;
  };
  const getLanguageOptions = rpc(api.getLanguageOptions as never) as Rpc<{ maximumFeatures: boolean }, { enabledLanguageFeatures: NonNullable<LanguageOptionsProto['enabledLanguageFeatures']> }>;
  const analyzeRpc = rpc(api.analyze as never) as Rpc<unknown, AnalyzeResponse__Output>;
  const evaluateRpc = rpc(api.evaluateQuery as never) as Rpc<EvaluateQueryRequest, EvaluateQueryResponse__Output>;
  const extractRpc = rpc(api.extractTableNamesFromStatement as never) as Rpc<unknown, { tableName: Array<{ tableNameSegment: string[] }> }>;

  let languageOptions: LanguageOptionsProto | undefined;
  for (let attempt = 0; !languageOptions; attempt++) {
    try {
      // BigQuery follows ZetaSQL's newest language (QUALIFY, JSON, IS DISTINCT FROM, NULLS LAST).
      languageOptions = { enabledLanguageFeatures: (await getLanguageOptions({ maximumFeatures: true })).enabledLanguageFeatures };
    } catch (err) {
      if (attempt >= 100 || server.exitCode !== null) {
        server.kill();
        api.close();
        throw new Error(`ZetaSQL server did not answer on port ${port}`, { cause: err });
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const options = (params: readonly ZetaParam[] = []) => ({
    languageOptions,
    errorMessageMode: 'ERROR_MESSAGE_ONE_LINE' as const,
    // BigQuery's default time zone; ZetaSQL's own is America/Los_Angeles.
    defaultTimezone: 'UTC',
    queryParameters: params.map((p) => ({ name: p.name, type: p.type })),
  });
  const catalog = (tables: readonly ZetaTable[]) => ({
    name: 'bigquery',
    builtinFunctionOptions: { languageOptions },
    table: tables.map((t) => ({ name: t.name, column: t.columns.map((c) => ({ name: c.name, type: c.type })) })),
  });
  const refused = (err: unknown): Error => {
    const e = err as { code?: number; details?: string };
    // gRPC's INVALID_ARGUMENT (3) and OUT_OF_RANGE (11): the statement, not the server.
    return e.code === 3 || e.code === 11 ? new ZetaSqlError(e.details ?? String(err)) : new Error(`ZetaSQL: ${e.details ?? String(err)}`, { cause: err });
  };

  const zeta: ZetaSql = {
    async analyze(sql, tables, params) {
      try {
        return await analyzeRpc({ sqlStatement: sql, simpleCatalog: catalog(tables), options: options(params) });
      } catch (err) {
        throw refused(err);
      }
    },

    async analyzeError(sql, tables) {
      try {
        await zeta.analyze(sql, tables);
        return undefined;
      } catch (err) {
        if (err instanceof ZetaSqlError) return err.message;
        throw err;
      }
    },

    async evaluate(sql, tables, params = []) {
      const tableContent: NonNullable<EvaluateQueryRequest['tableContent']> = {};
      for (const t of tables) tableContent[t.name] = { tableData: { row: (t.rows ?? []).map((cell) => ({ cell })) } };
      let response: EvaluateQueryResponse__Output;
      try {
        response = await evaluateRpc({
          sql,
          simpleCatalog: catalog(tables),
          options: options(params),
          tableContent,
          params: params.map((p) => ({ name: p.name, value: p.value })),
        });
      } catch (err) {
        throw refused(err);
      }
      return {
        columns: response.prepared!.columns.map((c) => ({ name: c.name, type: c.type! })),
        rows: response.content!.tableData!.row.map((r) => r.cell),
      };
    },

    async tableNames(sql) {
      try {
        return (await extractRpc({ sqlStatement: sql, options: languageOptions })).tableName.map((t) => t.tableNameSegment);
      } catch (err) {
        throw refused(err);
      }
    },

    async close() {
      api.close();
      if (server.exitCode === null) {
        server.kill();
        await exited;
      }
    },
  };
  return zeta;
}

const INT64: TypeProto = { typeKind: 'TYPE_INT64' };

/** A DuckDB column type as GoogleSQL's, and how its values are read out of DuckDB for it. */
interface Mapped {
  type: TypeProto;
  /** SQL reading the column `c` as what `cell` takes. */
  read: (c: string) => string;
  cell: (v: unknown) => ValueProto;
}

/** Microseconds since midnight 1970-01-01 (a DuckDB TIMESTAMP) as ZetaSQL's bit-field DATETIME. */
const datetimeCell = (us: bigint): ValueProto => {
  const seconds = us >= 0n ? us / 1_000_000n : -((-us + 999_999n) / 1_000_000n);
  const d = new Date(Number(seconds) * 1000);
  const bits =
    (BigInt(d.getUTCFullYear()) << 26n) |
    (BigInt(d.getUTCMonth() + 1) << 22n) |
    (BigInt(d.getUTCDate()) << 17n) |
    (BigInt(d.getUTCHours()) << 12n) |
    (BigInt(d.getUTCMinutes()) << 6n) |
    BigInt(d.getUTCSeconds());
  return { datetimeValue: { bitFieldDatetimeSeconds: bits.toString(), nanos: Number(us - seconds * 1_000_000n) * 1000 } };
};

/** Microseconds since the epoch as ZetaSQL's timestamp: whole seconds (floored) and nanoseconds. */
export function timestampCell(us: bigint): ValueProto {
  const seconds = us >= 0n ? us / 1_000_000n : -((-us + 999_999n) / 1_000_000n);
  return { timestampValue: { seconds: seconds.toString(), nanos: Number(us - seconds * 1_000_000n) * 1000 } };
}

/** NUMERIC as ZetaSQL serialises it: the value times 10^9, two's complement, little-endian, fewest bytes. */
export function numericCell(text: string): ValueProto {
  const m = /^(-?)(\d*)(?:\.(\d*))?$/.exec(text.trim());
  if (!m) throw new Error(`not a NUMERIC: ${text}`);
  const fraction = (m[3] ?? '').padEnd(9, '0');
  if (fraction.length > 9 && /[^0]/.test(fraction.slice(9))) throw new Error(`NUMERIC has at most 9 decimal places: ${text}`);
  let scaled = BigInt((m[2] || '0') + fraction.slice(0, 9));
  if (m[1]) scaled = -scaled;
  const bytes: number[] = [];
  for (let v = scaled; ; v >>= 8n) {
    bytes.push(Number(v & 0xffn));
    if (v >= -128n && v <= 127n) break;
  }
  return { numericValue: Buffer.from(bytes) };
}

/** A NUMERIC cell as exact decimal text, trailing zeros of the fraction dropped (as BigQuery renders it). */
export function numericText(bytes: Buffer | Uint8Array): string {
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
  if (bytes.length > 0 && bytes[bytes.length - 1]! & 0x80) v -= 1n << BigInt(8 * bytes.length);
  const sign = v < 0n ? '-' : '';
  const abs = v < 0n ? -v : v;
  const fraction = (abs % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return `${sign}${abs / 1_000_000_000n}${fraction ? `.${fraction}` : ''}`;
}

/** Splits a DuckDB type's top-level comma-separated parts (inside STRUCT(...)). */
function splitTop(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') quoted = !quoted;
    else if (!quoted && ch === '(') depth++;
    else if (!quoted && ch === ')') depth--;
    else if (!quoted && depth === 0 && ch === ',') {
      parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(text.slice(start).trim());
  return parts;
}

/** A nested (LIST, STRUCT) value from its JSON text, as the GoogleSQL type. */
function nestedCell(type: TypeProto, v: unknown): ValueProto {
  if (v === null || v === undefined) return {};
  switch (type.typeKind) {
    case 'TYPE_ARRAY':
      return { arrayValue: { element: (v as unknown[]).map((e) => nestedCell(type.arrayType!.elementType!, e)) } };
    case 'TYPE_STRUCT':
      return { structValue: { field: type.structType!.field!.map((f) => nestedCell(f.fieldType!, (v as Record<string, unknown>)[f.fieldName!])) } };
    case 'TYPE_INT64':
      return { int64Value: String(v) };
    case 'TYPE_BOOL':
      return { boolValue: Boolean(v) };
    case 'TYPE_DOUBLE':
      return { doubleValue: Number(v) };
    default:
      return { stringValue: typeof v === 'string' ? v : JSON.stringify(v) };
  }
}

function nestedType(duckType: string): TypeProto {
  const t = duckType.trim();
  if (t.endsWith('[]')) return { typeKind: 'TYPE_ARRAY', arrayType: { elementType: nestedType(t.slice(0, -2)) } };
  const struct = /^STRUCT\((.*)\)$/s.exec(t);
  if (struct) {
    return {
      typeKind: 'TYPE_STRUCT',
      structType: {
        field: splitTop(struct[1]!).map((part) => {
          const m = /^("(?:[^"]|"")*"|\S+)\s+(.*)$/s.exec(part)!;
          const name = m[1]!.startsWith('"') ? m[1]!.slice(1, -1).replaceAll('""', '"') : m[1]!;
          return { fieldName: name, fieldType: nestedType(m[2]!) };
        }),
      },
    };
  }
  return scalar(t)?.type ?? { typeKind: 'TYPE_STRING' };
}

function scalar(duckType: string): Mapped | undefined {
  switch (duckType) {
    case 'VARCHAR':
      return { type: { typeKind: 'TYPE_STRING' }, read: (c) => c, cell: (v) => ({ stringValue: String(v) }) };
    case 'BIGINT':
    case 'INTEGER':
    case 'SMALLINT':
    case 'TINYINT':
    case 'UINTEGER':
    case 'USMALLINT':
    case 'UTINYINT':
      return { type: INT64, read: (c) => `${c}::BIGINT`, cell: (v) => ({ int64Value: String(v) }) };
    case 'DOUBLE':
    case 'FLOAT':
      return { type: { typeKind: 'TYPE_DOUBLE' }, read: (c) => `${c}::DOUBLE`, cell: (v) => ({ doubleValue: Number(v) }) };
    case 'BOOLEAN':
      return { type: { typeKind: 'TYPE_BOOL' }, read: (c) => c, cell: (v) => ({ boolValue: Boolean(v) }) };
    // Read as epoch microseconds, so no instant is rounded on the way.
    case 'TIMESTAMP WITH TIME ZONE':
      return { type: { typeKind: 'TYPE_TIMESTAMP' }, read: (c) => `epoch_us(${c})`, cell: (v) => timestampCell(v as bigint) };
    case 'TIMESTAMP':
      return { type: { typeKind: 'TYPE_DATETIME' }, read: (c) => `epoch_us(${c})`, cell: (v) => datetimeCell(v as bigint) };
    case 'DATE':
      return { type: { typeKind: 'TYPE_DATE' }, read: (c) => `(${c} - DATE '1970-01-01')::INTEGER`, cell: (v) => ({ dateValue: Number(v) }) };
    case 'HUGEINT':
      return { type: { typeKind: 'TYPE_NUMERIC' }, read: (c) => `${c}::VARCHAR`, cell: (v) => numericCell(String(v)) };
    default:
      return /^DECIMAL\(\d+,\d\)$/.test(duckType)
        ? { type: { typeKind: 'TYPE_NUMERIC' }, read: (c) => `${c}::VARCHAR`, cell: (v) => numericCell(String(v)) }
        : undefined;
  }
}

/** How a DuckDB column type is served: lists and structs as arrays and structs, anything unknown as text. */
export function mapDuckDbType(duckType: string): Mapped {
  const known = scalar(duckType);
  if (known) return known;
  if (duckType.endsWith('[]') || duckType.startsWith('STRUCT(')) {
    const type = nestedType(duckType);
    return { type, read: (c) => `to_json(${c})::VARCHAR`, cell: (v) => nestedCell(type, parseExact(String(v))) };
  }
  return { type: { typeKind: 'TYPE_STRING' }, read: (c) => `${c}::VARCHAR`, cell: (v) => ({ stringValue: String(v) }) };
}

/** The columns of a DuckDB table or view with their DuckDB types. */
export async function duckDbColumns(db: Db, table: string): Promise<Array<{ name: string; duckType: string }>> {
  const cols = await db.all<{ column_name: string; column_type: string }>(`DESCRIBE ${quoteIdent(table)}`);
  return cols.map((c) => ({ name: c.column_name, duckType: c.column_type }));
}

/** A DuckDB table (or view), columns and rows, as a ZetaSQL table named `name`. */
export async function duckDbTable(db: Db, table: string, name: string = table): Promise<ZetaTable> {
  const columns = (await duckDbColumns(db, table)).map((c) => ({ name: c.name, mapped: mapDuckDbType(c.duckType) }));
  const select = columns.map((c, i) => `${c.mapped.read(quoteIdent(c.name))} AS c${i}`);
  const rows = await db.all<Record<string, unknown>>(`SELECT ${select.join(', ') || 'NULL'} FROM ${quoteIdent(table)}`);
  return {
    name,
    columns: columns.map((c) => ({ name: c.name, type: c.mapped.type })),
    rows: rows.map((r) => columns.map((c, i) => (r[`c${i}`] === null || r[`c${i}`] === undefined ? {} : c.mapped.cell(r[`c${i}`])))),
  };
}

/**
 * The tables a resolved statement scans: those under its final query and under the WITH entries
 * it reads, transitively; a WITH entry nothing reads scans nothing (as BigQuery prunes it).
 */
export function scannedTables(analysis: AnalyzeResponse__Output): Set<string> {
  const entries = new Map<string, unknown>();
  const visited = new Set<string>();
  const tables = new Set<string>();
  const walk = (node: unknown): void => {
    if (!node || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      for (const n of node) walk(n);
      return;
    }
    const o = node as Record<string, unknown>;
    const withScan = o['resolvedWithScanNode'] as { withEntryList?: Array<{ withQueryName?: string; withSubquery?: unknown }>; query?: unknown } | undefined;
    if (withScan) {
      for (const e of withScan.withEntryList ?? []) entries.set(e.withQueryName ?? '', e.withSubquery);
      walk(withScan.query);
      return;
    }
    const ref = o['resolvedWithRefScanNode'] as { withQueryName?: string } | undefined;
    if (ref) {
      const name = ref.withQueryName ?? '';
      if (!visited.has(name)) {
        visited.add(name);
        walk(entries.get(name));
      }
      return;
    }
    const scan = o['resolvedTableScanNode'] as { table?: { name?: string } } | undefined;
    if (scan?.table?.name) tables.add(scan.table.name);
    for (const v of Object.values(o)) walk(v);
  };
  walk(analysis.resolvedStatement);
  return tables;
}

/** A result cell as JavaScript: INT64 as bigint, arrays as arrays, JSON as its text. */
export function fromCell(cell: ValueProto__Output): unknown {
  switch (cell.value) {
    case undefined:
      return null;
    case 'int64Value':
      return BigInt(cell.int64Value!.toString());
    case 'arrayValue':
      return cell.arrayValue!.element.map(fromCell);
    default:
      return cell[cell.value];
  }
}
