import { DEBITED_AFTER_BALANCE, COMPLETED_AFTER_BALANCE, FRESH_ENTRIES, each, repostEntry, bothKeys, type DriftDefinition } from './kinds.ts';

/** Drift in the ledger: duplicated postings, dangling references, wrong accounts, balances. */
export const LEDGER_DRIFT = {
  duplicate_debit: {
    description: 'a usage debit posted twice (a retry that was never reversed)',
    trips: ['ledger.duplicate_debit', 'usage.debit_mismatch', 'ledger.duplicate_idempotency_key'],
    variants: [
      {
        name: 'retry_with_new_key',
        pool: DEBITED_AFTER_BALANCE,
        expect: `${each('ledger.duplicate_debit')} UNION ALL ${each('usage.debit_mismatch')}`,
        apply: [repostEntry(`l.idempotency_key || ':retry'`)],
      },
      {
        name: 'retry_with_same_key',
        pool: DEBITED_AFTER_BALANCE,
        expect: `${each('ledger.duplicate_debit')} UNION ALL ${each('usage.debit_mismatch')} UNION ALL ${bothKeys}`,
        apply: [repostEntry(`l.idempotency_key`)],
      },
    ],
  },
  duplicate_credit: {
    description: 'a payment credited twice (a replayed provider webhook)',
    trips: ['ledger.duplicate_credit', 'ledger.duplicate_idempotency_key'],
    variants: [
      {
        name: 'webhook_replay_new_key',
        pool: COMPLETED_AFTER_BALANCE,
        expect: each('ledger.duplicate_credit'),
        apply: [repostEntry(`l.idempotency_key || ':replay'`)],
      },
      {
        name: 'webhook_replay_same_key',
        pool: COMPLETED_AFTER_BALANCE,
        expect: `${each('ledger.duplicate_credit')} UNION ALL ${bothKeys}`,
        apply: [repostEntry(`l.idempotency_key`)],
      },
    ],
  },
  duplicate_idempotency_key: {
    description: 'two different usage debits sharing one idempotency key',
    trips: ['ledger.duplicate_idempotency_key'],
    variants: [{
      name: 'key_reused',
      size: 2,
      pool: `SELECT l.ledger_entry_id AS id, l._owner AS owner, l.idempotency_key AS key FROM ledger_entries l
             WHERE l.entry_type = 'usage_debit' AND NOT l._near_miss`,
      expect: each('ledger.duplicate_idempotency_key'),
      // picks pair up as (1, 2), (3, 4), ...: the second of each pair takes the first one's key
      apply: [`UPDATE ledger_entries l SET idempotency_key = a.key
               FROM g_pick b JOIN g_pick a ON a._k = b._k - 1
               WHERE b._k % 2 = 0 AND l.ledger_entry_id = b.id`],
    }],
  },
  dangling_reference: {
    description: 'a ledger entry naming a ledger entry or payment session that does not exist',
    trips: ['ledger.dangling_reference'],
    variants: [
      {
        name: 'reversal_of_missing_entry',
        pool: FRESH_ENTRIES,
        expect: each('ledger.dangling_reference', 'new_le'),
        apply: [`INSERT INTO ledger_entries BY NAME
          SELECT p.new_le AS ledger_entry_id, p.org_id, p.user_id AS requested_by_user_id, 'reversal' AS entry_type,
                 'credit' AS direction, (100 + g_roll('drift.amount', p.new_le, 4900))::BIGINT AS amount_minor, p.currency,
                 p.new_le2 AS reverses_ledger_entry_id, 'reverse:' || p.new_le2 AS idempotency_key,
                 'billing-ops@example.com' AS actor,
                 g_as_of() - g_minutes(60 + g_roll('drift.age', p.new_le, 600)) AS created_at,
                 'corr-fix-' || g_hex('drift.corr', p.new_le) AS correlation_id, p.new_le_n AS _ord, false AS _near_miss
          FROM g_pick p`],
      },
      {
        name: 'credit_for_missing_session',
        pool: FRESH_ENTRIES,
        expect: each('ledger.dangling_reference', 'new_le'),
        apply: [`INSERT INTO ledger_entries BY NAME
          SELECT p.new_le AS ledger_entry_id, p.org_id, p.user_id AS requested_by_user_id, 'payment_credit' AS entry_type,
                 'credit' AS direction, ((10 + g_roll('drift.amount', p.new_le, 491)) * 100)::BIGINT AS amount_minor, p.currency,
                 p.new_ps AS payment_session_id, 'credit:' || p.new_ps AS idempotency_key,
                 g_as_of() - g_minutes(60 + g_roll('drift.age', p.new_le, 600)) AS created_at,
                 'corr-' || g_hex('drift.corr', p.new_le) AS correlation_id, p.new_le_n AS _ord, false AS _near_miss
          FROM g_pick p`],
      },
    ],
  },
  debit_wrong_account: {
    description: 'a usage debit charged to another user or another org than the one that used it',
    trips: ['ledger.debit_wrong_account'],
    variants: (['same_org', 'other_org'] as const).map((name) => ({
      name: `${name}_account`,
      pool: `${DEBITED_AFTER_BALANCE} AND (SELECT count(*) FROM g_accounts) > 1`,
      expect: `SELECT 'ledger.debit_wrong_account' AS invariant_id, le AS entity_id FROM g_pick`,
      apply: [`UPDATE ledger_entries l SET org_id = t.org_id, requested_by_user_id = t.user_id
        FROM (
          SELECT p.le, a.org_id, a.user_id FROM g_pick p
          JOIN usage_records u ON u.usage_record_id = p.id
          JOIN g_accounts a ON NOT (a.org_id = u.org_id AND a.user_id = u.requested_by_user_id)
          QUALIFY row_number() OVER (
            PARTITION BY p.le
            ORDER BY (a.org_id = u.org_id) ${name === 'same_org' ? 'DESC' : 'ASC'}, hash(getvariable('g_seed'), p.le, a.acct_n)) = 1
        ) t
        WHERE l.ledger_entry_id = t.le`],
    })),
  },
  unaudited_adjustment: {
    description: 'a manual adjustment without an actor or without a correlation id',
    trips: ['ledger.unaudited_adjustment'],
    variants: [
      { name: 'no_actor', entryType: 'adjustment_credit', direction: 'credit', actor: `NULL`, correlation: `'corr-adj-' || g_hex('drift.corr', p.new_le)` },
      { name: 'no_correlation_id', entryType: 'adjustment_debit', direction: 'debit', actor: `'finance@example.com'`, correlation: `NULL` },
    ].map((v) => ({
      name: v.name,
      pool: FRESH_ENTRIES,
      expect: each('ledger.unaudited_adjustment', 'new_le'),
      apply: [`INSERT INTO ledger_entries BY NAME
        SELECT p.new_le AS ledger_entry_id, p.org_id, p.user_id AS requested_by_user_id, '${v.entryType}' AS entry_type,
               '${v.direction}' AS direction, ((1 + g_roll('drift.amount', p.new_le, 20)) * 100)::BIGINT AS amount_minor,
               p.currency, 'adj:' || p.new_le AS idempotency_key, ${v.actor} AS actor,
               g_as_of() - g_minutes(60 + g_roll('drift.age', p.new_le, 600)) AS created_at,
               ${v.correlation} AS correlation_id, p.new_le_n AS _ord, false AS _near_miss
        FROM g_pick p`],
    })),
  },
  balance_projection: {
    description: 'a customer-visible balance that drifted from the ledger',
    trips: ['ledger.balance_projection'],
    variants: ([['over', '+'], ['under', '-']] as const).map(([name, sign]) => ({
      name: `${name}stated`,
      pool: `SELECT org_id || '|' || requested_by_user_id || '|' || currency AS id,
                    'account:' || org_id || '|' || requested_by_user_id || '|' || currency AS owner
             FROM balances`,
      expect: each('ledger.balance_projection'),
      apply: [`UPDATE balances b SET balance_minor = b.balance_minor ${sign} (100 + g_roll('drift.amount', p.id, 9900))
               FROM g_pick p WHERE b.org_id || '|' || b.requested_by_user_id || '|' || b.currency = p.id`],
    })),
  },
} as const satisfies Record<string, DriftDefinition>;
