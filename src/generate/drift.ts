import type { Db } from '../db.ts';
import { InputError } from '../errors.ts';

/**
 * Drift: deliberate defects injected into a clean world, each recorded with exactly the
 * (invariant_id, entity_id) violations CONTRACT.md §3 says it produces.
 *
 * Every injection picks its entities (seeded) among those no earlier injection touched: a pick
 * claims its *owner* (the allocation, app instance, payment session or balance account that all
 * related rows hang off), and later picks skip claimed owners. Money-moving injections only touch
 * ledger entries created after the balances' `as_of`, so they never disturb
 * `ledger.balance_projection`; only `balance_projection` itself does. Together that keeps every
 * injection's footprint exactly what its definition records.
 */

/**
 * One way of producing a kind of drift. The SQL runs in this order, all reading `g_pick`, the
 * chosen candidates: `pool` offers candidates (columns `id`, `owner`, plus anything the other
 * steps need); `expect` returns `(invariant_id, entity_id)` of every violation the injection will
 * cause, computed before the change; `apply` makes the change. `g_pick` also offers fresh,
 * never-used ids (`new_ur`, `new_le`, `new_le2`, `new_ev`, `new_ev2`, `new_ps`, `new_app` and
 * their numbers `*_n`): a fresh id that is referenced but never inserted is a dangling reference.
 */
interface Variant {
  readonly name: string;
  /** Entities one injection uses (2 when it pairs two rows). */
  readonly size?: number;
  readonly pool: string;
  readonly expect: string;
  readonly apply: readonly string[];
}

interface DriftDefinition {
  readonly description: string;
  /** Every invariant an injection of this kind may trip (each variant's `expect` stays within it). */
  readonly trips: readonly string[];
  readonly variants: readonly Variant[];
}

// ---------------------------------------------------------------------------------------------
// Candidate pools. Claims make every candidate an otherwise clean entity.

const BILLABLE = `('active', 'releasing', 'release_failed')`;
const OPEN_ALLOCATIONS = `SELECT a.allocation_id AS id, a.allocation_id AS owner FROM allocations a
  WHERE a.status IN ${BILLABLE}
    AND EXISTS (SELECT 1 FROM usage_records u WHERE u.allocation_id = a.allocation_id AND u.end_time IS NULL)`;
const ACTIVE_ALLOCATIONS = `${OPEN_ALLOCATIONS} AND a.status = 'active'`;
const RELEASED_ALLOCATIONS = `SELECT allocation_id AS id, allocation_id AS owner, released_at FROM allocations WHERE status = 'released'`;
const UNMETERED_ALLOCATIONS = `SELECT allocation_id AS id, allocation_id AS owner FROM allocations
  WHERE status IN ('pending', 'provisioning', 'failed')`;
const CLOSED_ROWS = `SELECT usage_record_id AS id, _owner AS owner, usage_source FROM usage_records WHERE end_time IS NOT NULL`;
const CLOSED_ALLOCATION_ROWS = `SELECT * FROM (${CLOSED_ROWS}) WHERE usage_source = 'allocation'`;
const CLOSED_APP_ROWS = `SELECT * FROM (${CLOSED_ROWS}) WHERE usage_source = 'app_runtime'`;
const OPEN_ROWS = `SELECT usage_record_id AS id, _owner AS owner, start_time FROM usage_records WHERE end_time IS NULL`;
const APP_ROWS = `SELECT usage_record_id AS id, _owner AS owner FROM usage_records WHERE usage_source = 'app_runtime'`;
/** Debited closed rows whose debit the balances do not cover yet. */
const DEBITED_AFTER_BALANCE = `SELECT u.usage_record_id AS id, u._owner AS owner, l.ledger_entry_id AS le, l.currency
  FROM usage_records u
  JOIN ledger_entries l ON l.usage_record_id = u.usage_record_id AND l.entry_type = 'usage_debit'
  WHERE u.end_time IS NOT NULL AND u.accrued_cost_minor > 0 AND NOT u._near_miss
    AND l.created_at > g_balance_as_of()`;
const BILLABLE_APPS = `SELECT a.app_instance_id AS id, a.app_instance_id AS owner FROM app_instances a
  WHERE a.status IN ('running', 'stopping')
    AND EXISTS (SELECT 1 FROM usage_records u WHERE u.app_instance_id = a.app_instance_id AND u.end_time IS NULL)`;
const APPS_NEVER_RAN = `SELECT app_instance_id AS id, app_instance_id AS owner FROM app_instances
  WHERE status IN ('stopped', 'failed') AND started_at IS NULL`;
const COMPLETED_SESSIONS = `SELECT s.payment_session_id AS id, s.payment_session_id AS owner, l.ledger_entry_id AS le, l.created_at AS credited_at
  FROM payment_sessions s JOIN ledger_entries l ON l.ledger_entry_id = s.ledger_entry_id
  WHERE s.status = 'completed'`;
const COMPLETED_AFTER_BALANCE = `SELECT * FROM (${COMPLETED_SESSIONS}) WHERE credited_at > g_balance_as_of()`;
const UNSETTLED_SESSIONS = `SELECT payment_session_id AS id, payment_session_id AS owner, created_at FROM payment_sessions
  WHERE status IN ('open', 'expired', 'failed')`;
/** New ledger entries on a seeded account: nothing existing is claimed, so any count can be injected. */
const FRESH_ENTRIES = `SELECT 'fresh_' || i AS id, 'fresh:' || $tag || ':' || i AS owner, a.org_id, a.user_id, a.currency
  FROM range($n) r(i)
  JOIN g_accounts a ON a.acct_n = g_roll($tag, i, (SELECT count(*) FROM g_accounts))`;

// ---------------------------------------------------------------------------------------------
// Recording helpers.

const each = (invariant: string, column = 'id'): string => `SELECT '${invariant}' AS invariant_id, ${column} AS entity_id FROM g_pick`;
const openRowsOf = (invariant: string, ownerColumn: string): string =>
  `SELECT '${invariant}' AS invariant_id, u.usage_record_id AS entity_id
   FROM usage_records u JOIN g_pick p ON u.${ownerColumn} = p.id WHERE u.end_time IS NULL`;

/** Copies a ledger entry as a second posting two minutes later, with `keyExpr` as its idempotency key. */
const repostEntry = (keyExpr: string): string => `INSERT INTO ledger_entries BY NAME
  SELECT l.* REPLACE (p.new_le AS ledger_entry_id, ${keyExpr} AS idempotency_key,
                      l.created_at + INTERVAL 2 MINUTE AS created_at, p.new_le_n AS _ord)
  FROM ledger_entries l JOIN g_pick p ON l.ledger_entry_id = p.le`;
const bothKeys = `SELECT 'ledger.duplicate_idempotency_key' AS invariant_id, le AS entity_id FROM g_pick
  UNION ALL SELECT 'ledger.duplicate_idempotency_key', new_le FROM g_pick`;

const DEFINITIONS = {
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

export type DriftKind = keyof typeof DEFINITIONS;

/** Every drift kind, in the order injections are applied. */
export const DRIFT_KINDS = Object.keys(DEFINITIONS) as readonly DriftKind[];

/** What each kind does and which invariants it may trip, for `--help`, docs and tests. */
export const DRIFT_CATALOG: Readonly<Record<DriftKind, { readonly description: string; readonly trips: readonly string[] }>> =
  DEFINITIONS;

export function isDriftKind(name: string): name is DriftKind {
  return Object.hasOwn(DEFINITIONS, name);
}

export interface ExpectedViolation {
  invariant_id: string;
  entity_id: string;
  kind: DriftKind;
}

/** Id prefix → the table whose `_ord` numbers its ids. */
const ID_TABLES = {
  ur: 'usage_records',
  le: 'ledger_entries',
  ev: 'events',
  ps: 'payment_sessions',
  app: 'app_instances',
} as const;
type IdPrefix = keyof typeof ID_TABLES;

/**
 * Applies `inject` (kind → count) to the clean world in `db` and returns the violations it
 * causes, unsorted. Throws an InputError when the world is too small for the requested counts.
 */
export async function injectDrift(db: Db, inject: Partial<Record<DriftKind, number>>): Promise<ExpectedViolation[]> {
  await db.run(`CREATE TABLE g_claimed (owner VARCHAR)`);
  // alloc_1's open row carries the latest timestamp of the exports, which is the audit's as_of
  await db.run(`INSERT INTO g_claimed VALUES ('alloc_1')`);
  await db.run(`CREATE TABLE g_expected (invariant_id VARCHAR, entity_id VARCHAR, kind VARCHAR)`);

  // Fresh ids continue each table's numbering; ids drawn but never inserted are, by construction, dangling.
  const next = {} as Record<IdPrefix, bigint>;
  for (const [prefix, table] of Object.entries(ID_TABLES) as [IdPrefix, string][]) {
    next[prefix] = (await db.one<{ n: bigint | null }>(`SELECT max(_ord) AS n FROM ${table}`))?.n ?? 0n;
  }

  for (const kind of DRIFT_KINDS) {
    const count = inject[kind] ?? 0;
    if (count === 0) continue;
    const variants: readonly Variant[] = DEFINITIONS[kind].variants;
    // Seeded rotation, so every variant gets exercised across seeds even with count 1.
    const start = Number((await db.one<{ r: bigint }>(`SELECT g_roll('drift.variant', $kind, $n) AS r`, { kind, n: variants.length }))?.r ?? 0n);
    const order = [...variants.slice(start), ...variants.slice(0, start)];
    let remaining = count;
    // A variant whose pool runs dry hands its share to the others; the second pass takes what is left.
    for (const pass of [0, 1]) {
      for (const [i, variant] of order.entries()) {
        if (remaining === 0) break;
        const want = pass === 0 ? Math.ceil(remaining / (order.length - i)) : remaining;
        remaining -= await applyVariant(db, kind, variant, want, next);
      }
    }
    if (remaining > 0) {
      throw new InputError(
        `generate: cannot inject ${count} × ${kind}: only ${count - remaining} otherwise clean entities are left for it; ` +
          `generate more usage rows or tenants, or inject fewer`,
      );
    }
  }
  return db.all<ExpectedViolation>(`SELECT invariant_id, entity_id, kind FROM g_expected`);
}

/** Picks up to `want` injections' worth of candidates, records and applies them; returns how many it made. */
async function applyVariant(db: Db, kind: DriftKind, variant: Variant, want: number, next: Record<IdPrefix, bigint>): Promise<number> {
  const size = variant.size ?? 1;
  const tag = `${kind}/${variant.name}`;
  await db.run(
    `CREATE OR REPLACE TABLE g_pick AS
     WITH pool AS (${variant.pool}),
     unclaimed AS (
       SELECT pool.*, hash(getvariable('g_seed'), $tag, pool.id) AS _h FROM pool
       WHERE NOT EXISTS (SELECT 1 FROM g_claimed c WHERE c.owner = pool.owner)
     ),
     one_per_owner AS (SELECT * FROM unclaimed QUALIFY row_number() OVER (PARTITION BY owner ORDER BY _h, id) = 1),
     ranked AS (SELECT *, row_number() OVER (ORDER BY _h, id) AS _k FROM one_per_owner)
     SELECT ranked.*,
            $ur + _k AS new_ur_n, 'ur_' || ($ur + _k) AS new_ur,
            $le + 2 * _k - 1 AS new_le_n, 'le_' || ($le + 2 * _k - 1) AS new_le,
            $le + 2 * _k AS new_le2_n, 'le_' || ($le + 2 * _k) AS new_le2,
            $ev + 2 * _k - 1 AS new_ev_n, 'ev_' || ($ev + 2 * _k - 1) AS new_ev,
            $ev + 2 * _k AS new_ev2_n, 'ev_' || ($ev + 2 * _k) AS new_ev2,
            'ps_' || ($ps + _k) AS new_ps, 'app_' || ($app + _k) AS new_app
     FROM ranked WHERE _k <= $n`,
    { tag, n: want * size, ur: next.ur, le: next.le, ev: next.ev, ps: next.ps, app: next.app },
  );
  const picked = Number((await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM g_pick`))?.n ?? 0n);
  const made = Math.floor(picked / size);
  if (made === 0) return 0;
  // An unpaired last pick of a pair variant is not used, so it is not claimed either.
  await db.run(`DELETE FROM g_pick WHERE _k > $n`, { n: made * size });
  await db.run(`INSERT INTO g_claimed SELECT owner FROM g_pick`);
  await db.run(`INSERT INTO g_expected SELECT invariant_id, entity_id, $kind FROM (${variant.expect})`, { kind });
  for (const sql of variant.apply) await db.run(sql);
  const n = BigInt(made * size);
  next.ur += n;
  next.le += 2n * n;
  next.ev += 2n * n;
  next.ps += n;
  next.app += n;
  return made;
}
