import { describe, expect, test } from 'vitest';
import { TABLE_NAMES } from '../src/contract/tables.ts';
import { bigquery } from '../src/dialect/bigquery.ts';
import type { Dialect } from '../src/dialect/dialect.ts';
import { duckdb } from '../src/dialect/duckdb.ts';
import { parseExact } from '../src/json.ts';
import { CATALOG } from '../src/catalog/index.ts';
import type { Family } from '../src/catalog/types.ts';
import { effectiveLedgerQuery } from '../src/catalog/setup.ts';
import { auditOnce, fixture } from './helpers/audits.ts';
import { copyFixture, editFile } from './helpers/exports.ts';
import { useZetaSql } from './helpers/zetasql.ts';

const DIALECTS: readonly Dialect[] = [duckdb, bigquery];
const ALL_TABLES = new Set(TABLE_NAMES);

/** A clean export with a repeated key, invalid values, a key-less row and a row that cannot be typed. */
const contractDrift = await copyFixture();
await editFile(contractDrift, 'payment_sessions.csv', (text) =>
  text +
  [
    'ps_1,org_a,u_a1,stripe,cs_1,completed,10000,USD,le_3,2026-11-20T05:20:00Z,2026-11-20T05:30:00Z,corr-ps1,trace-ps1',
    'ps_90,org_a,u_a1,stripe,cs_90,lost,-5,usd,,2026-11-20T05:20:00Z,,corr-ps90,trace-ps90',
    ',org_a,u_a1,stripe,cs_91,open,100,USD,,2026-11-20T05:20:00Z,,,',
    'ps_92,org_a,u_a1,stripe,cs_92,open,ten,USD,,2026-11-20T05:20:00Z,,,',
  ].join('\n') +
  '\n',
);

/** Exports with violations of every contract check between them, and reversed credits. */
const EXPORTS = {
  payment_webhook_lost: fixture('payment_webhook_lost'),
  events_drift: fixture('events_drift'),
  duplicate_credit_after_retry: fixture('duplicate_credit_after_retry'),
  contract_drift: contractDrift,
};
type Export = keyof typeof EXPORTS;

const BILLING_EXPORTS: readonly Export[] = ['payment_webhook_lost', 'events_drift', 'duplicate_credit_after_retry', 'contract_drift'];
/**
 * The exports each family's checks are run on here, directly in ZetaSQL: the contract checks, on
 * a hand-made export of unreadable and invalid rows no committed fixture carries. Every family is
 * held to DuckDB through the engine itself, on every fixture, in bigquery-engine.test.ts.
 */
const EXPORTS_OF: Partial<Record<Family, readonly Export[]>> = { contract: BILLING_EXPORTS };

const zeta = useZetaSql();
const audits = auditOnce(Object.fromEntries(BILLING_EXPORTS.map((f) => [f, { exportsDir: EXPORTS[f] }])));

const render = (id: string, d: Dialect) => CATALOG.find((i) => i.id === id)!.sql({ tables: ALL_TABLES, dialect: d });

describe.each(CATALOG.map((i) => i.id))('%s', (id) => {
  test.each(DIALECTS.map((d) => d.name))('its %s rendering is pinned', async (name) => {
    await expect(render(id, DIALECTS.find((d) => d.name === name)!)).toMatchFileSnapshot(`./__renderings__/${id}.${name}.sql`);
  });

  test('its GoogleSQL passes ZetaSQL analysis against the contract tables', async () => {
    expect(await zeta.analyzeError(render(id, bigquery))).toBeUndefined();
  });

});

describe.each(CATALOG.filter((i) => EXPORTS_OF[i.family]).map((i) => i.id))('%s', (id) => {
  test('its GoogleSQL finds what DuckDB finds, with the same money and detail, on every fixture', async () => {
    let found = 0;
    for (const f of EXPORTS_OF[CATALOG.find((i) => i.id === id)!.family]!) {
      const db = audits.run(f).db;
      const ours = await db.all<{ entity_id: string; amount_minor: bigint | null; currency: string | null; detail: string }>(
        `SELECT entity_id, amount_minor, currency, detail::VARCHAR AS detail FROM violations WHERE invariant_id = $id ORDER BY entity_id`,
        { id },
      );
      const theirs = await zeta.evaluate(render(id, bigquery), db);
      expect([...new Set(theirs.map((r) => r.entity_id))].sort(), `${f}: entity ids`).toEqual(ours.map((r) => r.entity_id));
      for (const v of ours) {
        const same = theirs
          .filter((r) => r.entity_id === v.entity_id)
          .map((r) => ({ amount_minor: r.amount_minor ?? null, currency: r.currency ?? null, detail: parseExact(String(r.detail)) }));
        expect(same, `${f}: ${v.entity_id}`).toContainEqual({ amount_minor: v.amount_minor, currency: v.currency, detail: parseExact(v.detail) });
      }
      found += ours.length;
    }
    expect(found, 'the fixtures exercise the check').toBeGreaterThan(0);
  });
});

test('ZetaSQL rejects what BigQuery would: a DuckDB rendering and an unknown column', async () => {
  expect(await zeta.analyzeError(render('payments.completed_without_credit', duckdb))).toMatch(/list|Syntax error|not found/i);
  expect(await zeta.analyzeError('SELECT nope FROM payment_sessions')).toMatch(/Unrecognized name: nope/);
});

describe('dialect parts on their own', () => {
  test('the effective ledger entries read the same in GoogleSQL, through its anti-join', async () => {
    const sql = `SELECT ledger_entry_id FROM (${effectiveLedgerQuery(bigquery)}) ORDER BY ledger_entry_id`;
    expect(await zeta.analyzeError(sql)).toBeUndefined();
    const db = audits.run('duplicate_credit_after_retry').db;
    const ours = await db.all(`SELECT ledger_entry_id FROM effective_ledger_entries ORDER BY ledger_entry_id`);
    const all = await db.all(`SELECT ledger_entry_id FROM ledger_entries`);
    expect(ours.length, 'the fixture has reversed entries').toBeLessThan(all.length);
    expect(await zeta.evaluate(sql, db)).toEqual(ours);
  });

  test('ascending keys put NULLs last and trim strips spaces only, in both engines', async () => {
    // A NULL key (k = 0) sorts first in GoogleSQL unless told; a tab is not a space to DuckDB's trim.
    const query = (d: Dialect) => `WITH ${d.valuesCte('t', ['g', 'k', 'v'], [['a', 0, 'null key'], ['a', 2, 'two'], ['a', 1, 'one']])}
      SELECT g, ${d.firstBy('v', d.nullsLast('nullif(k, 0)'))} AS first_v,
             ${d.cappedList('v', `${d.nullsLast('nullif(k, 0)')}, v`, 2)} AS first_two,
             ${d.countIf(`${d.trimSpaces(`'  ' || v || ' '`)} = v`)} AS trimmed,
             ${d.countIf(`${d.trimSpaces(`'\t' || v`)} = v`)} AS tab_trimmed
      FROM t GROUP BY g`;
    expect(await zeta.analyzeError(query(bigquery))).toBeUndefined();
    const db = audits.run('events_drift').db;
    const ours = (await db.all(query(duckdb))).map((r) => ({ ...r, first_two: (r.first_two as { items: unknown[] }).items }));
    expect(ours).toEqual([{ g: 'a', first_v: 'one', first_two: ['one', 'two'], trimmed: 3n, tab_trimmed: 0n }]);
    expect(await zeta.evaluate(query(bigquery), db)).toEqual(ours);
  });

  test('instants read as the same ISO-8601 text in both engines, microseconds only when there are some', async () => {
    const instants = ['2026-11-20 10:00:00', '2026-11-20 10:00:00.5', '2026-11-20 10:00:00.000123', '1969-12-31 23:59:59.999999'];
    const query = (d: Dialect, type: string) =>
      `SELECT ${instants.map((t, i) => `${d.isoTimestamp(`${type} '${t}+00'`)} AS t${i}`).join(', ')}`;
    const ours = await audits.run('events_drift').db.all(query(duckdb, 'TIMESTAMPTZ'));
    expect(ours).toEqual([
      { t0: '2026-11-20T10:00:00Z', t1: '2026-11-20T10:00:00.500000Z', t2: '2026-11-20T10:00:00.000123Z', t3: '1969-12-31T23:59:59.999999Z' },
    ]);
    expect(await zeta.evaluate(query(bigquery, 'TIMESTAMP'), audits.run('events_drift').db)).toEqual(ours);
  });

  test('conditional aggregates count and sum the same in both engines', async () => {
    const query = (d: Dialect) => `SELECT org_id, ${d.countIf(`direction = 'credit'`)} AS credits,
        ${d.aggregateIf('sum', 'amount_minor', `direction = 'debit'`)} AS debits_minor
      FROM ledger_entries GROUP BY org_id ORDER BY org_id`;
    expect([query(duckdb), query(bigquery)]).toMatchInlineSnapshot(`
      [
        "SELECT org_id, count(*) FILTER (WHERE direction = 'credit') AS credits,
              sum(amount_minor) FILTER (WHERE direction = 'debit') AS debits_minor
            FROM ledger_entries GROUP BY org_id ORDER BY org_id",
        "SELECT org_id, COUNTIF(direction = 'credit') AS credits,
              sum(IF(direction = 'debit', amount_minor, NULL)) AS debits_minor
            FROM ledger_entries GROUP BY org_id ORDER BY org_id",
      ]
    `);
    expect(await zeta.analyzeError(query(bigquery))).toBeUndefined();
    const db = audits.run('duplicate_credit_after_retry').db;
    const ours = await db.all(query(duckdb));
    expect(ours.length, 'several orgs').toBeGreaterThan(1);
    expect(await zeta.evaluate(query(bigquery), db)).toEqual(ours);
  });
});
