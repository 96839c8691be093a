import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { customerItems, customerMarkdown } from '../src/outputs/customer.ts';
import { CATALOG } from '../src/catalog/index.ts';
import { OWNING_LAYERS, type OwningLayer } from '../src/contract/violations.ts';
import { summaryMarkdown, writeAuditOutputs } from '../src/outputs/files.ts';
import { safeFileName } from '../src/report/paths.ts';
import { BLAST_RADIUS_THRESHOLDS } from '../src/findings/types.ts';
import { auditOnce, fixture } from './helpers/audits.ts';
import { copyFixture, editFile, tempDir } from './helpers/exports.ts';

/** Every open usage row of billing_worker_stalled lags: the worker, not one meter, is behind. */
async function workerStalledEverywhere(): Promise<string> {
  const dir = await copyFixture(fixture('billing_worker_stalled'));
  await editFile(dir, 'usage_records.csv', (text) =>
    text.replace(/^(ur_[346],(?:[^,]*,){13})[^,]*/gm, '$12026-11-20T10:00:00Z'),
  );
  return dir;
}

/** clean plus one usage row whose start_time is not an instant: nothing names a tenant. */
async function onlyUnreadable(): Promise<string> {
  const dir = await copyFixture(fixture('clean'));
  await editFile(dir, 'usage_records.csv', (text) => `${text}ur_99,allocation,alloc_1,,org_a,p_a1,u_a1,,,,,,yesterday,,,5,USD,corr-x,\n`);
  return dir;
}

const AS_OF = '2026-11-20T11:50:00Z';
const dirs: Record<string, string> = {};
beforeAll(async () => {
  dirs['stalled'] = await workerStalledEverywhere();
  dirs['unreadable'] = await onlyUnreadable();
});

const audits = auditOnce({
  none: { exportsDir: fixture('clean') },
  app_instance: { exportsDir: fixture('control_plane_unclassified') },
  project: { exportsDir: fixture('billing_worker_stalled') },
  tenant: { exportsDir: fixture('ledger_drift') },
  several_tenants: { exportsDir: fixture('payment_webhook_lost') },
  global: { exportsDir: fixture('demo') },
  get global_worker() {
    return { exportsDir: dirs['stalled']!, asOf: AS_OF };
  },
  get unattributed() {
    return { exportsDir: dirs['unreadable']! };
  },
  lifecycle: { exportsDir: fixture('usage_lifecycle_drift') },
  anchors: { exportsDir: fixture('app_runtime_misattributed') },
  credits: { exportsDir: fixture('duplicate_credit_after_retry') },
});

describe('blast radius: each class, with the numbers behind it', () => {
  test('none and unattributed', () => {
    expect(audits.run('none').findings.blast_radius).toMatchObject({ class: 'none', violations: 0, unattributed_violations: 0, tenants_in_exports: 2 });
    expect(audits.run('unattributed').findings.blast_radius).toMatchObject({ class: 'unattributed', violations: 0, unattributed_violations: 1 });
  });

  test('one app instance: every violation on app_1', () => {
    expect(audits.run('app_instance').findings.blast_radius).toMatchObject({
      class: 'app_instance',
      reason: 'every one of 6 violation(s) is on one app instance',
      tenants_affected: 1,
      projects_affected: 1,
      app_instances_affected: 1,
      violations_without_app_instance: 0,
    });
  });

  test('one project: app_1 and two allocations of p_a1', () => {
    expect(audits.run('project').findings.blast_radius).toMatchObject({
      class: 'project',
      tenants_affected: 1,
      projects_affected: 1,
      app_instances_affected: 1,
      violations_without_app_instance: 2,
      lagging_open_usage_rows: 2,
      open_usage_rows: 5,
    });
  });

  test('one tenant: org_c, its payments and balances name no project', () => {
    const b = audits.run('tenant').findings.blast_radius;
    expect(b).toMatchObject({ class: 'tenant', tenants_affected: 1, projects_affected: 1 });
    expect(b.violations_without_project).toBeGreaterThan(0);
  });

  test('several tenants: 2 of 2, under the global minimum of 3', () => {
    expect(audits.run('several_tenants').findings.blast_radius).toMatchObject({
      class: 'several_tenants',
      reason: '2 of 2 tenants have violations',
      tenants_affected: 2,
      tenants_in_exports: 2,
    });
  });

  test('global by spread: 7 of the demo\'s 8 tenants', () => {
    expect(audits.run('global').findings.blast_radius).toMatchObject({
      class: 'global',
      reason: '7 of 8 tenants (88%) have violations',
      tenants_affected: 7,
      tenants_in_exports: 8,
      unattributed_violations: 1,
      thresholds: BLAST_RADIUS_THRESHOLDS,
    });
  });

  test('global by pattern: billing lag on every open usage row of two tenants (worker-wide)', () => {
    expect(audits.run('global_worker').findings.blast_radius).toMatchObject({
      class: 'global',
      reason: 'billing lags on 5 of 5 open usage rows (100%) across 2 tenants: the billing worker, not one meter',
      lagging_open_usage_rows: 5,
      open_usage_rows: 5,
      lagging_tenants: 2,
      tenants_affected: 2,
    });
  });

  test('summary.md opens with the blast radius', () => {
    const lines = summaryMarkdown(audits.run('global').findings).split('\n');
    expect(lines[2]).toBe('**Blast radius: global** (global): 7 of 8 tenants (88%) have violations.');
    expect(lines[4]).toBe(
      'Tenants 7 of 8 · projects 7 · app instances 5 · users 11 · open violations naming a tenant 31 (plus 1 naming none) · billing lag on 1 of 142 open usage rows',
    );
  });
});

/** Where the runbooks send each invariant's follow-up (before any refinement by detail). */
const OWNERS: Record<string, OwningLayer> = {
  'contract.rejected_row': 'ui_export',
  'contract.invalid_value': 'ui_export',
  'contract.duplicate_key': 'ui_export',
  'usage.missing_open': 'metering_emitter',
  'usage.orphan_open': 'metering_emitter',
  'usage.duplicate_open': 'metering_emitter',
  'usage.unbilled_closed': 'billing_worker',
  'usage.debit_mismatch': 'billing_worker',
  'usage.lifecycle': 'metering_emitter',
  'usage.billing_lag': 'billing_worker',
  'usage.outside_allocation_window': 'metering_emitter',
  'ledger.duplicate_debit': 'billing_worker',
  'ledger.duplicate_credit': 'payments_webhook',
  'ledger.duplicate_idempotency_key': 'billing_worker',
  'ledger.dangling_reference': 'billing_worker',
  'ledger.debit_wrong_account': 'attribution_mapping',
  'ledger.unaudited_adjustment': 'billing_worker',
  'ledger.balance_projection': 'ui_export',
  'payments.failed_reconcile': 'payments_webhook',
  'payments.completed_without_credit': 'payments_webhook',
  'app_runtime.source_attribution': 'attribution_mapping',
  'app_runtime.anchor_mismatch': 'attribution_mapping',
  'app_runtime.control_plane_classification': 'metering_emitter',
  'app_runtime.missing_usage': 'metering_emitter',
  'app_runtime.orphan_open': 'metering_emitter',
  'events.allocation_status_mismatch': 'metering_emitter',
  'events.payment_event_mismatch': 'payments_webhook',
};

describe('owning layer', () => {
  test('every invariant of the catalog names its layer', () => {
    expect(Object.fromEntries(CATALOG.map((i) => [i.id, i.owner.layer]))).toEqual(OWNERS);
    for (const i of CATALOG) expect(Object.keys(OWNING_LAYERS)).toContain(i.owner.layer);
  });

  test('every violation carries one, the invariant\'s unless its detail refines it', async () => {
    for (const name of ['global', 'tenant', 'lifecycle', 'anchors', 'credits']) {
      const rows = await audits.run(name).db.all<{ invariant_id: string; entity_id: string; owning_layer: string | null }>(
        `SELECT invariant_id, entity_id, owning_layer FROM violations ORDER BY 1, 2`,
      );
      expect(rows.length).toBeGreaterThan(0);
      for (const r of rows) expect(r.owning_layer, `${name} ${r.invariant_id} ${r.entity_id}`).not.toBeNull();
    }
    const layer = async (name: string, id: string) =>
      Object.fromEntries(
        (await audits.violations(name, id)).map((v) => [v.entity_id, v.owning_layer]),
      );
    // end before start is the emitter's interval; a last_billed_at outside it is the worker's accrual
    expect(await layer('lifecycle', 'usage.lifecycle')).toEqual({ ur_d6: 'metering_emitter', ur_d7: 'billing_worker', ur_d8: 'billing_worker' });
    // fields copied differently from the instance: attribution; usage for an unknown instance: emission
    expect(await layer('anchors', 'app_runtime.anchor_mismatch')).toEqual({ ur_13: 'attribution_mapping', ur_14: 'attribution_mapping', ur_16: 'metering_emitter' });
    expect(await layer('tenant', 'ledger.dangling_reference')).toEqual({ le_c10: 'payments_webhook', le_c8: 'billing_worker', le_c9: 'billing_worker' });
    expect(new Set(Object.values(await layer('credits', 'ledger.duplicate_idempotency_key')))).toEqual(new Set(['payments_webhook']));
    expect(await layer('global', 'usage.lifecycle')).toEqual({ ur_855: 'billing_worker' });
  });

  test('violations.csv has an owning_layer column; follow-ups group the ids by layer', async () => {
    const run = audits.run('tenant');
    const out = await tempDir('recon-owner-');
    await writeAuditOutputs(run, out);
    const header = (await readFile(path.join(out, 'violations.csv'), 'utf8')).split('\n')[0]!.split(',');
    expect(header).toContain('owning_layer');
    expect(
      run.findings.follow_ups.map((g) => ({ layer: g.layer, tasks: g.tasks.map((t) => `${t.invariant_id}: ${t.ids.join(' ')}`) })),
    ).toEqual([
      { layer: 'attribution_mapping', tasks: ['ledger.debit_wrong_account: le_c7'] },
      {
        layer: 'billing_worker',
        tasks: [
          'usage.unbilled_closed: ur_c4',
          'usage.debit_mismatch: ur_c1 ur_c2 ur_c3',
          'ledger.duplicate_debit: ur_c1',
          'ledger.dangling_reference: le_c8 le_c9',
          'ledger.unaudited_adjustment: le_c11 le_c12',
        ],
      },
      { layer: 'payments_webhook', tasks: ['ledger.dangling_reference: le_c10'] },
      { layer: 'ui_export', tasks: ['ledger.balance_projection: org_c|u_c1|USD org_c|u_c4|USD'] },
    ]);
    const summary = await readFile(path.join(out, 'summary.md'), 'utf8');
    expect(summary).toContain('### Payments / webhook (payment sessions, provider webhooks, balance credits and their events)');
    expect(summary).toContain('- [ ] Ledger references name existing rows (`ledger.dangling_reference`, 1 ledger entry(s)): `le_c10`');
  });
});

describe('customer-facing summary', () => {
  test('the demo\'s org_8: each wrong charge once, with its amount, no internal ids', async () => {
    const run = audits.run('global');
    const out = await tempDir('recon-customer-');
    const files = await writeAuditOutputs(run, out);
    const file = path.join(out, 'customers', `${safeFileName('org_8')}.md`);
    expect(files).toContain(file);
    const text = await readFile(file, 'utf8');
    expect(text).toMatchInlineSnapshot(`
      "# Billing review for org_8

      Reviewed up to 2026-11-20 12:00:00 UTC.

      ## What we found

      ### Charged too much

      - Usage of GPU allocation alloc_4 from 2026-11-19 16:51:00 UTC to 2026-11-19 17:51:00 UTC was charged twice. Extra charge: EUR 4.80.
      - A usage charge for project p_8_1 on 2026-11-20 11:29:00 UTC was posted twice. Extra charge: EUR 1.20.

      ### Payments and credits

      - A payment on 2026-11-19 17:33:00 UTC was credited to your balance twice. Extra credit: EUR 468.00.

      ### Other billing corrections

      - GPU allocation alloc_95 was still being metered after it was released (open since 2026-11-20 11:12:00 UTC).

      Amounts are exact, in the currency charged. We will follow up once every item is corrected.
      "
    `);
    // ur_707's double debit trips four checks (duplicate debit, debit mismatch, two idempotency
    // key entries): it is one charge, named once.
    expect(text.match(/alloc_4/g)).toHaveLength(1);
    expect(text).not.toMatch(/\b(ur|le|ps)_\d+|corr-|ledger\.|usage\.|payments\./);
  });

  test('scoped to a project, the summary says so and lists only that project', async () => {
    const run = audits.run('global');
    const { items } = await customerItems(run.db, { engine: run.engine });
    const mine = items.filter((i) => i.org_id === 'org_8' && i.project_id === 'p_8_1');
    const scope = { ...run.scope, orgs: ['org_8'], projects: ['p_8_1'] };
    const text = customerMarkdown('org_8', mine, { asOf: run.findings.as_of, scope });
    expect(text.split('\n')[0]).toBe('# Billing review for org_8 (project p_8_1)');
    expect(text).not.toContain('credited to your balance twice');
  });
});
