import { describe, expect, test } from 'vitest';
import type { AuditOptions } from '../src/audit.ts';
import { ALL_CHECKS } from '../src/catalog/index.ts';
import { auditOnce } from './helpers/audits.ts';
import { copyFixture, editFile } from './helpers/exports.ts';

/**
 * Edge cases of the catalog, each on a copy of fixtures/clean with a few rows changed: rows
 * exported twice (one id, one row: no join, sum, amount or list may count a copy), empty keys
 * and empty amounts, currencies and types (NULL-safe comparisons; an entity_id is never null),
 * repeats in another currency, and provisioning events that imply no status.
 */

type Edit = (csv: string) => string;

/** Appends rows to a CSV export. */
const append =
  (...rows: string[]): Edit =>
  (csv) =>
    `${csv.trimEnd()}\n${rows.join('\n')}\n`;

/** Replaces one exact piece of a CSV export; fails loudly if the fixture no longer has it. */
const replace =
  (from: string, to: string): Edit =>
  (csv) => {
    if (!csv.includes(from)) throw new Error(`fixtures/clean has no ${JSON.stringify(from)}`);
    return csv.replace(from, to);
  };

/** The data row of `id` (its first column), as it stands. */
function rowOf(csv: string, id: string): string {
  const row = csv.split('\n').find((l) => l.startsWith(`${id},`));
  if (!row) throw new Error(`fixtures/clean has no row ${id}`);
  return row;
}

/** Exports the row of `id` a second time, at the end of the file. */
const repeatRow =
  (id: string, change: Edit = (r) => r): Edit =>
  (csv) =>
    append(change(rowOf(csv, id)))(csv);

/** Empties the first column (the key) of every data row. */
const blankKeys: Edit = (csv) =>
  csv
    .split('\n')
    .map((line, i) => (i === 0 || line === '' ? line : line.replace(/^[^,]*/, '')))
    .join('\n');

/** A copy of fixtures/clean with the given files edited. */
async function cleanWith(edits: Record<string, Edit>): Promise<string> {
  const dir = await copyFixture(undefined, 'recon-edge-');
  for (const [table, edit] of Object.entries(edits)) await editFile(dir, `${table}.csv`, edit);
  return dir;
}

// clean's le_3: the payment credit ps_1 names (10000 USD).
const LE_3 = 'le_3,org_a,u_a1,,payment_credit,credit,10000,USD,,ps_1,,credit:ps_1,,2026-11-20T05:30:00Z,corr-ps1,trace-ps1';

const EXPORTS = {
  // 1. Rows exported twice.
  ledger_row_twice: await cleanWith({ ledger_entries: repeatRow('le_3') }),
  named_credit_twice_differing: await cleanWith({
    // The first le_3 row matches ps_1; a second, different copy must not make it mismatch.
    ledger_entries: append(LE_3.replace(',10000,USD,', ',9000,USD,')),
  }),
  debit_row_twice: await cleanWith({ ledger_entries: repeatRow('le_1') }),
  usage_row_twice_foreign_debit: await cleanWith({
    usage_records: repeatRow('ur_2'),
    ledger_entries: append('le_9,org_a,u_a1,p_a1,usage_debit,debit,3200,EUR,ur_2,,,debit:ur_2:eur,,2026-11-20T09:00:00Z,corr-9,'),
  }),
  open_row_twice: await cleanWith({ usage_records: repeatRow('ur_6') }),
  usage_row_twice_other_owner: await cleanWith({
    // The second copy of ur_7 names another user; le_2 bills the owner of the first.
    usage_records: repeatRow('ur_7', (r) => r.replace(',org_b,p_b1,u_b1,', ',org_b,p_b1,u_b9,')),
  }),
  allocation_twice_differing: await cleanWith({
    // alloc_1 is active; a second copy says released. Its first row decides.
    allocations: repeatRow('alloc_1', (r) => r.replace(',active,', ',released,').replace(',2026-11-20T08:05:00Z,,', ',2026-11-20T08:05:00Z,2026-11-20T08:30:00Z,')),
  }),
  closed_row_twice: await cleanWith({
    allocations: append('alloc_9,org_a,p_a1,u_a1,active,A100,1,2026-11-20T08:00:00Z,2026-11-20T08:05:00Z,,2026-11-20T08:05:00Z,corr-a9,'),
    usage_records: append(
      'ur_9,allocation,alloc_9,,org_a,p_a1,u_a1,,,,,,2026-11-20T08:05:00Z,2026-11-20T09:00:00Z,2026-11-20T09:00:00Z,0,USD,corr-a9,',
      'ur_9,allocation,alloc_9,,org_a,p_a1,u_a1,,,,,,2026-11-20T08:05:00Z,2026-11-20T09:00:00Z,2026-11-20T09:00:00Z,0,USD,corr-a9,',
    ),
  }),
  app_usage_twice: await cleanWith({
    // app_2 runs again but its only usage row, exported twice, is closed.
    app_instances: replace(',shared,project,kubernetes,stopped,', ',shared,project,kubernetes,running,'),
    usage_records: repeatRow('ur_7'),
  }),
  // 2. A usage debit without currency, or without amount.
  debit_null_currency: await cleanWith({
    ledger_entries: append('le_9,org_a,u_a1,p_a1,usage_debit,debit,50,,ur_2,,,debit:ur_2:x,,2026-11-20T09:00:00Z,corr-9,'),
  }),
  debit_null_amount: await cleanWith({
    ledger_entries: append('le_9,org_a,u_a1,p_a1,usage_debit,debit,,USD,ur_2,,,debit:ur_2:x,,2026-11-20T09:00:00Z,corr-9,'),
  }),
  // 3. The credit a completed session names has no currency, amount or type.
  credit_null_currency: await cleanWith({ ledger_entries: replace(LE_3, LE_3.replace(',10000,USD,', ',10000,,')) }),
  credit_null_amount: await cleanWith({ ledger_entries: replace(LE_3, LE_3.replace(',10000,USD,', ',,USD,')) }),
  credit_null_type: await cleanWith({ ledger_entries: replace(LE_3, LE_3.replace(',payment_credit,', ',,')) }),
  // 4. The debit billing ur_2 has no id.
  debit_null_id: await cleanWith({ ledger_entries: replace('le_1,org_a,u_a1,', ',org_a,u_a1,') }),
  // 5. Rows without keys.
  keyless_rows: await cleanWith({
    allocations: append(',org_a,p_a1,u_a1,active,A100,1,2026-11-20T08:00:00Z,2026-11-20T08:05:00Z,,,corr-x,'),
    app_instances: append(',org_a,p_a1,ray,dedicated,instance,ray,running,2026-11-20T10:00:00Z,,corr-x,'),
    usage_records: append(
      // line 10: closed with a cost, never debited; line 11: ends before it starts
      ',allocation,alloc_2,,org_a,p_a1,u_a1,,,,,,2026-11-20T06:10:00Z,2026-11-20T06:20:00Z,2026-11-20T06:20:00Z,40,USD,corr-x,',
      ',allocation,alloc_2,,org_a,p_a1,u_a1,,,,,,2026-11-20T06:30:00Z,2026-11-20T06:20:00Z,2026-11-20T06:20:00Z,0,USD,corr-x,',
      // line 12: open on released alloc_2, from before its activation, never billed
      ',allocation,alloc_2,,org_a,p_a1,u_a1,,,,,,2026-11-20T05:00:00Z,,,0,USD,corr-x,',
      // line 13: a second open row on alloc_3
      ',allocation,alloc_3,,org_b,p_b1,u_b1,,,,,,2026-11-20T11:00:00Z,,2026-11-20T11:45:00Z,0,EUR,corr-x,',
      // line 14: app_runtime without instance; line 15: open on stopped app_2, misclassified, wrong mode
      ',app_runtime,,,org_a,p_a1,u_a1,worker,false,dedicated,instance,ray,2026-11-20T10:00:00Z,2026-11-20T10:30:00Z,2026-11-20T10:30:00Z,0,USD,corr-x,',
      ',app_runtime,,app_2,org_b,p_b1,u_b1,head,false,dedicated,project,kubernetes,2026-11-20T11:00:00Z,,2026-11-20T11:45:00Z,0,EUR,corr-x,',
    ),
    ledger_entries: append(
      // line 10: unaudited adjustment; line 11: debit of ur_7 charged to org_a; line 12: dangling; line 13: reuses debit:ur_2
      ',org_a,u_a1,p_a1,adjustment_credit,credit,5,USD,,,,,,2026-11-20T09:00:00Z,,',
      ',org_a,u_a1,p_a1,usage_debit,debit,250,EUR,ur_7,,,,,2026-11-20T09:00:00Z,corr-x,',
      ',org_a,u_a1,p_a1,usage_debit,debit,7,USD,ur_missing,,,,,2026-11-20T09:00:00Z,corr-x,',
      ',org_a,u_a1,p_a1,promo_credit,credit,1,USD,,,,debit:ur_2,,2026-11-20T09:00:00Z,corr-x,',
    ),
    payment_sessions: append(
      ',org_a,u_a1,stripe,cs_9,failed_reconcile,700,USD,,2026-11-20T05:20:00Z,,corr-x,',
      ',org_a,u_a1,stripe,cs_10,completed,800,USD,,2026-11-20T05:20:00Z,2026-11-20T05:30:00Z,corr-x,',
    ),
    events: append(',provisioning.active,2026-11-20T11:00:00Z,alloc_6,,,corr-a6,'),
  }),
  all_keys_blank: await cleanWith({
    allocations: blankKeys,
    app_instances: blankKeys,
    usage_records: blankKeys,
    ledger_entries: blankKeys,
    payment_sessions: blankKeys,
    events: blankKeys,
  }),
  // 6. A repeated debit in another currency than the first.
  repeat_other_currency: await cleanWith({
    ledger_entries: append('le_9,org_a,u_a1,p_a1,usage_debit,debit,3200,EUR,ur_2,,,debit:ur_2:eur,,2026-11-20T09:00:00Z,corr-9,'),
  }),
  repeats_in_several_currencies: await cleanWith({
    ledger_entries: append(
      'le_9,org_a,u_a1,p_a1,usage_debit,debit,500,GBP,ur_2,,,debit:ur_2:gbp,,2026-11-20T09:00:00Z,corr-9,',
      'le_10,org_a,u_a1,p_a1,usage_debit,debit,3000,EUR,ur_2,,,debit:ur_2:eur,,2026-11-20T09:01:00Z,corr-10,',
      'le_11,org_a,u_a1,p_a1,usage_debit,debit,3000,CHF,ur_2,,,debit:ur_2:chf,,2026-11-20T09:02:00Z,corr-11,',
    ),
  }),
  // 7. A later provisioning event that implies no status.
  later_event_of_other_type: await cleanWith({
    events: append(
      // alloc_1 (active): releasing, then a heartbeat: the heartbeat is the latest event.
      'ev_11,provisioning.releasing,2026-11-20T09:00:00Z,alloc_1,,,corr-a1,',
      'ev_12,provisioning.heartbeat,2026-11-20T09:30:00Z,alloc_1,,,corr-a1,',
      // alloc_6 (pending): a heartbeat, then active: active is the latest event.
      'ev_13,provisioning.heartbeat,2026-11-20T10:00:00Z,alloc_6,,,corr-a6,',
      'ev_14,provisioning.active,2026-11-20T11:00:00Z,alloc_6,,,corr-a6,',
      // alloc_3 (releasing): releasing.completed and a heartbeat at one instant: the event implying a status wins the tie.
      'ev_15,provisioning.releasing.completed,2026-11-20T11:30:00Z,alloc_3,,,corr-b3,',
      'ev_16,provisioning.heartbeat,2026-11-20T11:30:00Z,alloc_3,,,corr-b3,',
    ),
  }),
  failed_after_active: await cleanWith({
    allocations: replace('alloc_1,org_a,p_a1,u_a1,active,', 'alloc_1,org_a,p_a1,u_a1,failed,'),
    events: append('ev_11,provisioning.failed,2026-11-20T08:10:00Z,alloc_1,,,corr-a1,'),
  }),
};

type Name = keyof typeof EXPORTS;
const { run, result, violations, entityIds, byEntity } = auditOnce(
  Object.fromEntries(Object.entries(EXPORTS).map(([name, exportsDir]) => [name, { exportsDir } satisfies AuditOptions])),
);

/** The money of each violation of one invariant: amounts stay bigint. */
async function money(name: Name, id: string): Promise<Array<[string, bigint | null, string | null]>> {
  return (await violations(name, id)).map((v) => [v.entity_id, v.amount_minor, v.currency]);
}

const problems = (detail: unknown) => (detail as { problems: string[] }).problems;

describe('1. a row exported twice counts once in every join, sum, amount and list', () => {
  test('a ledger row exported twice is one entry: no duplicate credit, no reused key, no balance drift', async () => {
    expect(await entityIds('ledger_row_twice', 'contract.duplicate_key')).toEqual(['le_3']);
    expect(await violations('ledger_row_twice', 'ledger.duplicate_credit')).toEqual([]);
    expect(await violations('ledger_row_twice', 'ledger.duplicate_idempotency_key')).toEqual([]);
    expect(await violations('ledger_row_twice', 'ledger.balance_projection')).toEqual([]);
    expect(await violations('ledger_row_twice', 'payments.completed_without_credit')).toEqual([]);
    expect(await violations('ledger_row_twice', 'events.payment_event_mismatch')).toEqual([]);
  });

  test('the credit a completed session names is judged by its first row, not by a differing copy', async () => {
    expect(await entityIds('named_credit_twice_differing', 'contract.duplicate_key')).toEqual(['le_3']);
    expect(await violations('named_credit_twice_differing', 'payments.completed_without_credit')).toEqual([]);
  });

  test('a debit row exported twice is one debit: no duplicate debit, no over-charge', async () => {
    expect(await violations('debit_row_twice', 'ledger.duplicate_debit')).toEqual([]);
    expect(await violations('debit_row_twice', 'usage.debit_mismatch')).toEqual([]);
    expect(await violations('debit_row_twice', 'ledger.duplicate_idempotency_key')).toEqual([]);
  });

  test('a usage row exported twice lists each currency of its debits once', async () => {
    expect(await money('usage_row_twice_foreign_debit', 'usage.debit_mismatch')).toEqual([['ur_2', 3200n, 'EUR']]);
    const ur2 = (await byEntity('usage_row_twice_foreign_debit', 'usage.debit_mismatch')).get('ur_2');
    expect(ur2?.detail).toEqual({
      accrued_cost_minor: 3200,
      currency: 'USD',
      debited_minor: 3200,
      difference_minor: 0,
      by_currency: [
        { currency: 'USD', expected_minor: 3200, debited_minor: 3200, ledger_entry_ids: ['le_1'] },
        { currency: 'EUR', expected_minor: 0, debited_minor: 3200, ledger_entry_ids: ['le_9'] },
      ],
    });
  });

  test('an open row exported twice is one meter, not a duplicate open row', async () => {
    expect(await entityIds('open_row_twice', 'contract.duplicate_key')).toEqual(['ur_6']);
    expect(await violations('open_row_twice', 'usage.duplicate_open')).toEqual([]);
  });

  test("a debit is checked against its usage record's first row, not a differing copy", async () => {
    expect(await violations('usage_row_twice_other_owner', 'ledger.debit_wrong_account')).toEqual([]);
  });

  test("usage is checked against its allocation's first row, not a differing copy", async () => {
    expect(await entityIds('allocation_twice_differing', 'contract.duplicate_key')).toEqual(['alloc_1']);
    expect(await violations('allocation_twice_differing', 'usage.orphan_open')).toEqual([]);
    expect(await violations('allocation_twice_differing', 'usage.outside_allocation_window')).toEqual([]);
  });

  test('a usage row exported twice is counted once in the details of missing usage', async () => {
    expect((await byEntity('closed_row_twice', 'usage.missing_open')).get('alloc_9')?.detail).toMatchObject({
      open_usage_rows: 0,
      closed_usage_rows: 1,
      last_usage_end_time: '2026-11-20T09:00:00Z',
    });
    expect((await byEntity('app_usage_twice', 'app_runtime.missing_usage')).get('app_2')?.detail).toMatchObject({
      usage_rows: 1,
      open_usage_rows: 0,
    });
  });
});

describe('2. usage.debit_mismatch: a debit without currency or amount', () => {
  test('a debit without currency is an extra charge in no currency', async () => {
    expect(await money('debit_null_currency', 'usage.debit_mismatch')).toEqual([['ur_2', 50n, null]]);
    expect((await byEntity('debit_null_currency', 'usage.debit_mismatch')).get('ur_2')?.detail).toMatchObject({
      debited_minor: 3200,
      difference_minor: 0,
      by_currency: [
        { currency: 'USD', expected_minor: 3200, debited_minor: 3200, ledger_entry_ids: ['le_1'] },
        { currency: null, expected_minor: 0, debited_minor: 50, ledger_entry_ids: ['le_9'] },
      ],
    });
  });

  test('a debit without amount makes the debited total unknown, so the record is reported without money', async () => {
    expect(await money('debit_null_amount', 'usage.debit_mismatch')).toEqual([['ur_2', null, null]]);
    expect((await byEntity('debit_null_amount', 'usage.debit_mismatch')).get('ur_2')?.detail).toEqual({
      accrued_cost_minor: 3200,
      currency: 'USD',
      debited_minor: null,
      difference_minor: null,
      by_currency: [{ currency: 'USD', expected_minor: 3200, debited_minor: null, ledger_entry_ids: ['le_1', 'le_9'] }],
    });
  });
});

describe('3. payments.completed_without_credit: the named credit has no currency, amount or type', () => {
  test.each([
    ['credit_null_currency', 'the entry has no currency'],
    ['credit_null_amount', 'the entry has no amount'],
    ['credit_null_type', 'the entry has no entry_type, so it is not a payment_credit'],
  ] as const)('%s: ps_1 is reported, saying "%s"', async (name, problem) => {
    const got = await violations(name, 'payments.completed_without_credit');
    expect(got.map((v) => [v.entity_id, v.amount_minor, v.currency, problems(v.detail)])).toEqual([['ps_1', 10000n, 'USD', [problem]]]);
  });
});

describe('4. usage.unbilled_closed: a debit without id still bills its usage', () => {
  test('ur_2 is billed by its id-less debit', async () => {
    expect(await violations('debit_null_id', 'usage.unbilled_closed')).toEqual([]);
    expect(await violations('debit_null_id', 'usage.debit_mismatch')).toEqual([]);
  });
});

describe('5. a row without key is reported by its location, never with a null entity_id', () => {
  test('every invariant runs on an export of key-less rows, and every violation names its entity', async () => {
    for (const name of ['keyless_rows', 'all_keys_blank'] as const) {
      expect(run(name).findings.invariants.filter((r) => r.error !== undefined)).toEqual([]);
      expect(run(name).findings.invariants.map((r) => r.id)).toEqual(ALL_CHECKS.map((i) => i.id));
      const nulls = await run(name).db.all(`SELECT invariant_id FROM violations WHERE entity_id IS NULL`);
      expect(nulls).toEqual([]);
    }
  });

  test('each key-less offending row is its own entity, named table:file:line', async () => {
    const located = async (id: string) => (await entityIds('keyless_rows', id)).filter((e) => /^[a-z_]+:[^:]+:\d+$/.test(e));
    expect(await located('usage.missing_open')).toEqual(['allocations:allocations.csv:8']);
    expect(await located('usage.unbilled_closed')).toEqual(['usage_records:usage_records.csv:10']);
    expect(await located('usage.lifecycle')).toEqual(['usage_records:usage_records.csv:11']);
    expect(await located('usage.orphan_open')).toEqual(['usage_records:usage_records.csv:12']);
    expect(await located('usage.billing_lag')).toEqual(['usage_records:usage_records.csv:12']);
    expect(await located('usage.outside_allocation_window')).toEqual(['usage_records:usage_records.csv:12']);
    expect(await located('usage.duplicate_open')).toEqual(['usage_records:usage_records.csv:13']);
    expect(await located('app_runtime.source_attribution')).toEqual(['usage_records:usage_records.csv:14']);
    expect(await located('app_runtime.orphan_open')).toEqual(['usage_records:usage_records.csv:15']);
    expect(await located('app_runtime.control_plane_classification')).toEqual(['usage_records:usage_records.csv:15']);
    expect(await located('app_runtime.anchor_mismatch')).toEqual(['usage_records:usage_records.csv:15']);
    expect(await located('app_runtime.missing_usage')).toEqual(['app_instances:app_instances.csv:5']);
    expect(await located('ledger.unaudited_adjustment')).toEqual(['ledger_entries:ledger_entries.csv:10']);
    expect(await located('ledger.debit_wrong_account')).toEqual(['ledger_entries:ledger_entries.csv:11']);
    expect(await located('ledger.dangling_reference')).toEqual(['ledger_entries:ledger_entries.csv:12']);
    expect(await located('ledger.duplicate_idempotency_key')).toEqual(['ledger_entries:ledger_entries.csv:13']);
    expect(await located('payments.failed_reconcile')).toEqual(['payment_sessions:payment_sessions.csv:6']);
    expect(await located('events.payment_event_mismatch')).toEqual(['payment_sessions:payment_sessions.csv:6']);
    expect(await located('payments.completed_without_credit')).toEqual(['payment_sessions:payment_sessions.csv:7']);
  });

  test('two key-less rows are two violations', async () => {
    expect(result('all_keys_blank', 'usage.missing_open').violations).toBe(3);
    expect(await entityIds('all_keys_blank', 'usage.missing_open')).toEqual([
      'allocations:allocations.csv:2',
      'allocations:allocations.csv:4',
      'allocations:allocations.csv:6',
    ]);
  });
});

describe('6. ledger.duplicate_debit: repeats in another currency than the first debit', () => {
  test('the duplicated amount is reported in the currency of the repeat', async () => {
    expect(await money('repeat_other_currency', 'ledger.duplicate_debit')).toEqual([['ur_2', 3200n, 'EUR']]);
    expect((await byEntity('repeat_other_currency', 'ledger.duplicate_debit')).get('ur_2')?.detail).toMatchObject({
      effective_entries: 2,
      kept_entry_id: 'le_1',
      effective_total_minor: 3200,
      duplicated_minor: 3200,
      currency: 'EUR',
    });
  });

  test('repeats in several currencies: the largest, ties by currency code', async () => {
    expect(await money('repeats_in_several_currencies', 'ledger.duplicate_debit')).toEqual([['ur_2', 3000n, 'CHF']]);
    const detail = (await byEntity('repeats_in_several_currencies', 'ledger.duplicate_debit')).get('ur_2')?.detail;
    expect(detail).toMatchObject({ effective_entries: 4, kept_entry_id: 'le_1', duplicated_minor: 3000, currency: 'CHF' });
    expect((detail as { entries: Array<{ ledger_entry_id: string }> }).entries.map((e) => e.ledger_entry_id)).toEqual(['le_1', 'le_9', 'le_10', 'le_11']);
  });
});

describe("7. events.allocation_status_mismatch: the latest provisioning event of any type", () => {
  test('a later event that implies no status leaves nothing to compare; an earlier one is overtaken', async () => {
    const got = await violations('later_event_of_other_type', 'events.allocation_status_mismatch');
    expect(got.map((v) => [v.entity_id, v.detail])).toEqual([
      [
        'alloc_3',
        { status: 'releasing', implied_status: 'released', latest_event_id: 'ev_15', latest_event_type: 'provisioning.releasing.completed', latest_event_at: '2026-11-20T11:30:00Z' },
      ],
      [
        'alloc_6',
        { status: 'pending', implied_status: 'active', latest_event_id: 'ev_14', latest_event_type: 'provisioning.active', latest_event_at: '2026-11-20T11:00:00Z' },
      ],
    ]);
  });

  test('an allocation that failed after its active event is not compared with that older event', async () => {
    expect(await violations('failed_after_active', 'events.allocation_status_mismatch')).toEqual([]);
  });
});
