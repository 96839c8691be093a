import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, expect, vi } from 'vitest';
import { DUCKDB_TYPE, TABLE_NAMES, TABLES, quoteIdent } from '../src/contract/tables.ts';
import { Db } from '../src/db.ts';
import { generateCommand } from '../src/cli/generate.ts';
import { DRIFT_CATALOG, DRIFT_KINDS, generateExports, type ExpectedViolation } from '../src/generate/index.ts';

const tempDir = (): Promise<string> => mkdtemp(join(tmpdir(), 'recon-generate-'));

async function readAll(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const name of (await readdir(dir)).sort()) files.set(name, await readFile(join(dir, name)));
  return files;
}

async function csvLines(file: string): Promise<string[]> {
  return (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');
}

test('the same seed gives byte-identical files, another seed different ones', async () => {
  const opts = { seed: 7, usageRows: 400, tenants: 4, inject: { duplicate_debit: 1, lifecycle: 2, balance_projection: 1 } };
  const [a, b, c] = [await tempDir(), await tempDir(), await tempDir()];
  await generateExports({ ...opts, outDir: a });
  await generateExports({ ...opts, outDir: b });
  await generateExports({ ...opts, seed: 8, outDir: c });

  const [filesA, filesB, filesC] = [await readAll(a), await readAll(b), await readAll(c)];
  expect([...filesA.keys()]).toEqual([...TABLE_NAMES.map((t) => `${t}.csv`), 'expected.json'].sort());
  for (const [name, bytes] of filesA) expect(bytes.equals(filesB.get(name)!), name).toBe(true);
  expect(filesA.get('usage_records.csv')!.equals(filesC.get('usage_records.csv')!)).toBe(false);
  expect(filesA.get('expected.json')!.equals(filesC.get('expected.json')!)).toBe(false);
});

test('parquet and ndjson exports are deterministic too', async () => {
  for (const format of ['parquet', 'ndjson'] as const) {
    const [a, b] = [await tempDir(), await tempDir()];
    await generateExports({ outDir: a, seed: 3, usageRows: 300, format, inject: { unbilled_closed: 1 } });
    await generateExports({ outDir: b, seed: 3, usageRows: 300, format, inject: { unbilled_closed: 1 } });
    const [filesA, filesB] = [await readAll(a), await readAll(b)];
    expect(filesA.has(`usage_records.${format}`)).toBe(true);
    for (const [name, bytes] of filesA) expect(bytes.equals(filesB.get(name)!), `${format}: ${name}`).toBe(true);
  }
});

test('a 1000-row world has exactly 1000 usage rows, every table, and canonical headers', async () => {
  const dir = await tempDir();
  const result = await generateExports({ outDir: dir, seed: 11, usageRows: 1000, tenants: 5 });

  expect(result.rows.usage_records).toBe(1000);
  for (const table of TABLE_NAMES) {
    const lines = await csvLines(join(dir, `${table}.csv`));
    expect(lines[0], table).toBe(TABLES[table].columns.map((c) => c.name).join(','));
    expect(lines.length - 1, table).toBe(result.rows[table]);
    expect(result.rows[table], table).toBeGreaterThan(0);
  }
  // one balance row per (org, user, currency)
  const balances = (await csvLines(join(dir, 'balances.csv'))).slice(1).map((l) => l.split(',').slice(0, 3).join('|'));
  expect(new Set(balances).size).toBe(balances.length);
});

test('a clean world expects no violation', async () => {
  const dir = await tempDir();
  const result = await generateExports({ outDir: dir, seed: 2, usageRows: 500 });
  expect(result.expected).toEqual([]);
  expect(JSON.parse(await readFile(join(dir, 'expected.json'), 'utf8'))).toEqual([]);
});

test('expected.json lists exactly what each injection declares, sorted', async () => {
  const dir = await tempDir();
  const inject = Object.fromEntries(DRIFT_KINDS.map((k) => [k, 2]));
  const result = await generateExports({ outDir: dir, seed: 5, usageRows: 1500, tenants: 6, inject });
  const written = JSON.parse(await readFile(join(dir, 'expected.json'), 'utf8')) as ExpectedViolation[];

  expect(written).toEqual(result.expected);
  const key = (e: ExpectedViolation) => `${e.invariant_id}\u0000${e.entity_id}`;
  expect(written.map(key)).toEqual(written.map(key).sort());
  expect(new Set(written.map(key)).size).toBe(written.length);

  for (const kind of DRIFT_KINDS) {
    const mine = written.filter((e) => e.kind === kind);
    const [primary] = DRIFT_CATALOG[kind].trips;
    // each injection trips its kind's own invariant for at least one entity, and nothing undeclared
    expect(mine.filter((e) => e.invariant_id === primary).length, kind).toBeGreaterThanOrEqual(2);
    for (const e of mine) expect(DRIFT_CATALOG[kind].trips, `${kind} → ${e.invariant_id}`).toContain(e.invariant_id);
  }
  // the entity ids follow CONTRACT.md §4
  expect(written.find((e) => e.kind === 'balance_projection')?.entity_id).toMatch(/^org_\d+\|u_\d+_\d+\|[A-Z]{3}$/);
  expect(written.find((e) => e.kind === 'missing_open_usage')?.entity_id).toMatch(/^alloc_\d+$/);
  expect(written.find((e) => e.kind === 'app_missing_usage')?.entity_id).toMatch(/^app_\d+$/);
  expect(written.find((e) => e.kind === 'unbilled_closed')?.entity_id).toMatch(/^ur_\d+$/);
});

test('a duplicated debit records every invariant it trips', async () => {
  const dir = await tempDir();
  const result = await generateExports({ outDir: dir, seed: 4, usageRows: 400, inject: { duplicate_debit: 4 } });
  const entities = (invariant: string) => result.expected.filter((e) => e.invariant_id === invariant).map((e) => e.entity_id);
  const debited = entities('ledger.duplicate_debit');
  expect(debited).toHaveLength(4);
  // the sum of effective debits no longer equals the accrued cost of the same usage rows
  expect(entities('usage.debit_mismatch')).toEqual(debited);
  // a retry that reuses the idempotency key also trips the key check, for both entries
  const keyed = entities('ledger.duplicate_idempotency_key');
  expect(keyed.length).toBeGreaterThan(0);
  expect(keyed.length % 2).toBe(0);
  expect(result.expected).toHaveLength(8 + keyed.length);
});

test('CSV values type as the contract says when DuckDB reads them back', async () => {
  const dir = await tempDir();
  const asOf = '2026-03-01T08:30:00Z';
  await generateExports({ outDir: dir, seed: 9, usageRows: 600, asOf, inject: { billing_lag: 1 } });
  const db = await Db.open();
  try {
    const described = await db.all<{ column_name: string; column_type: string }>(
      `DESCRIBE SELECT * FROM read_csv($file, header = true)`,
      { file: join(dir, 'usage_records.csv') },
    );
    const types = Object.fromEntries(described.map((d) => [d.column_name, d.column_type]));
    expect(types['accrued_cost_minor']).toBe('BIGINT');
    expect(types['start_time']).toBe('TIMESTAMP WITH TIME ZONE');
    expect(types['last_billed_at']).toBe('TIMESTAMP WITH TIME ZONE');
    expect(types['control_plane_component']).toBe('BOOLEAN');

    // every non-empty value casts, with no silent NULLs, and the latest timestamp is as_of
    for (const table of TABLE_NAMES) {
      const checks = TABLES[table].columns
        .filter((c) => c.type !== 'string')
        .map((c) => `count(*) FILTER (WHERE ${quoteIdent(c.name)} IS NOT NULL AND TRY_CAST(${quoteIdent(c.name)} AS ${DUCKDB_TYPE[c.type]}) IS NULL)`);
      const row = await db.one<{ bad: bigint }>(
        `SELECT ${checks.join(' + ')} AS bad FROM read_csv($file, header = true, all_varchar = true)`,
        { file: join(dir, `${table}.csv`) },
      );
      expect(row?.bad, table).toBe(0n);
    }
    const timestamps = TABLE_NAMES.flatMap((t) =>
      TABLES[t].columns
        .filter((c) => c.type === 'timestamp')
        .map((c) => `SELECT max(${quoteIdent(c.name)}::TIMESTAMPTZ) AS t FROM read_csv($${t}, header = true, all_varchar = true)`),
    );
    const files = Object.fromEntries(TABLE_NAMES.map((t) => [t, join(dir, `${t}.csv`)]));
    const latest = await db.one<{ t: string }>(
      `SELECT strftime(max(t), '%Y-%m-%dT%H:%M:%SZ') AS t FROM (${timestamps.join(' UNION ALL ')})`,
      files,
    );
    expect(latest?.t).toBe(asOf);
    const text = await readFile(join(dir, 'usage_records.csv'), 'utf8');
    expect(text).toMatch(/,2026-\d\d-\d\dT\d\d:\d\d:\d\dZ,/);
  } finally {
    db.close();
  }
});

test('a world too small for the drift asked for is refused, not silently short', async () => {
  await expect(generateExports({ outDir: await tempDir(), usageRows: 60, inject: { app_orphan_open: 50 } })).rejects.toThrow(
    /cannot inject 50 × app_orphan_open/,
  );
  await expect(generateExports({ outDir: await tempDir(), inject: { no_such_kind: 1 } as never })).rejects.toThrow(/unknown drift kind/);
});

test('recon generate: writes and says where; bad arguments exit 2 with a message', async () => {
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const dir = await tempDir();
    expect(await generateCommand(['--out', dir, '--seed', '3', '--usage-rows', '200', '--inject', 'lifecycle=2', '--inject', 'billing_lag'])).toBe(0);
    expect(String(out.mock.calls.at(-1)?.[0])).toContain(join(dir, 'expected.json'));
    const expected = JSON.parse(await readFile(join(dir, 'expected.json'), 'utf8')) as ExpectedViolation[];
    expect(expected.map((e) => e.kind).sort()).toEqual(['billing_lag', 'lifecycle', 'lifecycle']);

    expect(await generateCommand(['--help'])).toBe(0);
    expect(String(out.mock.calls.at(-1)?.[0])).toContain('missing_open_usage');

    const cases: Array<[string[], RegExp]> = [
      [['--seed', '1'], /--out DIR is required/],
      [['--out', dir, '--seed', 'x'], /--seed must be an integer/],
      [['--out', dir, '--format', 'xlsx'], /--format must be one of csv, parquet, ndjson/],
      [['--out', dir, '--inject', 'nonsense=1'], /unknown drift kind "nonsense"/],
      [['--out', dir, '--inject', 'lifecycle=-1'], /must not be negative/],
      [['--out', dir, '--as-of', 'yesterday'], /as-of must be an ISO-8601 instant/],
      [['--out', dir, '--bogus'], /Unknown option '--bogus'/],
    ];
    for (const [argv, message] of cases) {
      err.mockClear();
      expect(await generateCommand(argv), argv.join(' ')).toBe(2);
      expect(String(err.mock.calls[0]?.[0]), argv.join(' ')).toMatch(message);
    }
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
});
