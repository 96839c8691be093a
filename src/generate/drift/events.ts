import { ACTIVE_ALLOCATIONS, RELEASED_ALLOCATIONS, COMPLETED_SESSIONS, UNSETTLED_SESSIONS, each, type DriftDefinition } from './kinds.ts';

/** Drift in events against the state they describe. */
export const EVENTS_DRIFT = {
  allocation_status_event_mismatch: {
    description: "an allocation whose latest provisioning event implies another status than the allocation's",
    trips: ['events.allocation_status_mismatch'],
    variants: [
      {
        name: 'completion_event_lost',
        pool: RELEASED_ALLOCATIONS,
        expect: each('events.allocation_status_mismatch'),
        apply: [`DELETE FROM events WHERE event_type = 'provisioning.releasing.completed'
                 AND allocation_id IN (SELECT id FROM g_pick)`],
      },
      {
        name: 'release_not_applied',
        pool: ACTIVE_ALLOCATIONS,
        expect: each('events.allocation_status_mismatch'),
        apply: [`INSERT INTO events BY NAME
          SELECT p.new_ev AS event_id, 'provisioning.releasing' AS event_type, g_as_of() - INTERVAL 5 MINUTE AS occurred_at,
                 a.allocation_id, a.correlation_id, a.trace_id, p.new_ev_n AS _ord
          FROM g_pick p JOIN allocations a ON a.allocation_id = p.id`],
      },
    ],
  },
  payment_event_mismatch: {
    description: 'a payment outcome the event bus never announced',
    trips: ['events.payment_event_mismatch', 'payments.failed_reconcile'],
    variants: [
      {
        name: 'balance_credited_event_lost',
        pool: COMPLETED_SESSIONS,
        expect: each('events.payment_event_mismatch'),
        apply: [`DELETE FROM events WHERE payment_session_id IN (SELECT id FROM g_pick)`],
      },
      {
        name: 'reconcile_failed_silently',
        pool: UNSETTLED_SESSIONS,
        expect: `${each('events.payment_event_mismatch')} UNION ALL ${each('payments.failed_reconcile')}`,
        apply: [`UPDATE payment_sessions SET status = 'failed_reconcile' WHERE payment_session_id IN (SELECT id FROM g_pick)`],
      },
    ],
  },
} as const satisfies Record<string, DriftDefinition>;
