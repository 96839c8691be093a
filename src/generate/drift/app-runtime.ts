import { CLOSED_ALLOCATION_ROWS, CLOSED_APP_ROWS, APP_ROWS, BILLABLE_APPS, APPS_NEVER_RAN, each, openRowsOf, type DriftDefinition } from './kinds.ts';

/** Drift in app instances and their usage. */
export const APP_RUNTIME_DRIFT = {
  source_attribution: {
    description: 'usage attributed to the wrong kind of source',
    trips: ['app_runtime.source_attribution'],
    variants: [
      {
        name: 'allocation_usage_with_app_instance',
        pool: CLOSED_ALLOCATION_ROWS,
        expect: each('app_runtime.source_attribution'),
        apply: [`UPDATE usage_records u SET app_instance_id = p.new_app FROM g_pick p WHERE u.usage_record_id = p.id`],
      },
      {
        name: 'allocation_usage_without_allocation',
        pool: CLOSED_ALLOCATION_ROWS,
        expect: each('app_runtime.source_attribution'),
        apply: [`UPDATE usage_records SET allocation_id = NULL WHERE usage_record_id IN (SELECT id FROM g_pick)`],
      },
      {
        name: 'app_usage_without_instance',
        pool: CLOSED_APP_ROWS,
        expect: each('app_runtime.source_attribution'),
        apply: [`UPDATE usage_records SET app_instance_id = NULL WHERE usage_record_id IN (SELECT id FROM g_pick)`],
      },
    ],
  },
  anchor_mismatch: {
    description: 'app runtime usage whose scope disagrees with its app instance, or whose instance is missing',
    trips: ['app_runtime.anchor_mismatch'],
    variants: ([
      ['project_id', `'p_' || split_part(org_id, '_', 2) || '_9'`],
      ['operating_mode', `CASE operating_mode WHEN 'dedicated' THEN 'shared' ELSE 'dedicated' END`],
      ['control_plane_scope', `CASE control_plane_scope WHEN 'instance' THEN 'project' WHEN 'project' THEN 'org' ELSE 'instance' END`],
      ['runtime_backend', `CASE runtime_backend WHEN 'kubernetes' THEN 'slurm' ELSE 'kubernetes' END`],
    ] as const).map(([column, value]) => ({
      name: `${column}_differs`,
      pool: APP_ROWS,
      expect: each('app_runtime.anchor_mismatch'),
      apply: [`UPDATE usage_records SET ${column} = ${value} WHERE usage_record_id IN (SELECT id FROM g_pick)`],
    })).concat([{
      // closed rows only: an open row of a missing instance would also be an orphan
      name: 'instance_missing',
      pool: CLOSED_APP_ROWS,
      expect: each('app_runtime.anchor_mismatch'),
      apply: [`UPDATE usage_records u SET app_instance_id = p.new_app FROM g_pick p WHERE u.usage_record_id = p.id`],
    }]),
  },
  control_plane_classification: {
    description: 'an app runtime component flagged as control plane when it is not, or the reverse',
    trips: ['app_runtime.control_plane_classification'],
    variants: [{
      name: 'flag_flipped',
      pool: APP_ROWS,
      expect: each('app_runtime.control_plane_classification'),
      apply: [`UPDATE usage_records SET control_plane_component = NOT control_plane_component
               WHERE usage_record_id IN (SELECT id FROM g_pick)`],
    }],
  },
  app_missing_usage: {
    description: 'an app instance that ran without any usage, or is running without an open meter',
    trips: ['app_runtime.missing_usage'],
    variants: [
      {
        name: 'running_without_open_usage',
        pool: BILLABLE_APPS,
        expect: each('app_runtime.missing_usage'),
        apply: [`DELETE FROM usage_records WHERE end_time IS NULL AND app_instance_id IN (SELECT id FROM g_pick)`],
      },
      {
        name: 'ran_without_usage',
        pool: APPS_NEVER_RAN,
        expect: each('app_runtime.missing_usage'),
        apply: [`UPDATE app_instances
                 SET started_at = g_as_of() - g_minutes(2 * 24 * 60 + g_roll('drift.age', app_instance_id, 24 * 60)),
                     stopped_at = g_as_of() - g_minutes(2 * 24 * 60 + g_roll('drift.age', app_instance_id, 24 * 60) - 180)
                 WHERE app_instance_id IN (SELECT id FROM g_pick)`],
      },
    ],
  },
  app_orphan_open: {
    description: 'app runtime meters left open after their instance stopped or failed',
    trips: ['app_runtime.orphan_open'],
    variants: (['stopped', 'failed'] as const).map((status) => ({
      name: `instance_${status}`,
      pool: BILLABLE_APPS,
      expect: openRowsOf('app_runtime.orphan_open', 'app_instance_id'),
      apply: [`UPDATE app_instances SET status = '${status}', stopped_at = g_as_of() - INTERVAL 10 MINUTE
               WHERE app_instance_id IN (SELECT id FROM g_pick)`],
    })),
  },
} as const satisfies Record<string, DriftDefinition>;
