// What a drift kind is, and the candidate pools and recording helpers the families share.

/**
 * One way of producing a kind of drift. The SQL runs in this order, all reading `g_pick`, the
 * chosen candidates: `pool` offers candidates (columns `id`, `owner`, plus anything the other
 * steps need); `expect` returns `(invariant_id, entity_id)` of every violation the injection will
 * cause, computed before the change; `apply` makes the change. `g_pick` also offers fresh,
 * never-used ids (`new_ur`, `new_le`, `new_le2`, `new_ev`, `new_ev2`, `new_ps`, `new_app` and
 * their numbers `*_n`): a fresh id that is referenced but never inserted is a dangling reference.
 */
export interface Variant {
  readonly name: string;
  /** Entities one injection uses (2 when it pairs two rows). */
  readonly size?: number;
  readonly pool: string;
  readonly expect: string;
  readonly apply: readonly string[];
}

export interface DriftDefinition {
  readonly description: string;
  /** Every invariant an injection of this kind may trip (each variant's `expect` stays within it). */
  readonly trips: readonly string[];
  readonly variants: readonly Variant[];
}

// ---------------------------------------------------------------------------------------------
// Candidate pools. Claims make every candidate an otherwise clean entity.

export const BILLABLE = `('active', 'releasing', 'release_failed')`;
export const OPEN_ALLOCATIONS = `SELECT a.allocation_id AS id, a.allocation_id AS owner FROM allocations a
  WHERE a.status IN ${BILLABLE}
    AND EXISTS (SELECT 1 FROM usage_records u WHERE u.allocation_id = a.allocation_id AND u.end_time IS NULL)`;
export const ACTIVE_ALLOCATIONS = `${OPEN_ALLOCATIONS} AND a.status = 'active'`;
export const RELEASED_ALLOCATIONS = `SELECT allocation_id AS id, allocation_id AS owner, released_at FROM allocations WHERE status = 'released'`;
export const UNMETERED_ALLOCATIONS = `SELECT allocation_id AS id, allocation_id AS owner FROM allocations
  WHERE status IN ('pending', 'provisioning', 'failed')`;
export const CLOSED_ROWS = `SELECT usage_record_id AS id, _owner AS owner, usage_source FROM usage_records WHERE end_time IS NOT NULL`;
export const CLOSED_ALLOCATION_ROWS = `SELECT * FROM (${CLOSED_ROWS}) WHERE usage_source = 'allocation'`;
export const CLOSED_APP_ROWS = `SELECT * FROM (${CLOSED_ROWS}) WHERE usage_source = 'app_runtime'`;
export const OPEN_ROWS = `SELECT usage_record_id AS id, _owner AS owner, start_time FROM usage_records WHERE end_time IS NULL`;
export const APP_ROWS = `SELECT usage_record_id AS id, _owner AS owner FROM usage_records WHERE usage_source = 'app_runtime'`;
/** Debited closed rows whose debit the balances do not cover yet. */
export const DEBITED_AFTER_BALANCE = `SELECT u.usage_record_id AS id, u._owner AS owner, l.ledger_entry_id AS le, l.currency
  FROM usage_records u
  JOIN ledger_entries l ON l.usage_record_id = u.usage_record_id AND l.entry_type = 'usage_debit'
  WHERE u.end_time IS NOT NULL AND u.accrued_cost_minor > 0 AND NOT u._near_miss
    AND l.created_at > g_balance_as_of()`;
export const BILLABLE_APPS = `SELECT a.app_instance_id AS id, a.app_instance_id AS owner FROM app_instances a
  WHERE a.status IN ('running', 'stopping')
    AND EXISTS (SELECT 1 FROM usage_records u WHERE u.app_instance_id = a.app_instance_id AND u.end_time IS NULL)`;
export const APPS_NEVER_RAN = `SELECT app_instance_id AS id, app_instance_id AS owner FROM app_instances
  WHERE status IN ('stopped', 'failed') AND started_at IS NULL`;
export const COMPLETED_SESSIONS = `SELECT s.payment_session_id AS id, s.payment_session_id AS owner, l.ledger_entry_id AS le, l.created_at AS credited_at
  FROM payment_sessions s JOIN ledger_entries l ON l.ledger_entry_id = s.ledger_entry_id
  WHERE s.status = 'completed'`;
export const COMPLETED_AFTER_BALANCE = `SELECT * FROM (${COMPLETED_SESSIONS}) WHERE credited_at > g_balance_as_of()`;
export const UNSETTLED_SESSIONS = `SELECT payment_session_id AS id, payment_session_id AS owner, created_at FROM payment_sessions
  WHERE status IN ('open', 'expired', 'failed')`;
/** New ledger entries on a seeded account: nothing existing is claimed, so any count can be injected. */
export const FRESH_ENTRIES = `SELECT 'fresh_' || i AS id, 'fresh:' || $tag || ':' || i AS owner, a.org_id, a.user_id, a.currency
  FROM range($n) r(i)
  JOIN g_accounts a ON a.acct_n = g_roll($tag, i, (SELECT count(*) FROM g_accounts))`;

// ---------------------------------------------------------------------------------------------
// Recording helpers.

export const each = (invariant: string, column = 'id'): string => `SELECT '${invariant}' AS invariant_id, ${column} AS entity_id FROM g_pick`;
export const openRowsOf = (invariant: string, ownerColumn: string): string =>
  `SELECT '${invariant}' AS invariant_id, u.usage_record_id AS entity_id
   FROM usage_records u JOIN g_pick p ON u.${ownerColumn} = p.id WHERE u.end_time IS NULL`;

/** Copies a ledger entry as a second posting two minutes later, with `keyExpr` as its idempotency key. */
export const repostEntry = (keyExpr: string): string => `INSERT INTO ledger_entries BY NAME
  SELECT l.* REPLACE (p.new_le AS ledger_entry_id, ${keyExpr} AS idempotency_key,
                      l.created_at + INTERVAL 2 MINUTE AS created_at, p.new_le_n AS _ord)
  FROM ledger_entries l JOIN g_pick p ON l.ledger_entry_id = p.le`;
export const bothKeys = `SELECT 'ledger.duplicate_idempotency_key' AS invariant_id, le AS entity_id FROM g_pick
  UNION ALL SELECT 'ledger.duplicate_idempotency_key', new_le FROM g_pick`;
