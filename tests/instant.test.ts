import { listValue } from '@duckdb/node-api';
import { expect, test } from 'vitest';
import { parseConfig } from '../src/config.ts';
import { parseInstant } from '../src/contract/instant.ts';
import { REJECTS_DDL, REJECTS_TABLE } from '../src/contract/rejects.ts';
import type { TableName, TableSpec } from '../src/contract/tables.ts';
import { Db } from '../src/db.ts';
import { typeStagedFile } from '../src/sources/typing.ts';
import { isoSql } from '../src/sql.ts';

const TEXTS = [
  '2026-11-20T12:00:00Z', '2026-11-20 12:00:00', '2026-11-20 12:00:00 UTC', '2026-11-20 12:00:00.25 UTC',
  '2026-11-20T12:00:00.1234567Z', '2026-11-20T12:00:00.123456789+01:00', '2026-11-20T12:00:00+0530',
  '2026-11-20T12:00:00+18', '2026-11-20T12:00:00-18:00', '2026-12-31T23:30:00-01:00', '2026-11-20T12:00:00.000Z',
  '2026-11-20T24:00:00Z', '2024-02-29T00:00:00Z', '2000-02-29T00:00:00Z',
  // refused by the loaders, so by the flags too
  '2026-11-20', '2026-11-20T12:00Z', '2026-11-20T12:00:00 +05', '2026-11-20T12:00:00z', '2026-11-20t12:00:00Z',
  '2026-11-20T12:00:00+25:00', '2026-11-20T12:00:00+05:99', '2026-02-29T00:00:00Z', '1900-02-29T00:00:00Z',
  '2026-04-31T00:00:00Z', '2026-13-01T00:00:00Z', '2026-11-20T24:00:01Z', '2026-11-20T23:59:60Z', 'tomorrow',
];

/** What the loaders make of each text in a timestamp column: the instant, or null when the row is rejected. */
async function loaderReading(texts: readonly string[]): Promise<Array<string | null>> {
  const db = await Db.open();
  try {
    const spec = { name: 't' as TableName, key: null, required: false, columns: [{ name: 'seen_at', type: 'timestamp' }] } satisfies TableSpec;
    await db.run(REJECTS_DDL);
    await db.run(`CREATE TABLE t (seen_at TIMESTAMPTZ, __file VARCHAR, __line BIGINT)`);
    await db.run(`CREATE TABLE staged AS SELECT unnest($v::VARCHAR[]) AS seen_at, 'x.csv' AS __file, generate_subscripts($v::VARCHAR[], 1) AS __line`, {
      v: listValue([...texts]),
    });
    await typeStagedFile(db, 'staged', spec, parseConfig({}).config, 'x.csv', true);
    const rows = await db.all<{ line: bigint; at: string }>(`SELECT __line AS line, ${isoSql('seen_at')} AS at FROM t`);
    const rejected = await db.all<{ line: bigint }>(`SELECT line FROM ${REJECTS_TABLE}`);
    expect(rows.length + rejected.length).toBe(texts.length);
    const read = new Map(rows.map((r) => [Number(r.line), r.at]));
    return texts.map((_, i) => read.get(i + 1) ?? null);
  } finally {
    db.close();
  }
}

const flagReading = (text: string) => {
  try {
    return parseInstant(text, '--as-of');
  } catch {
    return null;
  }
};

test('an instant flag is read exactly as the loaders read the same text in an export', async () => {
  const loaders = await loaderReading(TEXTS);
  expect(TEXTS.map(flagReading)).toEqual(loaders);
  // The list holds both kinds, so the comparison is not vacuous.
  expect(loaders.filter((t) => t === null).length).toBe(14);
});

test('a bare date is refused with the flag named', () => {
  expect(() => parseInstant('2026-11-20', '--since')).toThrow('--since: "2026-11-20" is not an ISO-8601 instant (e.g. 2026-11-20T12:00:00Z)');
  expect(parseInstant('2026-11-20 12:00:00.5 UTC', '--as-of')).toBe('2026-11-20T12:00:00.500000Z');
});
