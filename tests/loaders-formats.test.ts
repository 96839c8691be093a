import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  Bool,
  Int64,
  Table,
  TimestampMicrosecond,
  Utf8,
  makeData,
  makeVector,
  tableToIPC,
  vectorFromArray,
  type Vector,
} from 'apache-arrow';
import { stringify } from 'lossless-json';
import { beforeAll, describe, expect, test } from 'vitest';
import { parseConfig } from '../src/config.ts';
import { TABLES, rowSchema } from '../src/contract/tables.ts';
import { Db } from '../src/db.ts';
import { loadExports } from '../src/sources/index.ts';
import { exportWith } from './helpers/exports.ts';

/**
 * One small usage_records export, rendered in every format the loaders accept. Every rendering
 * must load into exactly the same typed rows: money as BIGINT beyond 2^53, timestamps to the
 * microsecond, quotes, commas and non-ASCII text intact, NULL where a field is empty or absent.
 */
const BASE_CSV = `usage_record_id,usage_source,allocation_id,app_instance_id,org_id,project_id,requested_by_user_id,component,control_plane_component,operating_mode,control_plane_scope,runtime_backend,start_time,end_time,last_billed_at,accrued_cost_minor,currency,correlation_id,trace_id
ur_1,allocation,alloc_1,,org_a,p_a1,u_a1,,,,,,2026-11-20T08:05:00.123456Z,,2026-11-20T11:30:00Z,9007199254740993,USD,corr-a1,trace-a1
ur_2,allocation,alloc_2,,org_a,p_a1,u_a1,,,,,,2026-11-20T06:00:00Z,2026-11-20T07:00:00.000001Z,2026-11-20T07:00:00Z,3200,USD,"corr, with ""quotes""",trace-a2
ur_5,app_runtime,,app_1,org_a,p_a1,u_a1,head,true,dedicated,instance,ray,2026-11-20T12:00:00.5+02:00,,2026-11-20T11:40:00Z,150,USD,Zürich-公司,
ur_6,app_runtime,,app_1,org_a,p_a1,u_a1,worker,false,dedicated,instance,ray,2026-11-20T10:00:00Z,,2026-11-20T11:40:00Z,0,USD,corr-app1,trace-app1
`;

const ROWS_SQL = `SELECT * EXCLUDE (__file, __line) FROM usage_records ORDER BY usage_record_id`;

async function loadRows(dir: string): Promise<Record<string, unknown>[]> {
  const db = await Db.open();
  try {
    const { config } = parseConfig({});
    await loadExports(db, dir, config);
    expect(await db.all(`SELECT * FROM recon_rejects`)).toEqual([]);
    return await db.allJson(ROWS_SQL);
  } finally {
    db.close();
  }
}

const CSV_LINES = BASE_CSV.trimEnd().split('\n');
const UTC_RENDERING = (csv: string) =>
  csv.replace(/(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2}(?:\.\d+)?)Z/g, '$1 $2 UTC');

let baseline: Record<string, unknown>[];
let typed: Record<string, unknown>[];

beforeAll(async () => {
  const dir = await exportWith({ 'usage_records.csv': BASE_CSV });
  baseline = await loadRows(dir);
  const db = await Db.open();
  try {
    await loadExports(db, dir, parseConfig({}).config);
    typed = await db.all(ROWS_SQL);
  } finally {
    db.close();
  }
});

describe('the baseline CSV', () => {
  test('types money, timestamps, booleans and text exactly', () => {
    expect(baseline.map((r) => [r['usage_record_id'], r['accrued_cost_minor'], r['start_time'], r['end_time'], r['control_plane_component'], r['correlation_id']])).toEqual([
      ['ur_1', '9007199254740993', '2026-11-20 08:05:00.123456+00', null, null, 'corr-a1'],
      ['ur_2', '3200', '2026-11-20 06:00:00+00', '2026-11-20 07:00:00.000001+00', null, 'corr, with "quotes"'],
      ['ur_5', '150', '2026-11-20 10:00:00.5+00', null, true, 'Zürich-公司'],
      ['ur_6', '0', '2026-11-20 10:00:00+00', null, false, 'corr-app1'],
    ]);
    expect(typeof typed[0]!['accrued_cost_minor']).toBe('bigint');
  });

  test('every typed row satisfies the zod schema derived from the contract', () => {
    const schema = rowSchema(TABLES.usage_records);
    for (const row of typed) expect(schema.safeParse(row).error).toBeUndefined();
    expect(schema.safeParse({ ...typed[0], accrued_cost_minor: -1n }).success).toBe(false);
    expect(schema.safeParse({ ...typed[0], usage_source: 'gpu' }).success).toBe(false);
  });
});

function ndjson(rows: Record<string, unknown>[]): string {
  return rows.map((row) => stringify(row)).join('\n') + '\n';
}

const TS_COLUMNS = TABLES.usage_records.columns.filter((c) => c.type === 'timestamp').map((c) => c.name);

/** BigQuery JSON: INT64 as strings, `YYYY-MM-DD HH:MM:SS[.ffffff] UTC`, NULL fields omitted. */
function bigQueryJson(): string {
  return ndjson(
    baseline.map((row) =>
      Object.fromEntries(
        Object.entries(row)
          .filter(([, v]) => v !== null)
          .map(([k, v]) => [k, TS_COLUMNS.includes(k) ? String(v).replace(/\+00$/, ' UTC') : k === 'control_plane_component' ? v : String(v)]),
      ),
    ),
  );
}

/** Ordinary JSON: numbers as JSON numbers (beyond 2^53 too), nulls written out, offset timestamps. */
function plainJson(): string {
  return ndjson(
    typed.map((row, i) =>
      Object.fromEntries(Object.entries(row).map(([k, v]) => [k, TS_COLUMNS.includes(k) ? baseline[i]![k] : v])),
    ),
  );
}

function bitmap(valid: boolean[]): Uint8Array {
  const bytes = new Uint8Array(Math.ceil(valid.length / 8));
  valid.forEach((ok, i) => {
    if (ok) bytes[i >> 3]! |= 1 << (i & 7);
  });
  return bytes;
}

/** usage_records as an Arrow table with native int64, bool and microsecond UTC timestamps. */
function arrowTable(): Table {
  const columns: Record<string, Vector> = {};
  for (const col of TABLES.usage_records.columns) {
    const values = typed.map((r) => r[col.name] as unknown);
    if (col.type === 'timestamp') {
      const micros = values.map((v) => (v === null ? 0n : (v as { micros: bigint }).micros));
      columns[col.name] = makeVector(
        makeData({
          type: new TimestampMicrosecond('UTC'),
          length: micros.length,
          nullCount: values.filter((v) => v === null).length,
          nullBitmap: bitmap(values.map((v) => v !== null)),
          data: BigInt64Array.from(micros),
        }),
      );
    } else if (col.type === 'bigint' || col.type === 'int') {
      columns[col.name] = vectorFromArray(values as (bigint | null)[], new Int64());
    } else if (col.type === 'bool') {
      columns[col.name] = vectorFromArray(values as (boolean | null)[], new Bool());
    } else {
      columns[col.name] = vectorFromArray(values as (string | null)[], new Utf8());
    }
  }
  return new Table(columns);
}

async function parquetFrom(sqlCast: (col: string, type: string) => string): Promise<Buffer> {
  const dir = await exportWith({ 'usage_records.csv': BASE_CSV });
  const db = await Db.open();
  try {
    await loadExports(db, dir, parseConfig({}).config);
    const cols = TABLES.usage_records.columns.map((c) => sqlCast(`"${c.name}"`, c.type)).join(', ');
    const file = path.join(dir, 'out.parquet');
    await db.run(`COPY (SELECT ${cols} FROM usage_records ORDER BY usage_record_id) TO $file (FORMAT parquet)`, { file });
    return await readFile(file);
  } finally {
    db.close();
  }
}

const VARIANTS: Record<string, () => Promise<Record<string, string | Buffer | Uint8Array>>> = {
  'spreadsheet CSV (BOM, CRLF)': async () => ({ 'usage_records.csv': '\ufeff' + BASE_CSV.replaceAll('\n', '\r\n') }),
  'BigQuery CSV (" UTC" timestamps)': async () => ({ 'usage_records.csv': UTC_RENDERING(BASE_CSV) }),
  'gzip CSV': async () => ({ 'usage_records.csv.gz': gzipSync(BASE_CSV) }),
  'sharded CSV folder (BigQuery wildcard)': async () => ({
    'usage_records/usage_records-000000000000.csv': [CSV_LINES[0], CSV_LINES[1], CSV_LINES[2]].join('\n') + '\n',
    'usage_records/usage_records-000000000001.csv.gz': gzipSync([CSV_LINES[0], CSV_LINES[3], CSV_LINES[4]].join('\n') + '\n'),
  }),
  'Parquet (TIMESTAMPTZ)': async () => ({ 'usage_records.parquet': await parquetFrom((c) => c) }),
  'Parquet, BigQuery style (timestamps not marked UTC)': async () => ({
    'usage_records.parquet': await parquetFrom((c, t) => (t === 'timestamp' ? `${c}::TIMESTAMP AS ${c}` : c)),
  }),
  'sharded Parquet folder': async () => {
    const whole = await parquetFrom((c) => c);
    return { 'usage_records/part-0.parquet': whole };
  },
  'NDJSON': async () => ({ 'usage_records.ndjson': plainJson() }),
  'BigQuery NDJSON (INT64 as strings, NULLs omitted)': async () => ({ 'usage_records.json': bigQueryJson() }),
  'gzip JSONL': async () => ({ 'usage_records.jsonl.gz': gzipSync(bigQueryJson()) }),
  'Arrow IPC file': async () => ({ 'usage_records.arrow': tableToIPC(arrowTable(), 'file') }),
  'Arrow IPC stream': async () => ({ 'usage_records.arrow': tableToIPC(arrowTable(), 'stream') }),
};

describe('every format loads the same rows, value for value', () => {
  for (const [name, build] of Object.entries(VARIANTS)) {
    test(name, async () => {
      const dir = await exportWith(await build());
      expect(await loadRows(dir)).toEqual(baseline);
    });
  }
});
