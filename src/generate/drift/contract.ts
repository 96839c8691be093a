import { UNMETERED_ALLOCATIONS, OPEN_ROWS, APPS_NEVER_RAN, UNSETTLED_SESSIONS, each, type DriftDefinition } from './kinds.ts';

/** Drift in rows that break the contract itself. */
export const CONTRACT_DRIFT = {
  invalid_value: {
    description: 'a row with an unknown enum value, a missing required value, a malformed currency or a negative amount',
    trips: ['contract.invalid_value'],
    variants: [
      {
        name: 'unknown_allocation_status',
        pool: UNMETERED_ALLOCATIONS,
        expect: each('contract.invalid_value'),
        apply: [`UPDATE allocations SET status = 'paused' WHERE allocation_id IN (SELECT id FROM g_pick)`],
      },
      {
        name: 'missing_project',
        pool: UNMETERED_ALLOCATIONS,
        expect: each('contract.invalid_value'),
        apply: [`UPDATE allocations SET project_id = NULL WHERE allocation_id IN (SELECT id FROM g_pick)`],
      },
      {
        name: 'currency_not_iso',
        pool: UNSETTLED_SESSIONS,
        expect: each('contract.invalid_value'),
        apply: [`UPDATE payment_sessions SET currency = CASE currency WHEN 'EUR' THEN 'EURO' WHEN 'GBP' THEN 'POUND' ELSE 'DOLLAR' END
                 WHERE payment_session_id IN (SELECT id FROM g_pick)`],
      },
      {
        name: 'negative_accrual',
        pool: OPEN_ROWS,
        expect: each('contract.invalid_value'),
        apply: [`UPDATE usage_records SET accrued_cost_minor = -1 - accrued_cost_minor WHERE usage_record_id IN (SELECT id FROM g_pick)`],
      },
    ],
  },
  duplicate_key: {
    description: 'a row exported twice under the same key',
    trips: ['contract.duplicate_key'],
    variants: ([
      ['allocations', 'allocation_id', UNMETERED_ALLOCATIONS],
      ['payment_sessions', 'payment_session_id', UNSETTLED_SESSIONS],
      ['app_instances', 'app_instance_id', APPS_NEVER_RAN],
      ['events', 'event_id', `SELECT e.event_id AS id, e.payment_session_id AS owner FROM events e
                              JOIN payment_sessions s USING (payment_session_id) WHERE s.status = 'completed'`],
    ] as const).map(([table, key, pool]) => ({
      name: `${table}_row`,
      pool,
      expect: each('contract.duplicate_key'),
      apply: [`INSERT INTO ${table} SELECT * FROM ${table} WHERE ${key} IN (SELECT id FROM g_pick)`],
    })),
  },
} as const satisfies Record<string, DriftDefinition>;
