import { OPEN_ALLOCATIONS, ACTIVE_ALLOCATIONS, RELEASED_ALLOCATIONS, CLOSED_ROWS, OPEN_ROWS, DEBITED_AFTER_BALANCE, BILLABLE_APPS, each, openRowsOf, type DriftDefinition } from './kinds.ts';

/** Drift in usage records: missing, orphaned, duplicated, unbilled, mis-debited. */
export const USAGE_DRIFT = {
  missing_open_usage: {
    description: 'a billable allocation whose open usage row is gone (metering stopped while the GPU is held)',
    trips: ['usage.missing_open'],
    variants: [{
      name: 'open_row_deleted',
      pool: OPEN_ALLOCATIONS,
      expect: each('usage.missing_open'),
      apply: [`DELETE FROM usage_records WHERE end_time IS NULL AND allocation_id IN (SELECT id FROM g_pick)`],
    }],
  },
  orphan_open_usage: {
    description: 'allocation usage still metering after the allocation was released',
    trips: ['usage.orphan_open'],
    variants: [
      {
        name: 'meter_restarted_after_release',
        pool: RELEASED_ALLOCATIONS,
        expect: each('usage.orphan_open', 'new_ur'),
        apply: [`INSERT INTO usage_records BY NAME
          SELECT u.* REPLACE (p.new_ur AS usage_record_id, p.released_at + INTERVAL 5 MINUTE AS start_time,
                              NULL AS end_time, g_as_of() - g_minutes(g_roll('drift.lb', p.id, 20)) AS last_billed_at,
                              p.new_ur_n AS _ord)
          FROM usage_records u JOIN g_pick p ON u.allocation_id = p.id WHERE u._last`],
      },
      {
        name: 'released_without_closing_meter',
        pool: ACTIVE_ALLOCATIONS,
        expect: openRowsOf('usage.orphan_open', 'allocation_id'),
        apply: [
          `UPDATE allocations SET status = 'released', released_at = g_as_of() - INTERVAL 10 MINUTE,
             updated_at = g_as_of() - INTERVAL 10 MINUTE
           WHERE allocation_id IN (SELECT id FROM g_pick)`,
          `INSERT INTO events BY NAME
           SELECT p.new_ev AS event_id, 'provisioning.releasing' AS event_type, g_as_of() - INTERVAL 12 MINUTE AS occurred_at,
                  a.allocation_id, a.correlation_id, a.trace_id, p.new_ev_n AS _ord
           FROM g_pick p JOIN allocations a ON a.allocation_id = p.id
           UNION ALL
           SELECT p.new_ev2, 'provisioning.releasing.completed', g_as_of() - INTERVAL 10 MINUTE,
                  a.allocation_id, a.correlation_id, a.trace_id, p.new_ev2_n
           FROM g_pick p JOIN allocations a ON a.allocation_id = p.id`,
        ],
      },
    ],
  },
  duplicate_open_usage: {
    description: 'a second meter opened for an allocation, or for one component of an app instance',
    trips: ['usage.duplicate_open'],
    variants: [
      {
        name: 'allocation',
        pool: OPEN_ALLOCATIONS,
        expect: `${openRowsOf('usage.duplicate_open', 'allocation_id')} UNION ALL ${each('usage.duplicate_open', 'new_ur')}`,
        apply: [`INSERT INTO usage_records BY NAME
          SELECT u.* REPLACE (p.new_ur AS usage_record_id, p.new_ur_n AS _ord)
          FROM usage_records u JOIN g_pick p ON u.allocation_id = p.id WHERE u.end_time IS NULL`],
      },
      {
        name: 'app_component',
        pool: BILLABLE_APPS,
        expect: `SELECT 'usage.duplicate_open' AS invariant_id, u.usage_record_id AS entity_id
                 FROM usage_records u JOIN g_pick p ON u.app_instance_id = p.id
                 WHERE u.end_time IS NULL AND u.component = 'worker'
                 UNION ALL ${each('usage.duplicate_open', 'new_ur')}`,
        apply: [`INSERT INTO usage_records BY NAME
          SELECT u.* REPLACE (p.new_ur AS usage_record_id, p.new_ur_n AS _ord)
          FROM usage_records u JOIN g_pick p ON u.app_instance_id = p.id
          WHERE u.end_time IS NULL AND u.component = 'worker'`],
      },
    ],
  },
  unbilled_closed: {
    description: 'a closed, costed usage row whose debit was never posted',
    trips: ['usage.unbilled_closed'],
    variants: [{
      name: 'debit_missing',
      pool: DEBITED_AFTER_BALANCE,
      expect: each('usage.unbilled_closed'),
      apply: [`DELETE FROM ledger_entries WHERE ledger_entry_id IN (SELECT le FROM g_pick)`],
    }],
  },
  debit_mismatch: {
    description: 'a usage debit posted for another amount or in another currency than the usage accrued',
    trips: ['usage.debit_mismatch'],
    variants: [
      {
        name: 'amount',
        pool: DEBITED_AFTER_BALANCE,
        expect: each('usage.debit_mismatch'),
        apply: [`UPDATE ledger_entries l SET amount_minor = l.amount_minor + 100 + g_roll('drift.amount', p.le, 900)
                 FROM g_pick p WHERE l.ledger_entry_id = p.le`],
      },
      {
        name: 'currency',
        pool: DEBITED_AFTER_BALANCE,
        expect: each('usage.debit_mismatch'),
        apply: [`UPDATE ledger_entries l
                 SET currency = CASE p.currency WHEN 'USD' THEN 'EUR' WHEN 'EUR' THEN 'GBP' ELSE 'USD' END
                 FROM g_pick p WHERE l.ledger_entry_id = p.le`],
      },
    ],
  },
  lifecycle: {
    description: 'a usage row whose interval or billing watermark is impossible',
    trips: ['usage.lifecycle'],
    variants: [
      {
        name: 'ends_before_start',
        pool: CLOSED_ROWS,
        expect: each('usage.lifecycle'),
        apply: [`UPDATE usage_records SET end_time = start_time - INTERVAL 10 MINUTE
                 WHERE usage_record_id IN (SELECT id FROM g_pick)`],
      },
      {
        name: 'billed_past_end',
        pool: CLOSED_ROWS,
        expect: each('usage.lifecycle'),
        apply: [`UPDATE usage_records SET last_billed_at = end_time + INTERVAL 15 MINUTE
                 WHERE usage_record_id IN (SELECT id FROM g_pick)`],
      },
    ],
  },
  billing_lag: {
    description: 'an open meter the billing worker stopped accruing over an hour ago',
    trips: ['usage.billing_lag'],
    variants: [
      {
        name: 'stalled',
        pool: `SELECT * FROM (${OPEN_ROWS}) WHERE start_time <= g_as_of() - INTERVAL 75 MINUTE`,
        expect: each('usage.billing_lag'),
        apply: [`UPDATE usage_records SET last_billed_at = start_time, accrued_cost_minor = 0
                 WHERE usage_record_id IN (SELECT id FROM g_pick)`],
      },
      {
        name: 'never_billed',
        pool: `SELECT * FROM (${OPEN_ROWS}) WHERE start_time <= g_as_of() - INTERVAL 75 MINUTE`,
        expect: each('usage.billing_lag'),
        apply: [`UPDATE usage_records SET last_billed_at = NULL, accrued_cost_minor = 0
                 WHERE usage_record_id IN (SELECT id FROM g_pick)`],
      },
    ],
  },
  outside_window: {
    description: 'allocation usage metered well before activation or well after release',
    trips: ['usage.outside_allocation_window'],
    variants: [
      {
        name: 'starts_before_activation',
        pool: `SELECT u.usage_record_id AS id, u._owner AS owner, a.activated_at FROM usage_records u
               JOIN allocations a ON a.allocation_id = u.allocation_id
               WHERE u._k = 0 AND u.end_time IS NOT NULL`,
        expect: each('usage.outside_allocation_window'),
        apply: [`UPDATE usage_records u SET start_time = p.activated_at - INTERVAL 30 MINUTE
                 FROM g_pick p WHERE u.usage_record_id = p.id`],
      },
      {
        name: 'ends_after_release',
        pool: `SELECT u.usage_record_id AS id, u._owner AS owner, a.released_at FROM usage_records u
               JOIN allocations a ON a.allocation_id = u.allocation_id
               WHERE u._last AND a.status = 'released'`,
        expect: each('usage.outside_allocation_window'),
        apply: [`UPDATE usage_records u SET end_time = p.released_at + INTERVAL 30 MINUTE
                 FROM g_pick p WHERE u.usage_record_id = p.id`],
      },
    ],
  },
} as const satisfies Record<string, DriftDefinition>;
