import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { Int64, Struct, Field, Table, TimestampMicrosecond, TimestampSecond, Utf8, makeData, makeVector, tableToIPC, vectorFromArray, type Vector } from 'apache-arrow';
import { describe, expect, test } from 'vitest';
import { auditExports } from '../src/audit.ts';
import { loadConfig, parseConfig } from '../src/config.ts';
import { TABLES } from '../src/contract/tables.ts';
import { Db } from '../src/db.ts';
import { loadExports, type LoadResult } from '../src/sources/index.ts';
import { CLEAN, exportWith, tempDir } from './helpers/exports.ts';

interface Loaded {
  load: LoadResult;
  rejects: Array<{ file: string; line: number; problems: Array<{ column: string | null; value: string | null; message: string }> }>;
  ids: string[];
}

async function load(dir: string): Promise<Loaded> {
  const db = await Db.open();
  try {
    const result = await loadExports(db, dir, parseConfig({}).config);
    const rejects = await db.allJson<{ file: string; line: string; problems: Loaded['rejects'][number]['problems'] }>(
      `SELECT file, line, problems FROM recon_rejects WHERE table_name = 'usage_records' ORDER BY file, line`,
    );
    const ids = (await db.all<{ id: string }>(`SELECT usage_record_id AS id FROM usage_records ORDER BY __file, __line`)).map((r) => r.id);
    return { load: result, rejects: rejects.map((r) => ({ ...r, line: Number(r.line) })), ids };
  } finally {
    db.close();
  }
}

const usageCsv = async () => readFile(path.join(CLEAN, 'usage_records.csv'), 'utf8');
const ALL_IDS = ['ur_1', 'ur_2', 'ur_3', 'ur_4', 'ur_5', 'ur_6', 'ur_7', 'ur_8'];

/** usage_records of fixtures/clean as NDJSON, one object per row. */
async function usageNdjson(): Promise<string> {
  const [head, ...rows] = (await usageCsv()).trim().split('\n');
  const names = head!.split(',');
  return rows.map((r) => JSON.stringify(Object.fromEntries(r.split(',').flatMap((v, i) => (v === '' ? [] : [[names[i], v]]))))).join('\n') + '\n';
}

/** Writes usage_records of fixtures/clean as Parquet, with `select` replacing columns (DuckDB SQL over `u`). */
async function usageParquet(file: string, replace = ''): Promise<void> {
  const db = await Db.open();
  try {
    await db.run(
      `COPY (SELECT * ${replace ? `REPLACE (${replace})` : ''} FROM read_csv($csv, header = true) u) TO $file (FORMAT parquet)`,
      { csv: path.join(CLEAN, 'usage_records.csv'), file },
    );
  } finally {
    db.close();
  }
}

describe('a source whose container says it ended early fails the audit, naming the file', () => {
  test('a truncated .csv.gz and a truncated .ndjson.gz (gzip trailer checked)', async () => {
    const csv = gzipSync(await usageCsv());
    await expect(load(await exportWith({ 'usage_records.csv.gz': csv.subarray(0, csv.length - 12) }))).rejects.toThrow(
      /^usage_records\.csv\.gz: the file ends early/,
    );
    const json = gzipSync((await usageNdjson()).repeat(50));
    await expect(load(await exportWith({ 'usage_records.ndjson.gz': json.subarray(0, Math.floor(json.length / 2)) }))).rejects.toThrow(
      /^usage_records\.ndjson\.gz: the file ends early/,
    );
  });

  test('a .csv.gz that is not gzip is exit 2 with a message, not a crash', async () => {
    await expect(load(await exportWith({ 'usage_records.csv.gz': await usageCsv() }))).rejects.toThrow(
      /^usage_records\.csv\.gz: not gzip data, although the name ends in \.gz/,
    );
  });

  test('a Parquet file without its footer, and a corrupt Parquet shard', async () => {
    const dir = await exportWith({});
    const file = path.join(dir, 'usage_records.parquet');
    await usageParquet(file);
    const bytes = await readFile(file);
    await writeFile(file, bytes.subarray(0, bytes.length - 100));
    await expect(load(dir)).rejects.toThrow(/^usage_records\.parquet: cannot read this parquet file \(corrupt or truncated\?\): .*magic bytes/);

    const sharded = await exportWith({});
    await mkdir(path.join(sharded, 'usage_records'));
    await usageParquet(path.join(sharded, 'usage_records', 'part-0.parquet'));
    const corrupt = Buffer.from(bytes);
    corrupt.fill(0x41, 200, 300);
    await writeFile(path.join(sharded, 'usage_records', 'part-1.parquet'), corrupt);
    await expect(load(sharded)).rejects.toThrow(/^usage_records\/part-1\.parquet: cannot read this parquet file/);
  });

  test('an Arrow stream without its end-of-stream marker, and an Arrow file without its footer', async () => {
    const ids = ['u1', 'u2', 'u3'];
    const stream = tableToIPC(arrowUsage(ids), 'stream');
    await expect(load(await exportWith({ 'usage_records.arrow': stream.subarray(0, stream.length - 8) }))).rejects.toThrow(
      /^usage_records\.arrow: the Arrow stream has no end-of-stream marker/,
    );
    const file = tableToIPC(arrowUsage(ids), 'file');
    await expect(load(await exportWith({ 'usage_records.arrow': file.subarray(0, file.length - 40) }))).rejects.toThrow(
      /^usage_records\.arrow: the Arrow IPC file has no footer/,
    );
    // Whole, both load every row.
    expect((await load(await exportWith({ 'usage_records.arrow': stream }))).ids).toEqual(ids);
  });
});

describe('every shard is read, and a file the audit would not read is an error', () => {
  test('nested Hive partition folders and a symlinked shard are read and listed in the inputs', async () => {
    const [head, ...rows] = (await usageCsv()).trim().split('\n');
    const outside = await tempDir('recon-shard-');
    await writeFile(path.join(outside, 'linked.csv'), [head, ...rows.slice(6)].join('\n') + '\n');
    const dir = await exportWith({
      'usage_records/dt=2026-11-20/part-1.csv': [head, ...rows.slice(0, 3)].join('\n') + '\n',
      'usage_records/dt=2026-11-21/hour=07/part-1.csv': [head, ...rows.slice(3, 6)].join('\n') + '\n',
    });
    await symlink(path.join(outside, 'linked.csv'), path.join(dir, 'usage_records', 'part-9.csv'));
    const { load: result, ids } = await load(dir);
    expect(ids).toEqual(ALL_IDS);
    expect(result.inputs.filter((i) => i.table === 'usage_records').map((i) => [i.source, i.rows])).toEqual([
      ['usage_records/dt=2026-11-20/part-1.csv', 3],
      ['usage_records/dt=2026-11-21/hour=07/part-1.csv', 3],
      ['usage_records/part-9.csv', 2],
    ]);
  });

  test('a dangling symlink is a clear error', async () => {
    const dir = await exportWith({ 'usage_records/part-0.csv': await usageCsv() });
    await symlink(path.join(dir, 'gone.csv'), path.join(dir, 'usage_records', 'part-1.csv'));
    await expect(load(dir)).rejects.toThrow(/^usage_records\/part-1\.csv: symbolic link that cannot be followed \(dangling or unreadable\)/);
    const top = await exportWith({});
    await symlink(path.join(top, 'gone.csv'), path.join(top, 'usage_records.csv'));
    await expect(load(top)).rejects.toThrow(/^usage_records\.csv: symbolic link that cannot be followed/);
  });

  test('a file in a table folder that is not a readable shard is an error naming it', async () => {
    const dir = await exportWith({ 'usage_records/part-0.csv': await usageCsv(), 'usage_records/dt=2026-11-20/part-1.csv.bak': 'x' });
    await expect(load(dir)).rejects.toThrow(/^usage_records\/: a file that is not a readable shard of usage_records .*: usage_records\/dt=2026-11-20\/part-1\.csv\.bak$/);
  });
});

describe('every physical line is accounted for, per file', () => {
  test('an unterminated quote rejects every line it swallowed, and the account balances', async () => {
    const text = (await usageCsv()).replace('\nur_3,', '\n"ur_3,');
    const { load: result, rejects, ids } = await load(await exportWith({ 'usage_records.csv': text }));
    expect(ids).toEqual(['ur_1', 'ur_2']);
    expect(rejects.map((r) => r.line)).toEqual([4, 5, 6, 7, 8, 9]);
    expect(rejects[0]!.problems[0]!.message).toMatch(/unterminated quote/);
    expect(rejects[1]!.problems).toEqual([{ column: null, value: null, message: 'unreadable: inside the quoted field opened on line 4, which is never closed' }]);
    const input = result.inputs.find((i) => i.table === 'usage_records')!;
    expect(input.lines).toEqual({ physical: 9, header: 1, loaded: 2, rejected: 6, blank: 0, continuation: 0 });
  });

  test('blank lines and quoted line breaks are counted, in CSV and NDJSON', async () => {
    const csv = (await usageCsv()).replace('\nur_3,', '\n\nur_3,').replace(',corr-a2,', ',"corr\na2",') + '\n';
    const a = await load(await exportWith({ 'usage_records.csv': csv }));
    expect(a.ids).toEqual(ALL_IDS);
    expect(a.load.inputs.find((i) => i.table === 'usage_records')!.lines).toEqual({ physical: 12, header: 1, loaded: 8, rejected: 0, blank: 2, continuation: 1 });
    const json = (await usageNdjson()).replace('\n', '\n\n   \n') + '{broken\n';
    const b = await load(await exportWith({ 'usage_records.ndjson': json }));
    expect(b.load.inputs.find((i) => i.table === 'usage_records')!.lines).toEqual({ physical: 11, header: 0, loaded: 8, rejected: 1, blank: 2, continuation: 0 });
  });

  test('a trailing comma on every CSV line (a spreadsheet artefact) loads every row', async () => {
    const text = (await usageCsv()).replaceAll('\n', ',\n');
    const { ids, rejects } = await load(await exportWith({ 'usage_records.csv': text }));
    expect(ids).toEqual(ALL_IDS);
    expect(rejects).toEqual([]);
    // ... but a column without a name that holds values is refused, not dropped.
    const filled = (await usageCsv()).replaceAll('\n', ',\n').replace('corr-a2,trace-a2,', 'corr-a2,trace-a2,oops');
    await expect(load(await exportWith({ 'usage_records.csv': filled }))).rejects.toThrow(/line 1, column 20: the header gives no name to a column that holds values in 1 row/);
  });
});

const TS_MESSAGE = 'not a finite timestamp between the years 1 and 9999';

describe('instants that are not instants are rejected in every format', () => {
  test('offsets beyond ±18:00 or with minutes over 59, in CSV and NDJSON', async () => {
    const edit = (t: string) => t.replace('2026-11-20T06:00:00Z', '2026-11-20T06:00:00+25:00').replace('2026-11-20T09:00:00Z', '2026-11-20T09:00:00+05:99');
    const csv = await load(await exportWith({ 'usage_records.csv': edit(await usageCsv()) }));
    expect(csv.rejects.map((r) => [r.line, r.problems.map((p) => [p.column, p.value])])).toEqual([
      [3, [['start_time', '2026-11-20T06:00:00+25:00']]],
      [4, [['start_time', '2026-11-20T09:00:00+05:99']]],
    ]);
    const json = await load(await exportWith({ 'usage_records.ndjson': edit(await usageNdjson()) }));
    expect(json.rejects.map((r) => [r.line, r.problems[0]!.column])).toEqual([[2, 'start_time'], [3, 'start_time']]);
    // A real offset still reads as the instant it names.
    const ok = await load(await exportWith({ 'usage_records.csv': (await usageCsv()).replace('2026-11-20T06:00:00Z', '2026-11-20T20:00:00+14:00') }));
    expect(ok.rejects).toEqual([]);
  });

  test('a Parquet infinity timestamp is rejected', async () => {
    const dir = await exportWith({});
    await usageParquet(path.join(dir, 'usage_records.parquet'), `CASE WHEN usage_record_id = 'ur_3' THEN 'infinity'::TIMESTAMPTZ ELSE end_time::TIMESTAMPTZ END AS end_time`);
    const { rejects, ids } = await load(dir);
    expect(rejects).toEqual([{ file: 'usage_records.parquet', line: 3, problems: [{ column: 'end_time', value: 'infinity', message: TS_MESSAGE }] }]);
    expect(ids).not.toContain('ur_3');
  });

  test('an out-of-range Arrow timestamp on row 6 rejects row 6, and the rest loads', async () => {
    const ids = ['u1', 'u2', 'u3', 'u4', 'u5', 'u6', 'u7'];
    const seconds = ids.map((_, i) => (i === 5 ? 400_000_000_000n : 1_795_161_600n));
    const start = makeVector(makeData({ type: new TimestampSecond('UTC'), length: ids.length, nullCount: 0, data: BigInt64Array.from(seconds) }));
    const { rejects, ids: loaded } = await load(await exportWith({ 'usage_records.arrow': tableToIPC(arrowUsage(ids, { start_time: start }), 'file') }));
    expect(rejects).toEqual([
      { file: 'usage_records.arrow', line: 6, problems: [{ column: 'start_time', value: '400000000000 s since 1970-01-01', message: TS_MESSAGE }] },
    ]);
    expect(loaded).toEqual(['u1', 'u2', 'u3', 'u4', 'u5', 'u7']);
  });
});

describe('values of the wrong shape are rejected', () => {
  test('a Parquet STRUCT and an Arrow Struct in an id column', async () => {
    const dir = await exportWith({});
    await usageParquet(path.join(dir, 'usage_records.parquet'), `{'p': project_id} AS project_id`);
    const parquet = await load(dir);
    expect(parquet.ids).toEqual([]);
    expect(parquet.rejects[0]!.problems).toEqual([{ column: 'project_id', value: "{'p': p_a1}", message: 'a nested value (STRUCT(p VARCHAR)) where a scalar was expected' }]);
    expect(parquet.rejects).toHaveLength(8);

    const ids = ['u1', 'u2'];
    const struct = makeVector(
      makeData({ type: new Struct([new Field('p', new Utf8())]), length: 2, nullCount: 0, children: [vectorFromArray(['p_3_1', 'p_3_2'], new Utf8()).data[0]!] }),
    );
    const arrow = await load(await exportWith({ 'usage_records.arrow': tableToIPC(arrowUsage(ids, { project_id: struct }), 'file') }));
    expect(arrow.ids).toEqual([]);
    expect(arrow.rejects.map((r) => [r.line, r.problems[0]!.column, r.problems[0]!.message])).toEqual([
      [1, 'project_id', 'a nested value (Struct<{p:Utf8}>) where a scalar was expected'],
      [2, 'project_id', 'a nested value (Struct<{p:Utf8}>) where a scalar was expected'],
    ]);
  });

  test('a JSON object naming a key twice is rejected, not read with its first value', async () => {
    const json = (await usageNdjson()).replace('"org_id":"org_b"', '"org_id":"org_b","org_id":"org_a"');
    const { rejects, ids } = await load(await exportWith({ 'usage_records.ndjson': json }));
    expect(rejects.map((r) => [r.line, r.problems[0]!.message])).toEqual([[3, 'a JSON object with a key given twice (which value counts is ambiguous)']]);
    expect(ids).not.toContain('ur_3');
  });

  test('a required id of only spaces is an invalid value, not a tenant', async () => {
    const dir = await exportWith({ 'usage_records.csv': (await usageCsv()).replace('ur_3,allocation,alloc_3,,org_b,', 'ur_3,allocation,alloc_3,,   ,') });
    const run = await auditExports({ exportsDir: dir });
    try {
      const rows = await run.db.all<{ entity_id: string; detail: string }>(`SELECT entity_id, detail FROM violations WHERE invariant_id = 'contract.invalid_value'`);
      expect(rows.map((r) => [r.entity_id, JSON.parse(r.detail).problems])).toEqual([
        ['ur_3', [{ column: 'org_id', value: '   ', problem: 'is blank (only whitespace) but required' }]],
      ]);
    } finally {
      run.db.close();
    }
  });
});

describe('clear outcomes instead of stack traces', () => {
  test('two legal 5e18 amounts overflowing a money total: the checks name it, no raw SQL error', async () => {
    const ledger = await readFile(path.join(CLEAN, 'ledger_entries.csv'), 'utf8');
    const big = (id: string) => `${id},org_a,u_a1,p_a1,usage_debit,debit,5000000000000000000,USD,ur_2,,,key:${id},,2026-11-20T07:02:00Z,corr-a2,trace-a2\n`;
    const dir = await exportWith({ 'usage_records.csv': await usageCsv() });
    await writeFile(path.join(dir, 'ledger_entries.csv'), ledger + big('le_big1') + big('le_big2'));
    const run = await auditExports({ exportsDir: dir });
    try {
      const errors = run.findings.invariants.filter((r) => r.error !== undefined);
      expect(errors.map((r) => r.id)).toEqual(['usage.debit_mismatch', 'ledger.duplicate_debit']);
      for (const r of errors) expect(r.error).toMatch(/money at stake for ur_2 is 10000000000000000000 minor units, beyond the 64-bit range/);
    } finally {
      run.db.close();
    }
  });

  test('a config file with a UTF-8 BOM is read', async () => {
    const file = path.join(await tempDir(), 'recon.config.json');
    await writeFile(file, '\uFEFF' + JSON.stringify({ thresholds: { billing_lag_minutes: 30 } }));
    expect((await loadConfig(file)).config.thresholds.billing_lag_minutes).toBe(30);
    await rm(file);
  });
});

const T0 = 1_795_161_600_000_000n; // 2026-11-20T08:00:00Z in microseconds

/** usage_records as an Arrow table: `ids.length` well-formed rows, with the given columns replaced. */
function arrowUsage(ids: string[], replace: Record<string, Vector> = {}): Table {
  const n = ids.length;
  const text = (v: string | null) => vectorFromArray(Array<string | null>(n).fill(v), new Utf8());
  const values: Record<string, string | null> = {
    usage_source: 'allocation', allocation_id: 'alloc_1', org_id: 'org_a', project_id: 'p_a1', requested_by_user_id: 'u_a1', currency: 'USD',
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
  return new Table(columns);
}
