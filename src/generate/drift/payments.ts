import { COMPLETED_SESSIONS, COMPLETED_AFTER_BALANCE, UNSETTLED_SESSIONS, each, type DriftDefinition } from './kinds.ts';

/** Drift in payment sessions and their credits. */
export const PAYMENTS_DRIFT = {
  failed_reconcile: {
    description: 'a payment session stuck in failed_reconcile (the provider took the money, the ledger did not)',
    trips: ['payments.failed_reconcile'],
    variants: [{
      name: 'reconcile_failed',
      pool: UNSETTLED_SESSIONS,
      expect: each('payments.failed_reconcile'),
      apply: [
        `UPDATE payment_sessions SET status = 'failed_reconcile' WHERE payment_session_id IN (SELECT id FROM g_pick)`,
        `INSERT INTO events BY NAME
         SELECT p.new_ev AS event_id, 'payments.reconcile_failed' AS event_type, p.created_at + INTERVAL 5 MINUTE AS occurred_at,
                s.payment_session_id, s.correlation_id, s.trace_id, p.new_ev_n AS _ord
         FROM g_pick p JOIN payment_sessions s ON s.payment_session_id = p.id`,
      ],
    }],
  },
  completed_without_credit: {
    description: 'a completed payment session whose credit is missing or does not match it',
    trips: ['payments.completed_without_credit'],
    variants: [
      {
        name: 'credit_missing',
        pool: COMPLETED_AFTER_BALANCE,
        expect: each('payments.completed_without_credit'),
        apply: [
          `DELETE FROM ledger_entries WHERE ledger_entry_id IN (SELECT le FROM g_pick)`,
          `UPDATE payment_sessions SET ledger_entry_id = NULL WHERE payment_session_id IN (SELECT id FROM g_pick)`,
        ],
      },
      {
        name: 'amount_differs',
        pool: COMPLETED_SESSIONS,
        expect: each('payments.completed_without_credit'),
        apply: [`UPDATE payment_sessions SET amount_minor = amount_minor + 500 WHERE payment_session_id IN (SELECT id FROM g_pick)`],
      },
      {
        name: 'names_missing_entry',
        pool: COMPLETED_SESSIONS,
        expect: each('payments.completed_without_credit'),
        apply: [`UPDATE payment_sessions s SET ledger_entry_id = p.new_le FROM g_pick p WHERE s.payment_session_id = p.id`],
      },
    ],
  },
} as const satisfies Record<string, DriftDefinition>;
