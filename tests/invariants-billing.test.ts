import { describe, expect, test } from 'vitest';
import { auditExports, type AuditOptions } from '../src/audit.ts';
import { parseConfig } from '../src/config.ts';
import { auditOnce, fixture } from './helpers/audits.ts';
import { copyFixture, editFile } from './helpers/exports.ts';

/** The billing-worker runbook invariants and their severities (CONTRACT.md §3). */
const OWN = {
  'usage.missing_open': 'error',
  'usage.orphan_open': 'error',
  'usage.duplicate_open': 'error',
  'usage.unbilled_closed': 'error',
  'usage.debit_mismatch': 'error',
  'usage.lifecycle': 'error',
  'usage.billing_lag': 'warn',
  'usage.outside_allocation_window': 'warn',
  'ledger.duplicate_debit': 'error',
  'ledger.duplicate_credit': 'error',
  'ledger.duplicate_idempotency_key': 'error',
  'ledger.dangling_reference': 'error',
  'ledger.debit_wrong_account': 'error',
  'ledger.unaudited_adjustment': 'warn',
  'ledger.balance_projection': 'error',
  'payments.failed_reconcile': 'error',
  'payments.completed_without_credit': 'error',
} as const;
const OWN_IDS = Object.keys(OWN);

const AUDITS: Record<string, AuditOptions> = {
  clean: { exportsDir: fixture('clean') },
  absent: { exportsDir: fixture('optional_tables_absent') },
  stalled: { exportsDir: fixture('billing_worker_stalled') },
  'stalled-lag-30': { exportsDir: fixture('billing_worker_stalled'), config: parseConfig({ thresholds: { billing_lag_minutes: 30 } }) },
  'stalled-as-of-11:30': { exportsDir: fixture('billing_worker_stalled'), asOf: '2026-11-20T11:30:00Z' },
  release: { exportsDir: fixture('release_failed') },
  webhook: { exportsDir: fixture('payment_webhook_lost') },
  retry: { exportsDir: fixture('duplicate_credit_after_retry') },
  ledger: { exportsDir: fixture('ledger_drift') },
  lifecycle: { exportsDir: fixture('usage_lifecycle_drift') },
  'lifecycle-tolerance-0': {
    exportsDir: fixture('usage_lifecycle_drift'),
    config: parseConfig({ thresholds: { allocation_window_tolerance_minutes: 0 } }),
  },
};

// Each audit runs once; the tests only read its findings and violations table.
const { result, violations, entityIds, byEntity } = auditOnce(AUDITS);

/** The money of each violation, for exact comparison: amounts stay bigint. */
async function money(name: string, id: string): Promise<Array<[string, bigint | null, string | null]>> {
  return (await violations(name, id)).map((v) => [v.entity_id, v.amount_minor, v.currency]);
}

describe('on fixtures/clean, with all its near-misses', () => {
  test.each(OWN_IDS)('%s passes and its query runs', (id) => {
    const r = result('clean', id);
    expect(r.error).toBeUndefined();
    expect(r.status).toBe('pass');
    expect(r.violations).toBe(0);
  });

  test.each(Object.entries(OWN))('%s has the contract severity %s', (id, severity) => {
    expect(result('clean', id).severity).toBe(severity);
  });
});

describe('without the optional tables', () => {
  test('ledger.balance_projection is skipped, naming balances', () => {
    const r = result('absent', 'ledger.balance_projection');
    expect(r.status).toBe('skipped');
    expect(r.skipped_reason).toBe('table balances not in the export');
  });

  test.each(OWN_IDS.filter((id) => id !== 'ledger.balance_projection'))('%s reads required tables only and passes', (id) => {
    expect(result('absent', id).status).toBe('pass');
  });
});

describe('usage.missing_open', () => {
  test('reports billable allocations without open usage, release_failed included', async () => {
    expect(await entityIds('release', 'usage.missing_open')).toEqual(['alloc_8']);
    const alloc8 = (await byEntity('release', 'usage.missing_open')).get('alloc_8');
    expect(alloc8).toMatchObject({ org_id: 'org_b', allocation_id: 'alloc_8', correlation_id: 'corr-b8', amount_minor: null });
    expect(alloc8?.detail).toEqual({
      allocation_status: 'release_failed',
      activated_at: '2026-11-20T10:00:00Z',
      expected: 'an open allocation usage row',
      open_usage_rows: 0,
      closed_usage_rows: 1,
      last_usage_end_time: '2026-11-20T11:00:00Z',
    });
  });

  test('reports an active allocation that was never metered', async () => {
    expect(await entityIds('lifecycle', 'usage.missing_open')).toEqual(['alloc_d5']);
    const d5 = (await byEntity('lifecycle', 'usage.missing_open')).get('alloc_d5');
    expect(d5?.detail).toMatchObject({ allocation_status: 'active', closed_usage_rows: 0, last_usage_end_time: null });
  });
});

describe('usage.orphan_open', () => {
  test('reports open usage of a released or unknown allocation, not of release_failed or releasing ones', async () => {
    expect(await entityIds('release', 'usage.orphan_open')).toEqual(['ur_11', 'ur_12']);
    const got = await byEntity('release', 'usage.orphan_open');
    expect(got.get('ur_11')).toMatchObject({ allocation_id: 'alloc_9', usage_source: 'allocation', amount_minor: null });
    expect(got.get('ur_11')?.detail).toMatchObject({
      problem: 'allocation status is released, not billable',
      released_at: '2026-11-20T10:00:00Z',
      accrued_cost_minor: 2750,
      currency: 'USD',
    });
    expect(got.get('ur_12')?.detail).toMatchObject({ problem: 'allocation not found', allocation_status: null });
  });
});

describe('usage.duplicate_open', () => {
  test('reports every open row of an allocation, or of an app instance component, metered twice', async () => {
    expect(await entityIds('lifecycle', 'usage.duplicate_open')).toEqual(['ur_1', 'ur_5', 'ur_d10', 'ur_d11']);
    const got = await byEntity('lifecycle', 'usage.duplicate_open');
    expect(got.get('ur_d10')?.detail).toEqual({
      metered_resource: { allocation_id: 'alloc_1' },
      open_rows: 2,
      group: [
        { usage_record_id: 'ur_1', start_time: '2026-11-20T08:05:00Z', accrued_cost_minor: 1200, currency: 'USD' },
        { usage_record_id: 'ur_d10', start_time: '2026-11-20T10:00:00Z', accrued_cost_minor: 300, currency: 'USD' },
      ],
    });
    expect(got.get('ur_5')).toMatchObject({ usage_source: 'app_runtime', app_instance_id: 'app_1', amount_minor: null });
    expect(got.get('ur_5')?.detail).toMatchObject({
      metered_resource: { app_instance_id: 'app_1', component: 'head' },
      open_rows: 2,
    });
  });
});

describe('usage.unbilled_closed', () => {
  test('reports closed usage with a cost and no debit, at its accrued cost', async () => {
    expect(await money('stalled', 'usage.unbilled_closed')).toEqual([['ur_9', 900n, 'USD']]);
  });

  test('a reversed debit does not bill the usage, and is named', async () => {
    expect(await money('ledger', 'usage.unbilled_closed')).toEqual([['ur_c4', 1000n, 'USD']]);
    const c4 = (await byEntity('ledger', 'usage.unbilled_closed')).get('ur_c4');
    expect(c4?.detail).toMatchObject({ accrued_cost_minor: 1000, reversed_debits: ['le_c5'] });
  });
});

describe('usage.debit_mismatch', () => {
  test('reports over- and under-charges at their absolute difference in the usage currency', async () => {
    expect(await money('ledger', 'usage.debit_mismatch')).toEqual([
      ['ur_c1', 1000n, 'USD'],
      ['ur_c2', 200n, 'USD'],
      ['ur_c3', 1000n, 'USD'],
    ]);
    expect(result('ledger', 'usage.debit_mismatch').amount_minor_by_currency).toEqual({ USD: 2200n });
  });

  test('a debit in another currency is an under-charge in the right one, with the foreign debit listed', async () => {
    const c3 = (await byEntity('ledger', 'usage.debit_mismatch')).get('ur_c3');
    expect(c3?.detail).toEqual({
      accrued_cost_minor: 1000,
      currency: 'USD',
      debited_minor: 0,
      difference_minor: -1000,
      by_currency: [
        { currency: 'USD', expected_minor: 1000, debited_minor: 0, ledger_entry_ids: [] },
        { currency: 'EUR', expected_minor: 0, debited_minor: 1000, ledger_entry_ids: ['le_c4'] },
      ],
    });
    const c2 = (await byEntity('ledger', 'usage.debit_mismatch')).get('ur_c2');
    expect(c2?.detail).toMatchObject({ debited_minor: 1200, difference_minor: 200 });
  });
});

describe('usage.lifecycle', () => {
  test('reports every contradiction between start, end and last billed time', async () => {
    const got = await violations('lifecycle', 'usage.lifecycle');
    expect(got.map((v) => [v.entity_id, (v.detail as { problems: string[] }).problems])).toEqual([
      ['ur_d6', ['end_time is before start_time', 'last_billed_at is before start_time']],
      ['ur_d7', ['last_billed_at is before start_time']],
      ['ur_d8', ['last_billed_at is after end_time']],
    ]);
  });
});

describe('usage.billing_lag', () => {
  test('reports open rows billed longer ago than the threshold, not those exactly at it', async () => {
    const got = await violations('stalled', 'usage.billing_lag');
    expect(got.map((v) => [v.entity_id, v.severity, v.amount_minor])).toEqual([
      ['ur_1', 'warn', null],
      ['ur_5', 'warn', null],
    ]);
    expect(got[0]?.detail).toEqual({
      billed_through: '2026-11-20T10:30:00Z',
      never_billed: false,
      as_of: '2026-11-20T11:50:00Z',
      lag_minutes: 80,
      threshold_minutes: 60,
      accrued_cost_minor: 1200,
      currency: 'USD',
    });
    expect(got[1]?.detail).toMatchObject({ billed_through: '2026-11-20T10:00:00Z', never_billed: true, lag_minutes: 110 });
  });

  test('the threshold comes from the config', async () => {
    expect(await entityIds('stalled-lag-30', 'usage.billing_lag')).toEqual(['ur_1', 'ur_3', 'ur_5', 'ur_6']);
  });

  test('the audit time comes from --as-of', async () => {
    // At 11:30 ur_1 (billed through 10:30) sits exactly at the threshold.
    expect(await entityIds('stalled-as-of-11:30', 'usage.billing_lag')).toEqual(['ur_5']);
  });
});

describe('usage.outside_allocation_window', () => {
  test('reports usage beyond the tolerance around activation and release, not at it', async () => {
    const got = await byEntity('lifecycle', 'usage.outside_allocation_window');
    expect([...got.keys()]).toEqual(['ur_d3', 'ur_d4']);
    expect(got.get('ur_d3')?.detail).toMatchObject({
      problems: ['starts before activated_at'],
      minutes_before_activation: 6,
      minutes_after_release: null,
      tolerance_minutes: 5,
    });
    expect(got.get('ur_d4')?.detail).toMatchObject({
      problems: ['ends after released_at'],
      end_time: '2026-11-20T10:05:01Z',
      released_at: '2026-11-20T10:00:00Z',
      minutes_after_release: 5.02,
    });
    expect(got.get('ur_d4')?.severity).toBe('warn');
  });

  test('the tolerance comes from the config; a missing activation or release is never outside', async () => {
    // ur_d5's allocation was never activated nor released: nothing to be outside of, even at 0.
    expect(await entityIds('lifecycle-tolerance-0', 'usage.outside_allocation_window')).toEqual(['ur_d1', 'ur_d2', 'ur_d3', 'ur_d4']);
  });
});

describe('ledger.duplicate_debit', () => {
  test('reports the duplicated amount beyond the earliest debit, ignoring reversed duplicates', async () => {
    expect(await money('ledger', 'ledger.duplicate_debit')).toEqual([['ur_c1', 1000n, 'USD']]);
    const c1 = (await byEntity('ledger', 'ledger.duplicate_debit')).get('ur_c1');
    expect(c1).toMatchObject({ org_id: 'org_c', allocation_id: 'alloc_c1', usage_source: 'allocation' });
    expect(c1?.detail).toEqual({
      effective_entries: 2,
      kept_entry_id: 'le_c1',
      effective_total_minor: 2000,
      duplicated_minor: 1000,
      currency: 'USD',
      entries: [
        { ledger_entry_id: 'le_c1', amount_minor: 1000n, currency: 'USD', created_at: '2026-11-20T07:01:00Z', idempotency_key: 'debit:ur_c1' },
        { ledger_entry_id: 'le_c2', amount_minor: 1000n, currency: 'USD', created_at: '2026-11-20T07:02:00Z', idempotency_key: 'debit:ur_c1:retry' },
      ],
    });
  });
});

describe('ledger.duplicate_credit', () => {
  test('reports a session credited twice, not one whose second credit was reversed', async () => {
    expect(await money('retry', 'ledger.duplicate_credit')).toEqual([['ps_2', 5000n, 'EUR']]);
    const ps2 = (await byEntity('retry', 'ledger.duplicate_credit')).get('ps_2');
    expect(ps2).toMatchObject({ org_id: 'org_b', payment_session_id: 'ps_2', correlation_id: 'corr-ps2' });
    expect(ps2?.detail).toMatchObject({ kept_entry_id: 'le_4', effective_total_minor: 10000, duplicated_minor: 5000 });
  });
});

describe('ledger.duplicate_idempotency_key', () => {
  test('reports every effective entry of a reused key; a reuse whose extra entry was reversed is resolved', async () => {
    const got = await violations('retry', 'ledger.duplicate_idempotency_key');
    // credit:ps_1 (le_3, le_10) is not reported: le_10 was reversed by le_11, only le_3 is effective.
    expect(got.map((v) => [v.entity_id, v.amount_minor, v.currency, (v.detail as { role: string }).role])).toEqual([
      ['le_4', null, null, 'first effective entry of the key'],
      ['le_9', 5000n, 'EUR', 'repeats effective entry le_4'],
    ]);
    expect(got[0]?.detail).toMatchObject({ idempotency_key: 'credit:ps_2', effective_uses: 2, ledger_entry_ids: ['le_4', 'le_9'] });
  });
});

describe('ledger.dangling_reference', () => {
  test('reports entries naming a missing usage record, payment session or ledger entry, at their amount', async () => {
    const got = await violations('ledger', 'ledger.dangling_reference');
    expect(got.map((v) => [v.entity_id, v.amount_minor, v.currency, (v.detail as { dangling: unknown }).dangling])).toEqual([
      ['le_c10', 500n, 'USD', [{ column: 'payment_session_id', value: 'ps_missing', missing_from: 'payment_sessions' }]],
      ['le_c8', 1000n, 'USD', [{ column: 'usage_record_id', value: 'ur_missing', missing_from: 'usage_records' }]],
      ['le_c9', 400n, 'USD', [{ column: 'reverses_ledger_entry_id', value: 'le_missing', missing_from: 'ledger_entries' }]],
    ]);
  });
});

describe('ledger.debit_wrong_account', () => {
  test('reports a debit charged to another user, not one in another currency', async () => {
    expect(await money('ledger', 'ledger.debit_wrong_account')).toEqual([['le_c7', 1000n, 'USD']]);
    const c7 = (await byEntity('ledger', 'ledger.debit_wrong_account')).get('le_c7');
    expect(c7).toMatchObject({ requested_by_user_id: 'u_c2', usage_record_id: 'ur_c5', ledger_entry_id: 'le_c7' });
    expect(c7?.detail).toEqual({
      expected: { org_id: 'org_c', requested_by_user_id: 'u_c1' },
      actual: { org_id: 'org_c', requested_by_user_id: 'u_c2' },
      mismatched: ['requested_by_user_id'],
    });
  });
});

describe('ledger.unaudited_adjustment', () => {
  test('reports adjustments without actor or correlation id, not audited reversals', async () => {
    const got = await violations('ledger', 'ledger.unaudited_adjustment');
    expect(got.map((v) => [v.entity_id, v.severity, v.amount_minor, (v.detail as { missing: string[] }).missing])).toEqual([
      ['le_c11', 'warn', 300n, ['actor']],
      ['le_c12', 'warn', 200n, ['correlation_id']],
    ]);
  });

  test('reports a reversal without actor', async () => {
    expect(await money('webhook', 'ledger.unaudited_adjustment')).toEqual([['le_11', 2000n, 'USD']]);
    const le11 = (await byEntity('webhook', 'ledger.unaudited_adjustment')).get('le_11');
    expect(le11?.detail).toMatchObject({ entry_type: 'reversal', missing: ['actor'], reverses_ledger_entry_id: 'le_10' });
  });
});

describe('ledger.balance_projection', () => {
  test('reports balances that differ from effective credits minus debits up to their as_of', async () => {
    expect(await money('ledger', 'ledger.balance_projection')).toEqual([
      ['org_c|u_c1|USD', 1000n, 'USD'],
      ['org_c|u_c4|USD', 250n, 'USD'],
    ]);
    const got = await byEntity('ledger', 'ledger.balance_projection');
    expect(got.get('org_c|u_c1|USD')).toMatchObject({ org_id: 'org_c', requested_by_user_id: 'u_c1' });
    expect(got.get('org_c|u_c1|USD')?.detail).toEqual({
      as_of: '2026-11-20T11:00:00Z',
      balance_minor: 7000,
      expected_minor: 6000,
      difference_minor: 1000,
      effective_credits_minor: 10500,
      effective_debits_minor: 4500,
      effective_entries: 7,
      mismatched_balance_rows: 1,
    });
    expect(got.get('org_c|u_c4|USD')?.detail).toMatchObject({ expected_minor: 0, effective_entries: 0 });
  });
});

describe('payments.failed_reconcile', () => {
  test('reports sessions stuck in failed_reconcile at the session amount', async () => {
    expect(await money('webhook', 'payments.failed_reconcile')).toEqual([['ps_5', 4000n, 'USD']]);
    const ps5 = (await byEntity('webhook', 'payments.failed_reconcile')).get('ps_5');
    expect(ps5?.detail).toMatchObject({ status: 'failed_reconcile', provider_session_id: 'cs_5', effective_credits: [] });
  });
});

describe('payments.completed_without_credit', () => {
  test('reports completed sessions without an effective credit of their amount and currency', async () => {
    const got = await violations('webhook', 'payments.completed_without_credit');
    expect(got.map((v) => [v.entity_id, v.amount_minor, v.currency, (v.detail as { problems: string[] }).problems])).toEqual([
      ['ps_10', 700n, 'EUR', ['the entry currency differs from the session currency']],
      ['ps_6', 3000n, 'EUR', ['the session names no ledger entry']],
      ['ps_7', 2000n, 'USD', ['the entry was reversed']],
      ['ps_8', 1500n, 'USD', ['the entry amount differs from the session amount']],
    ]);
    expect((await byEntity('webhook', 'payments.completed_without_credit')).get('ps_7')?.detail).toMatchObject({
      ledger_entry_id: 'le_10',
      entry: { entry_type: 'payment_credit', payment_session_id: 'ps_7', amount_minor: 2000n, currency: 'USD', reversed_by: ['le_11'] },
      effective_credits: [],
    });
  });
});

test('usage.duplicate_open compares app component names ignoring case, like the control-plane classification', async () => {
  const dir = await copyFixture();
  await editFile(dir, 'usage_records.csv', (t) =>
    t + 'ur_9,app_runtime,,app_1,org_a,p_a1,u_a1,Worker,false,dedicated,instance,ray,2026-11-20T10:30:00Z,,2026-11-20T11:40:00Z,10,USD,corr-app1,trace-app1\n',
  );
  const run = await auditExports({ exportsDir: dir });
  try {
    const rows = await run.db.all<{ entity_id: string }>(
      `SELECT entity_id FROM violations WHERE invariant_id = 'usage.duplicate_open' ORDER BY entity_id`,
    );
    expect(rows.map((r) => r.entity_id)).toEqual(['ur_6', 'ur_9']);
  } finally {
    run.db.close();
  }
});
