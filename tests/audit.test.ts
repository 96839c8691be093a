import { expect, test } from 'vitest';
import { auditExports, exitCodeFor } from '../src/audit.ts';
import { parseConfig } from '../src/config.ts';
import { copyFixture, editFile } from './helpers/exports.ts';
import { fixture } from './helpers/audits.ts';

/** fixtures/clean with ur_1 last billed at 10:00: 110 minutes behind the audit time, a warning only. */
async function laggingExport(): Promise<string> {
  const dir = await copyFixture();
  await editFile(dir, 'usage_records.csv', (t) => t.replace('2026-11-20T08:05:00Z,,2026-11-20T11:30:00Z', '2026-11-20T08:05:00Z,,2026-11-20T10:00:00Z'));
  return dir;
}

async function audit(exportsDir: string, config: object = {}) {
  const run = await auditExports({ exportsDir, config: parseConfig(config) });
  run.db.close();
  const byId = (id: string) => run.findings.invariants.find((r) => r.id === id)!;
  return { findings: run.findings, byId, code: exitCodeFor(run.findings) };
}

test('as_of defaults to the latest timestamp in the exports', async () => {
  const { findings } = await audit(fixture('clean'));
  expect(findings.as_of).toBe('2026-11-20T11:50:00Z');
});

test('warnings alone exit 0; a severity override makes the same finding fail the audit', async () => {
  const dir = await laggingExport();
  const warned = await audit(dir);
  expect(warned.byId('usage.billing_lag')).toMatchObject({ status: 'fail', severity: 'warn', violations: 1 });
  expect(warned.findings.totals).toMatchObject({ violations: 1, warn_violations: 1, error_violations: 0 });
  expect(warned.code).toBe(0);

  const escalated = await audit(dir, { severity: { 'usage.billing_lag': 'error' } });
  expect(escalated.byId('usage.billing_lag')).toMatchObject({ status: 'fail', severity: 'error' });
  expect(escalated.code).toBe(1);
});

test('a waiver keeps the violation visible but no longer failing; an expired one does not', async () => {
  const dir = await copyFixture(fixture('payment_webhook_lost'));
  const base = await audit(dir);
  const failed = base.byId('payments.failed_reconcile');
  expect(failed.violations).toBeGreaterThan(0);
  const [first] = failed.sample;

  const entityWaiver = await audit(dir, { waivers: [{ invariant: 'payments.failed_reconcile', entity_id: first!.entity_id, reason: 'INC-1' }] });
  expect(entityWaiver.byId('payments.failed_reconcile')).toMatchObject({ violations: failed.violations - 1, waived_violations: 1 });
  expect(entityWaiver.byId('payments.failed_reconcile').sample.find((v) => v.entity_id === first!.entity_id)).toMatchObject({ waived: true, waiver_reason: 'INC-1' });

  const whole = await audit(dir, { waivers: [{ invariant: 'payments.failed_reconcile', reason: 'known provider outage' }] });
  expect(whole.byId('payments.failed_reconcile')).toMatchObject({ status: 'waived', violations: 0, waived_violations: failed.violations, amount_minor_by_currency: {} });

  const expired = await audit(dir, { waivers: [{ invariant: 'payments.failed_reconcile', reason: 'old', expires: '2026-11-19' }] });
  expect(expired.byId('payments.failed_reconcile')).toMatchObject({ status: 'fail', violations: failed.violations, waived_violations: 0 });
});

test('money at stake is summed per currency as bigint, never across currencies', async () => {
  const { findings } = await audit(fixture('ledger_drift'));
  for (const r of findings.invariants) {
    for (const [currency, amount] of Object.entries(r.amount_minor_by_currency)) {
      expect(currency).toMatch(/^[A-Z]{3}$/);
      expect(typeof amount).toBe('bigint');
    }
  }
  const total: Record<string, bigint> = {};
  for (const r of findings.invariants) for (const [c, a] of Object.entries(r.amount_minor_by_currency)) total[c] = (total[c] ?? 0n) + a;
  // The per-invariant sums overlap; their sum is kept as the labelled cross-check, and the
  // total counts each money movement once (ur_c1's double debit is priced by two invariants).
  expect(findings.totals.overlapping_amount_minor_by_currency).toEqual(total);
  expect(findings.totals.amount_minor_by_currency).toEqual({ USD: total['USD']! - 1000n });
});

test('a scoped audit keeps rows that could not be read and violations naming no tenant, and nothing of other tenants', async () => {
  const dir = await copyFixture(fixture('events_drift'));
  await editFile(dir, 'usage_records.csv', (t) => t.replace(/^(ur_2,.*?),2026-11-20T07:00:00Z,2026-11-20T07:00:00Z/m, '$1,garbage,2026-11-20T07:00:00Z'));
  const run = await auditExports({ exportsDir: dir, scope: { orgs: ['org_a'] } });
  const app = await auditExports({ exportsDir: dir, scope: { app_instances: ['app_1'] } });
  try {
    const rows = await run.db.all<{ invariant_id: string; org_id: string | null }>(`SELECT DISTINCT invariant_id, org_id FROM violations ORDER BY ALL`);
    expect(rows).toContainEqual({ invariant_id: 'contract.rejected_row', org_id: null });
    expect(rows.filter((r) => r.org_id !== null).every((r) => r.org_id === 'org_a')).toBe(true);
    expect(exitCodeFor(run.findings)).toBe(1);
    const apps = await app.db.all<{ entity_type: string; app_instance_id: string | null }>(`SELECT DISTINCT entity_type, app_instance_id FROM violations ORDER BY ALL`);
    expect(apps.every((r) => r.entity_type === 'source_row' || r.app_instance_id === 'app_1')).toBe(true);
  } finally {
    run.db.close();
    app.db.close();
  }
});

test('a row exported twice is still one violation per entity, and money is not counted twice', async () => {
  const dir = await copyFixture();
  await editFile(dir, 'allocations.csv', (t) => t + 'alloc_9,org_a,p_a1,u_a1,active,A100,1,2026-11-20T08:00:00Z,2026-11-20T08:00:00Z,,,c9,\n'.repeat(2));
  await editFile(dir, 'usage_records.csv', (t) => t + 'ur_9,allocation,alloc_1,,org_a,p_a1,u_a1,,,,,,2026-11-20T06:00:00Z,2026-11-20T07:00:00Z,2026-11-20T07:00:00Z,700,USD,c,\n'.repeat(2));
  const { byId } = await audit(dir);
  expect(byId('usage.missing_open').sample.map((v) => v.entity_id)).toEqual(['alloc_9']);
  expect(byId('usage.unbilled_closed')).toMatchObject({ violations: 1, amount_minor_by_currency: { USD: 700n } });
  expect(byId('contract.duplicate_key').sample.map((v) => v.entity_id)).toEqual(['alloc_9', 'ur_9']);
});

test('money inside a detail keeps every digit', async () => {
  const dir = await copyFixture();
  await editFile(dir, 'usage_records.csv', (t) => t + 'ur_9,allocation,alloc_2,,org_a,p_a1,u_a1,,,,,,2026-11-20T06:00:00Z,2026-11-20T07:00:00Z,2026-11-20T07:00:00Z,9007199254740993,USD,c,\n');
  const { byId } = await audit(dir);
  const v = byId('usage.unbilled_closed').sample[0]!;
  expect(v.amount_minor).toBe(9007199254740993n);
  expect((v.detail as Record<string, unknown>)['accrued_cost_minor']).toBe(9007199254740993n);
});
