import { describe, expect, test } from 'vitest';
import { parseConfig } from '../src/config.ts';
import { auditOnce, fixture } from './helpers/audits.ts';

const OWN = [
  'app_runtime.source_attribution',
  'app_runtime.anchor_mismatch',
  'app_runtime.control_plane_classification',
  'app_runtime.missing_usage',
  'app_runtime.orphan_open',
  'events.allocation_status_mismatch',
  'events.payment_event_mismatch',
] as const;

// Each fixture is audited once; the tests only read the resulting violations tables.
const { result, violations, entityIds, byEntity } = auditOnce({
  clean: { exportsDir: fixture('clean') },
  misattributed: { exportsDir: fixture('app_runtime_misattributed') },
  unclassified: { exportsDir: fixture('control_plane_unclassified') },
  'unclassified-custom': {
    exportsDir: fixture('control_plane_unclassified'),
    config: parseConfig({ control_plane_components: ['scheduler', 'control', 'controller', 'notebook'] }),
  },
  missing_usage: { exportsDir: fixture('app_runtime_missing_usage') },
  events: { exportsDir: fixture('events_drift') },
  absent: { exportsDir: fixture('optional_tables_absent') },
});

describe('on fixtures/clean', () => {
  test.each(OWN)('%s passes and its query runs', (id) => {
    const r = result('clean', id);
    expect(r.error).toBeUndefined();
    expect(r.status).toBe('pass');
    expect(r.violations).toBe(0);
  });
});

describe('app_runtime.source_attribution', () => {
  test('reports usage attributed to the wrong kind of resource, with its accrued cost', async () => {
    const got = await violations('misattributed', 'app_runtime.source_attribution');
    expect(
      got.map((v) => ({
        entity_id: v.entity_id,
        usage_source: v.usage_source,
        amount_minor: v.amount_minor,
        currency: v.currency,
        problems: (v.detail as { problems: string[] }).problems,
      })),
    ).toEqual([
      { entity_id: 'ur_10', usage_source: 'allocation', amount_minor: 200n, currency: 'USD', problems: ['allocation usage with an app_instance_id'] },
      { entity_id: 'ur_11', usage_source: 'allocation', amount_minor: 100n, currency: 'EUR', problems: ['allocation usage without allocation_id'] },
      { entity_id: 'ur_9', usage_source: 'app_runtime', amount_minor: 300n, currency: 'USD', problems: ['app_runtime usage without app_instance_id'] },
    ]);
    expect(result('misattributed', 'app_runtime.source_attribution').amount_minor_by_currency).toEqual({ EUR: 100n, USD: 500n });
  });

  test('allows app_runtime usage that also names the allocation it runs on', async () => {
    expect(await entityIds('misattributed', 'app_runtime.source_attribution')).not.toContain('ur_12');
  });
});

describe('app_runtime.anchor_mismatch', () => {
  test('reports exactly the rows that differ from, or lack, their instance', async () => {
    expect(await entityIds('misattributed', 'app_runtime.anchor_mismatch')).toEqual(['ur_13', 'ur_14', 'ur_16']);
    // ur_15 and app_4 both lack operating_mode; and clean's rows match their instances.
    expect(await entityIds('missing_usage', 'app_runtime.anchor_mismatch')).toEqual(['ur_12']);
  });

  test('names every differing field with the usage and instance values', async () => {
    const got = await byEntity('misattributed', 'app_runtime.anchor_mismatch');
    const ur14 = got.get('ur_14');
    expect(ur14).toMatchObject({ org_id: 'org_b', app_instance_id: 'app_1', amount_minor: 500n, currency: 'EUR' });
    expect(ur14?.detail).toEqual({
      app_instance_id: 'app_1',
      instance_found: true,
      mismatched_fields: ['org_id', 'project_id', 'runtime_backend'],
      mismatches: [
        { field: 'org_id', usage: 'org_b', instance: 'org_a' },
        { field: 'project_id', usage: 'p_b1', instance: 'p_a1' },
        { field: 'runtime_backend', usage: 'kubernetes', instance: 'ray' },
      ],
    });
    expect(got.get('ur_13')?.detail).toMatchObject({
      mismatches: [{ field: 'operating_mode', usage: null, instance: 'dedicated' }],
    });
  });

  test('reports usage of an instance that does not exist', async () => {
    const ur16 = (await byEntity('misattributed', 'app_runtime.anchor_mismatch')).get('ur_16');
    expect(ur16).toMatchObject({ app_instance_id: 'app_9', amount_minor: 120n, currency: 'USD', correlation_id: 'corr-ur16' });
    expect(ur16?.detail).toEqual({ app_instance_id: 'app_9', instance_found: false, mismatched_fields: [], mismatches: [] });
  });
});

describe('app_runtime.control_plane_classification', () => {
  test('reports misclassified and unclassified rows, matching names ignoring case', async () => {
    const got = await violations('unclassified', 'app_runtime.control_plane_classification');
    expect(
      got.map((v) => ({ entity_id: v.entity_id, amount_minor: v.amount_minor, currency: v.currency, detail: v.detail })),
    ).toEqual([
      {
        entity_id: 'ur_10', amount_minor: 90n, currency: 'USD',
        detail: { component: 'notebook', control_plane_component: true, expected_control_plane_component: false, problem: 'a component that is not control plane flagged as control plane' },
      },
      {
        entity_id: 'ur_12', amount_minor: 30n, currency: 'USD',
        detail: { component: 'agent', control_plane_component: null, expected_control_plane_component: false, problem: 'control_plane_component is not set' },
      },
      {
        entity_id: 'ur_13', amount_minor: 50n, currency: 'USD',
        detail: { component: 'control', control_plane_component: null, expected_control_plane_component: true, problem: 'control_plane_component is not set' },
      },
      {
        entity_id: 'ur_15', amount_minor: 90n, currency: 'USD',
        detail: { component: null, control_plane_component: null, expected_control_plane_component: false, problem: 'control_plane_component is not set' },
      },
      {
        entity_id: 'ur_16', amount_minor: 10n, currency: 'USD',
        detail: { component: null, control_plane_component: true, expected_control_plane_component: false, problem: 'a row without a component flagged as control plane' },
      },
      {
        entity_id: 'ur_9', amount_minor: 120n, currency: 'USD',
        detail: { component: 'scheduler', control_plane_component: false, expected_control_plane_component: true, problem: 'a control-plane component flagged as not control plane' },
      },
    ]);
  });

  test('follows the configured control-plane component names', async () => {
    // notebook becomes control plane (ur_10 passes); head no longer is (clean's ur_5 fails).
    expect(await entityIds('unclassified-custom', 'app_runtime.control_plane_classification')).toEqual([
      'ur_12', 'ur_13', 'ur_15', 'ur_16', 'ur_5', 'ur_9',
    ]);
    const ur5 = (await byEntity('unclassified-custom', 'app_runtime.control_plane_classification')).get('ur_5');
    expect(ur5?.detail).toMatchObject({ component: 'head', control_plane_component: true, expected_control_plane_component: false });
  });
});

describe('app_runtime.missing_usage', () => {
  test('reports instances that ran unmetered or are billable without open usage', async () => {
    const got = await violations('missing_usage', 'app_runtime.missing_usage');
    expect(
      got.map((v) => ({
        entity_id: v.entity_id,
        org_id: v.org_id,
        app_instance_id: v.app_instance_id,
        amount_minor: v.amount_minor,
        detail: v.detail,
      })),
    ).toEqual([
      {
        entity_id: 'app_5', org_id: 'org_a', app_instance_id: 'app_5', amount_minor: null,
        detail: {
          status: 'running', started_at: '2026-11-20T11:00:00Z', stopped_at: null, usage_rows: 0, open_usage_rows: 0,
          problems: ['ran (started_at is set) but has no app_runtime usage row', 'is running (billable) but has no open app_runtime usage row'],
        },
      },
      {
        entity_id: 'app_6', org_id: 'org_b', app_instance_id: 'app_6', amount_minor: null,
        detail: {
          status: 'stopped', started_at: '2026-11-20T08:00:00Z', stopped_at: '2026-11-20T09:00:00Z', usage_rows: 0, open_usage_rows: 0,
          problems: ['ran (started_at is set) but has no app_runtime usage row'],
        },
      },
      {
        entity_id: 'app_8', org_id: 'org_a', app_instance_id: 'app_8', amount_minor: null,
        detail: {
          status: 'running', started_at: '2026-11-20T09:30:00Z', stopped_at: null, usage_rows: 1, open_usage_rows: 0,
          problems: ['is running (billable) but has no open app_runtime usage row'],
        },
      },
    ]);
  });
});

describe('app_runtime.orphan_open', () => {
  test('reports open usage of stopped or missing instances with the accrued cost', async () => {
    const got = await violations('missing_usage', 'app_runtime.orphan_open');
    expect(
      got.map((v) => ({ entity_id: v.entity_id, app_instance_id: v.app_instance_id, amount_minor: v.amount_minor, currency: v.currency, detail: v.detail })),
    ).toEqual([
      {
        entity_id: 'ur_11', app_instance_id: 'app_10', amount_minor: 40n, currency: 'EUR',
        detail: {
          app_instance_id: 'app_10', instance_found: true, instance_status: 'stopped', instance_stopped_at: '2026-11-20T10:00:00Z',
          start_time: '2026-11-20T08:00:00Z', last_billed_at: '2026-11-20T11:40:00Z',
        },
      },
      {
        entity_id: 'ur_12', app_instance_id: 'app_gone', amount_minor: 25n, currency: 'USD',
        detail: {
          app_instance_id: 'app_gone', instance_found: false, instance_status: null, instance_stopped_at: null,
          start_time: '2026-11-20T10:00:00Z', last_billed_at: '2026-11-20T11:40:00Z',
        },
      },
    ]);
  });
});

describe('events.allocation_status_mismatch', () => {
  test('reports allocations whose latest status event disagrees, ties going to the later lifecycle stage', async () => {
    // alloc_5's tie (release_failed vs releasing at 10:00) and alloc_3's ignored heartbeat agree.
    const got = await violations('events', 'events.allocation_status_mismatch');
    expect(got.map((v) => ({ entity_id: v.entity_id, severity: v.severity, org_id: v.org_id, detail: v.detail }))).toEqual([
      {
        entity_id: 'alloc_1', severity: 'warn', org_id: 'org_a',
        detail: { status: 'active', implied_status: 'releasing', latest_event_id: 'ev_11', latest_event_type: 'provisioning.releasing', latest_event_at: '2026-11-20T11:20:00Z' },
      },
      {
        entity_id: 'alloc_6', severity: 'warn', org_id: 'org_a',
        detail: { status: 'pending', implied_status: 'active', latest_event_id: 'ev_12', latest_event_type: 'provisioning.active', latest_event_at: '2026-11-20T11:00:00Z' },
      },
    ]);
  });
});

describe('events.payment_event_mismatch', () => {
  test('reports credited sessions not announced and failed_reconcile sessions not raised', async () => {
    // ps_7 (completed, never credited), ps_5 (event present) and open ps_3 are not reported.
    const got = await violations('events', 'events.payment_event_mismatch');
    expect(
      got.map((v) => ({
        entity_id: v.entity_id, ledger_entry_id: v.ledger_entry_id, amount_minor: v.amount_minor, currency: v.currency, detail: v.detail,
      })),
    ).toEqual([
      {
        entity_id: 'ps_2', ledger_entry_id: 'le_4', amount_minor: 5000n, currency: 'EUR',
        detail: { status: 'completed', missing_event: 'payments.balance_credited', credit_ledger_entry_id: 'le_4', events_seen: [] },
      },
      {
        entity_id: 'ps_6', ledger_entry_id: null, amount_minor: 2000n, currency: 'EUR',
        detail: { status: 'failed_reconcile', missing_event: 'payments.reconcile_failed', credit_ledger_entry_id: null, events_seen: ['payments.balance_credited'] },
      },
    ]);
  });
});

describe('without the optional tables', () => {
  test.each([
    ['app_runtime.anchor_mismatch', 'app_instances'],
    ['app_runtime.missing_usage', 'app_instances'],
    ['app_runtime.orphan_open', 'app_instances'],
    ['events.allocation_status_mismatch', 'events'],
    ['events.payment_event_mismatch', 'events'],
  ])('%s is skipped, naming %s', (id, table) => {
    const r = result('absent', id);
    expect(r.status).toBe('skipped');
    expect(r.skipped_reason).toBe(`table ${table} not in the export`);
  });

  test.each(['app_runtime.source_attribution', 'app_runtime.control_plane_classification'])(
    '%s reads usage_records only, so it still runs and passes',
    (id) => {
      expect(result('absent', id).status).toBe('pass');
    },
  );
});
