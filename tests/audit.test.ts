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
  expect(findings.totals.amount_minor_by_currency).toEqual(total);
});
