import path from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  Decimal,
  Int64,
  Table,
  TimestampMicrosecond,
  Uint64,
  Utf8,
  makeData,
  makeVector,
  tableToIPC,
  vectorFromArray,
  type Vector,
} from 'apache-arrow';
import { describe, expect, test } from 'vitest';
import { parseConfig } from '../src/config.ts';
import { TABLES } from '../src/contract/tables.ts';
import { Db } from '../src/db.ts';
import { loadExports } from '../src/sources/index.ts';
import { exportWith } from './helpers/exports.ts';

interface Reject {
  line: number;
  problems: { column: string | null; value: string | null; message: string }[];
}

interface Loaded {
  rejects: Reject[];
  /** usage_records as `[usage_record_id, accrued_cost_minor, __line, ...extra columns]` (JSON renderings). */
  rows: unknown[][];
}

/** Loads an export and returns the usage_records rejects and rows. */
async function load(dir: string, extra: string[] = []): Promise<Loaded> {
  const db = await Db.open();
  try {
    await loadExports(db, dir, parseConfig({}).config);
    const rejects = await db.allJson<{ line: string; problems: Reject['problems'] }>(
      `SELECT line, problems FROM recon_rejects WHERE table_name = 'usage_records' ORDER BY line`,
    );
    const rows = await db.allJson<Record<string, unknown>>(
      `SELECT usage_record_id, accrued_cost_minor, __line${extra.map((c) => `, "${c}"`).join('')} FROM usage_records ORDER BY __line`,
    );
    return {
      rejects: rejects.map((r) => ({ line: Number(r.line), problems: r.problems })),
      rows: rows.map((r) => Object.values(r)),
    };
  } finally {
    db.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Arrow

const T0 = 1_795_161_600_000_000n; // 2026-11-20T08:00:00Z in microseconds

function bitmap(valid: boolean[]): Uint8Array {
  const bytes = new Uint8Array(Math.ceil(valid.length / 8));
  valid.forEach((ok, i) => {
    if (ok) bytes[i >> 3]! |= 1 << (i & 7);
  });
  return bytes;
}

/** A Decimal vector from unscaled integers (two's complement, little-endian 32-bit words). */
function decimalVector(unscaled: (bigint | null)[], scale: number, precision: number, bitWidth = 128): Vector {
  const stride = bitWidth / 32;
  const words = new Uint32Array(unscaled.length * stride);
  unscaled.forEach((v, i) => {
    let x = BigInt.asUintN(bitWidth, v ?? 0n);
    for (let w = 0; w < stride; w++) {
      words[i * stride + w] = Number(x & 0xffff_ffffn);
      x >>= 32n;
    }
  });
  return makeVector(
    makeData({
      type: new Decimal(scale, precision, bitWidth),
      length: unscaled.length,
      nullCount: unscaled.filter((v) => v === null).length,
      nullBitmap: bitmap(unscaled.map((v) => v !== null)),
      data: words,
    }),
  );
}

/** usage_records as Arrow: `ids.length` well-formed rows, with the given columns replaced. */
function arrowUsage(ids: string[], replace: Record<string, Vector>): Uint8Array {
  const n = ids.length;
  const text = (v: string | null) => vectorFromArray(Array<string | null>(n).fill(v), new Utf8());
  const values: Record<string, string | null> = {
    usage_source: 'allocation', allocation_id: 'alloc_1', org_id: 'org_a', project_id: 'p_a1', requested_by_user_id: 'u_a1',
    currency: 'USD', correlation_id: 'corr', trace_id: 'trace',
  };
  const columns: Record<string, Vector> = {};
  for (const col of TABLES.usage_records.columns) {
    if (replace[col.name]) columns[col.name] = replace[col.name]!;
    else if (col.name === 'usage_record_id') columns[col.name] = vectorFromArray(ids, new Utf8());
    else if (col.name === 'start_time') {
      columns[col.name] = makeVector(makeData({ type: new TimestampMicrosecond('UTC'), length: n, nullCount: 0, data: BigInt64Array.from(ids.map(() => T0)) }));
    } else if (col.name === 'accrued_cost_minor') columns[col.name] = vectorFromArray(ids.map(() => 1n), new Int64());
    else columns[col.name] = text(values[col.name] ?? null);
  }
  return tableToIPC(new Table(columns), 'file');
}

describe('Arrow', () => {
  test('a Decimal keeps its scale: fractional money is rejected as Parquet DECIMAL(18,2) is, scale 0 loads exactly', async () => {
    const ids = ['u1', 'u2', 'u3', 'u4', 'u5'];
    // Decimal(18,2): 12.00, 12.34, -0.05, NULL (amount missing) and 0.00
    const dec2 = decimalVector([1200n, 1234n, -5n, null, 0n], 2, 18);
    const arrow = await load(await exportWith({ 'usage_records.arrow': arrowUsage(ids, { accrued_cost_minor: dec2 }) }));
    // Row 4 has no amount: typing passes NULL through, the not-null check is contract.invalid_value's.
    expect(arrow.rows).toEqual([['u4', null, '4']]);
    const expected = [
      { line: 1, problems: [{ column: 'accrued_cost_minor', value: '12.00', message: 'not an integer amount of minor units (or out of BIGINT range)' }] },
      { line: 2, problems: [{ column: 'accrued_cost_minor', value: '12.34', message: 'not an integer amount of minor units (or out of BIGINT range)' }] },
      { line: 3, problems: [{ column: 'accrued_cost_minor', value: '-0.05', message: 'not an integer amount of minor units (or out of BIGINT range)' }] },
      { line: 5, problems: [{ column: 'accrued_cost_minor', value: '0.00', message: 'not an integer amount of minor units (or out of BIGINT range)' }] },
    ];
    expect(arrow.rejects).toEqual(expected);

    // The same values through Parquet DECIMAL(18,2): the same rejects.
    const db = await Db.open();
    const dir = await exportWith({});
    try {
      await db.run(
        `COPY (SELECT * REPLACE (cost::DECIMAL(18,2) AS accrued_cost_minor) FROM (SELECT *, [12.00, 12.34, -0.05, NULL, 0.00][n] AS cost FROM (
                 SELECT n, 'u' || n AS usage_record_id, 'allocation' AS usage_source, 'alloc_1' AS allocation_id, NULL::VARCHAR AS app_instance_id,
                        'org_a' AS org_id, 'p_a1' AS project_id, 'u_a1' AS requested_by_user_id, NULL::VARCHAR AS component,
                        NULL::BOOLEAN AS control_plane_component, NULL::VARCHAR AS operating_mode, NULL::VARCHAR AS control_plane_scope,
                        NULL::VARCHAR AS runtime_backend, TIMESTAMPTZ '2026-11-20 08:00:00+00' AS start_time, NULL::TIMESTAMPTZ AS end_time,
                        NULL::TIMESTAMPTZ AS last_billed_at, NULL AS accrued_cost_minor, 'USD' AS currency, 'corr' AS correlation_id, 'trace' AS trace_id
                 FROM range(1, 6) r(n))) ORDER BY n) TO $file (FORMAT parquet)`,
        { file: path.join(dir, 'usage_records.parquet') },
      );
    } finally {
      db.close();
    }
    const parquet = await load(dir);
    expect(parquet.rejects).toEqual(expected);
    expect(parquet.rows).toEqual(arrow.rows);

    // Decimal(38,0) and a 256-bit decimal of scale 0 are integers: exact beyond 2^53, negative too.
    const dec0 = decimalVector([1200n, 9_007_199_254_740_993n, -7n, null, 0n], 0, 38);
    const exact = await load(await exportWith({ 'usage_records.arrow': arrowUsage(ids, { accrued_cost_minor: dec0, correlation_id: decimalVector([1n, -5n, 123456n, null, 10n ** 40n], 3, 60, 256) }) }), ['correlation_id']);
    expect(exact.rejects).toEqual([]);
    expect(exact.rows).toEqual([
      ['u1', '1200', '1', '0.001'],
      ['u2', '9007199254740993', '2', '-0.005'],
      ['u3', '-7', '3', '123.456'],
      ['u4', null, '4', null],
      ['u5', '0', '5', '1' + '0'.repeat(37) + '.000'],
    ]);
  });

  test('a UInt64 beyond the BIGINT range rejects its row, and the rest loads', async () => {
    const cost = vectorFromArray([1n, 18_446_744_073_709_551_615n, 9_223_372_036_854_775_807n, 9_223_372_036_854_775_808n, null], new Uint64());
    const loaded = await load(await exportWith({ 'usage_records.arrow': arrowUsage(['u1', 'u2', 'u3', 'u4', 'u5'], { accrued_cost_minor: cost }) }));
    expect(loaded.rejects).toEqual([
      { line: 2, problems: [{ column: 'accrued_cost_minor', value: '18446744073709551615', message: 'not an integer amount of minor units (or out of BIGINT range)' }] },
      { line: 4, problems: [{ column: 'accrued_cost_minor', value: '9223372036854775808', message: 'not an integer amount of minor units (or out of BIGINT range)' }] },
    ]);
    expect(loaded.rows).toEqual([
      ['u1', '1', '1'],
      ['u3', '9223372036854775807', '3'],
      ['u5', null, '5'],
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// NDJSON

const BASE = {
  usage_source: 'allocation', allocation_id: 'alloc_1', org_id: 'org_a', project_id: 'p_a1', requested_by_user_id: 'u_a1',
  start_time: '2026-11-20 08:05:00 UTC', currency: 'USD', correlation_id: 'corr',
};

/** One NDJSON line; `raw` values are spliced in as JSON text, so numbers keep every digit. */
function line(id: string, cost: string | number, raw: Record<string, string> = {}): string {
  const fields = { usage_record_id: id, ...BASE, accrued_cost_minor: cost };
  let text = JSON.stringify(fields);
  for (const [k, v] of Object.entries(raw)) {
    text = k in fields ? text.replace(new RegExp(`"${k}":("[^"]*"|[0-9]+)`), `"${k}":${v}`) : text.replace(/}$/, `,"${k}":${v}}`);
  }
  return text;
}

describe('NDJSON', () => {
  const CTRL = line('bad_ctrl', 1).replace('"corr"', '"a\u0001b"');
  const files = (): Buffer =>
    Buffer.concat(
      [
        line('u1', 1), // 1
        CTRL, // 2: the line reader rejects U+0001
        line('u3', 3), // 3
        Buffer.from(line('bad_utf8', 1).replace('"corr"', '"c\xff"'), 'latin1'), // 4: invalid UTF-8
        '', // 5: blank
        line('u6', 6), // 6
        line('too_long', 1).replace('"corr"', `"${'y'.repeat(3_000_000)}"`), // 7: over the line reader's max_line_size
        CTRL, // 8
        line('u9', 'x'), // 9: typing rejects the amount
        '[1]', // 10: not an object
        '{"usage_record_id": broken', // 11: invalid JSON
        line('u12', 12), // 12
      ].flatMap((l) => [Buffer.isBuffer(l) ? l : Buffer.from(l), Buffer.from('\n')]),
    );

  for (const [name, file] of [
    ['usage_records.ndjson', (b: Buffer) => b],
    ['usage_records.ndjson.gz', (b: Buffer) => gzipSync(b)],
  ] as const) {
    test(`every row keeps its physical line after lines the line reader rejects (${name})`, async () => {
      const loaded = await load(await exportWith({ [name]: file(files()) }));
      expect(loaded.rows).toEqual([
        ['u1', '1', '1'],
        ['u3', '3', '3'],
        ['u6', '6', '6'],
        ['u12', '12', '12'],
      ]);
      expect(loaded.rejects.map((r) => [r.line, r.problems.map((p) => p.column ?? p.message)])).toEqual([
        [2, ['invalid JSON (control character)']],
        [4, ['invalid JSON (not valid UTF-8)']],
        [7, [expect.stringMatching(/^line too long/)]],
        [8, ['invalid JSON (control character)']],
        [9, ['accrued_cost_minor']],
        [10, ['not a JSON object']],
        [11, ['invalid JSON']],
      ]);
      expect(loaded.rejects[0]!.problems[0]!.value).toBe(CTRL.slice(0, 200));
    });
  }

  test('an object, an array or an inexact number where a scalar was expected rejects the row, with each column', async () => {
    const text = [
      line('u1', 1, { org_id: '{"id":"org_a"}' }), // 1
      line('u2', 2, { correlation_id: '["a","b"]', trace_id: '{}' }), // 2: two columns
      line('u3', 3, { correlation_id: '12345678901234567890.5' }), // 3
      line('u4', 4, { correlation_id: '1.2345678901234569e+23' }), // 4
      line('u5', 5, { correlation_id: '0.30000000000000001' }), // 5
      '', // 6
      line('u7', 7, { correlation_id: '123', trace_id: 'true', component: '123456789012345678901234' }), // 7: integers and booleans are text
      line('u8', 8, { accrued_cost_minor: '[8]' }), // 8: an array in a money column
      line('u9', 9, { accrued_cost_minor: '1.5' }), // 9: typing rejects non-integers in money
      line('u10', 10, { accrued_cost_minor: '9223372036854775808' }), // 10: typing rejects out of range
      line('u11', 11, { control_plane_component: 'true', correlation_id: '-42' }), // 11
      line('u12', 12).replace('"corr"', '"a\u0001b"'), // 12: rejected by the line reader
      line('u13', 13, { correlation_id: '{"id": [1, {"x": "é"}]}' }), // 13: after a line-reader reject
      line('u14', 14, { correlation_id: '"{\\"looks\\": [\\"like json\\"]}"' }), // 14: a string that looks like JSON is text
      line('u15', 15, { trace_id: 'NaN' }), // 15: not JSON, but DuckDB reads it as a DOUBLE
      line('u16', 16).replace('"correlation_id":"corr"', '"correlation_id" :\t2.50'), // 16: 2.50 would read as 2.5
    ].join('\n') + '\n';
    const loaded = await load(await exportWith({ 'usage_records.ndjson': text }), ['org_id', 'correlation_id', 'trace_id', 'component', 'control_plane_component']);
    expect(loaded.rows).toEqual([
      ['u7', '7', '7', 'org_a', '123', 'true', '123456789012345678901234', null],
      ['u11', '11', '11', 'org_a', '-42', null, null, true],
      ['u14', '14', '14', 'org_a', '{"looks": ["like json"]}', null, null, null],
    ]);
    const object = 'a JSON object where a scalar was expected';
    const array = 'a JSON array where a scalar was expected';
    const inexact = 'a number that cannot be represented exactly as text (write it as a JSON string)';
    expect(loaded.rejects).toEqual([
      { line: 1, problems: [{ column: 'org_id', value: '{"id":"org_a"}', message: object }] },
      {
        line: 2,
        problems: [
          { column: 'correlation_id', value: '["a","b"]', message: array },
          { column: 'trace_id', value: '{}', message: object },
        ],
      },
      { line: 3, problems: [{ column: 'correlation_id', value: '12345678901234567000.0', message: inexact }] },
      { line: 4, problems: [{ column: 'correlation_id', value: '1.2345678901234569e23', message: inexact }] },
      { line: 5, problems: [{ column: 'correlation_id', value: '0.3', message: inexact }] },
      { line: 8, problems: [{ column: 'accrued_cost_minor', value: '[8]', message: array }] },
      { line: 9, problems: [{ column: 'accrued_cost_minor', value: '1.5', message: 'not an integer amount of minor units (or out of BIGINT range)' }] },
      { line: 10, problems: [{ column: 'accrued_cost_minor', value: '9223372036854775808', message: 'not an integer amount of minor units (or out of BIGINT range)' }] },
      { line: 12, problems: [{ column: null, value: expect.stringContaining('"usage_record_id":"u12"'), message: 'invalid JSON (control character)' }] },
      { line: 13, problems: [{ column: 'correlation_id', value: '{"id":[1,{"x":"é"}]}', message: object }] },
      { line: 15, problems: [{ column: 'trace_id', value: 'NaN', message: inexact }] },
      { line: 16, problems: [{ column: 'correlation_id', value: '2.5', message: inexact }] },
    ]);
  });

  test('CRLF and blank lines in a clean file keep physical line numbers', async () => {
    const text = [line('u1', 1), '', line('u3', 3)].join('\r\n') + '\r\n';
    const loaded = await load(await exportWith({ 'usage_records.jsonl': text }));
    expect(loaded.rejects).toEqual([]);
    expect(loaded.rows).toEqual([
      ['u1', '1', '1'],
      ['u3', '3', '3'],
    ]);
  });
});
