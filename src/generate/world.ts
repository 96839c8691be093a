import type { Db } from '../db.ts';
import { InputError } from '../errors.ts';

/**
 * The clean synthetic world: seven tables named and typed as in CONTRACT.md §1, in which every
 * invariant of §3 holds. Everything is computed inside DuckDB from `range(n)` and `hash()` of the
 * seed, so a million usage rows cost a few SQL statements and no JavaScript loop.
 *
 * Besides the canonical columns, each table keeps a few `_`-prefixed helper columns for the drift
 * injector (`_ord`: export order and id number; `_owner`: the allocation or app instance a usage
 * row or debit belongs to; `_near_miss`, `_k`, `_last`). The exporter writes canonical columns only.
 *
 * Times are whole minutes before `as_of`; the balances' `as_of` sits 30 seconds off that grid, so
 * no ledger entry ever ties with it and "up to its as_of" cannot be read two ways. The world (and
 * the drift recorded against it) assumes the audit's default thresholds: a billing lag of 60
 * minutes and an allocation-window tolerance of 5 minutes.
 */
export interface WorldParams {
  readonly seed: number;
  readonly tenants: number;
  readonly usageRows: number;
  /** ISO-8601 instant; the latest timestamp of the exports. */
  readonly asOf: string;
}

/** Below this the pools of candidate entities for drift get too thin to be useful. */
export const MIN_USAGE_ROWS = 50;

/** Share of usage rows metered for app runtimes rather than allocations. */
const APP_SHARE = 0.25;
/** Mean usage rows per app instance (2 components × 2.5 rows × 80% that ran). */
const APP_ROWS_PER_INSTANCE = 4;

const SETUP = [
  // Named, deterministic pseudo-randomness: the same (tag, key) always rolls the same number
  // for one seed, whatever order rows are produced in.
  `CREATE OR REPLACE MACRO g_roll(tag, key, n) AS (hash(getvariable('g_seed'), tag, key) % n::UBIGINT)::BIGINT`,
  `CREATE OR REPLACE MACRO g_as_of() AS getvariable('g_as_of')`,
  `CREATE OR REPLACE MACRO g_balance_as_of() AS getvariable('g_balance_as_of')`,
  `CREATE OR REPLACE MACRO g_minutes(n) AS to_minutes((n)::BIGINT)`,
  `CREATE OR REPLACE MACRO g_hex(tag, key) AS printf('%016x', hash(getvariable('g_seed'), tag, key))`,
];

const ORGS = [
  `CREATE TABLE g_orgs AS
   SELECT o AS org_n, 'org_' || (o + 1) AS org_id,
          ['USD', 'EUR', 'GBP'][1 + g_roll('org.currency', o, 3)] AS currency,
          1 + g_roll('org.users', o, 3) AS n_users,
          1 + g_roll('org.projects', o, 2) AS n_projects
   FROM range(getvariable('g_tenants')) t(o)`,
  // An account is what a balance is kept for: (org, user, currency); each org bills in one currency.
  `CREATE TABLE g_accounts AS
   SELECT row_number() OVER (ORDER BY org_n, user_n) - 1 AS acct_n, org_n, org_id, currency, user_n,
          'u_' || (org_n + 1) || '_' || (user_n + 1) AS user_id
   FROM (SELECT *, unnest(range(n_users)) AS user_n FROM g_orgs)`,
];

const APPS = `CREATE TABLE g_apps AS
WITH b AS (
  SELECT i AS app_n,
         g_roll('app.org', i, getvariable('g_tenants')) AS org_n,
         g_roll('app.status', i, 100) AS st,
         ['ray', 'jupyter', 'spark'][1 + g_roll('app.type', i, 3)] AS app_type,
         1 + g_roll('app.rows', i, 4) AS m,
         30 + g_roll('app.open_age', i, 120) AS open_age,
         120 + g_roll('app.stop_age', i, 6 * 24 * 60) AS stop_age
  FROM range($apps) t(i)
)
SELECT b.app_n, b.app_n + 1 AS _ord, 'app_' || (b.app_n + 1) AS app_instance_id,
       o.org_id, o.currency,
       'p_' || (o.org_n + 1) || '_' || (1 + g_roll('app.project', b.app_n, o.n_projects)) AS project_id,
       'u_' || (o.org_n + 1) || '_' || (1 + g_roll('app.user', b.app_n, o.n_users)) AS user_id,
       b.app_type,
       ['dedicated', 'shared'][1 + g_roll('app.mode', b.app_n, 2)] AS operating_mode,
       ['instance', 'project', 'org'][1 + g_roll('app.scope', b.app_n, 3)] AS control_plane_scope,
       CASE b.app_type WHEN 'ray' THEN ['ray', 'kubernetes'][1 + g_roll('app.backend', b.app_n, 2)]
                       ELSE ['kubernetes', 'slurm'][1 + g_roll('app.backend', b.app_n, 2)] END AS runtime_backend,
       CASE WHEN st < 40 THEN 'running' WHEN st < 50 THEN 'stopping' WHEN st < 88 THEN 'stopped'
            WHEN st < 94 THEN 'failed' ELSE 'provisioning' END AS status,
       st < 80 AS ran,
       st < 50 AS billable,
       CASE b.app_type WHEN 'ray' THEN 'head' WHEN 'jupyter' THEN 'scheduler' ELSE 'controller' END AS cp_component,
       CASE WHEN st < 50 THEN g_as_of() - g_minutes(open_age + (m - 1) * 60)
            WHEN st < 80 THEN g_as_of() - g_minutes(stop_age + m * 60) END AS started_at,
       CASE WHEN st >= 50 AND st < 80 THEN g_as_of() - g_minutes(stop_age) END AS stopped_at,
       b.m, b.open_age,
       'corr-' || g_hex('app.corr', b.app_n) AS correlation_id,
       CASE WHEN g_roll('app.trace', b.app_n, 10) > 0 THEN g_hex('app.trace', b.app_n) || g_hex('app.trace2', b.app_n) END AS trace_id
FROM b JOIN g_orgs o USING (org_n)`;

const APP_USAGE = `CREATE TABLE g_app_usage AS
WITH rows AS (
  SELECT a.*, c.comp_n, CASE c.comp_n WHEN 0 THEN a.cp_component ELSE 'worker' END AS component,
         unnest(range(a.m)) AS k
  FROM g_apps a CROSS JOIN (VALUES (0), (1)) c(comp_n)
  WHERE a.ran
), timed AS (
  SELECT *, started_at + g_minutes(k * 60) AS start_time, billable AND k = m - 1 AS is_open,
         -- a shared control plane is not billed to the tenant: closed zero-cost rows, no debit
         CASE WHEN comp_n = 0 THEN CASE operating_mode WHEN 'shared' THEN 0 ELSE 50 END
              ELSE 200 * (1 + g_roll('app.worker_rate', app_n, 4)) END AS cost_per_hour,
         g_roll('app.lb', [app_n, comp_n, k], 50) AS lb_roll
  FROM rows
)
SELECT 'app_runtime' AS usage_source, NULL::VARCHAR AS allocation_id, app_instance_id,
       org_id, project_id, user_id AS requested_by_user_id, component, comp_n = 0 AS control_plane_component,
       operating_mode, control_plane_scope, runtime_backend,
       start_time,
       CASE WHEN NOT is_open THEN start_time + INTERVAL 60 MINUTE END AS end_time,
       CASE WHEN NOT is_open THEN start_time + INTERVAL 60 MINUTE
            -- a meter that started minutes ago may not have been billed yet: still within the lag
            WHEN open_age < 55 AND lb_roll % 4 = 0 THEN NULL
            ELSE greatest(start_time, g_as_of() - g_minutes(lb_roll)) END AS last_billed_at,
       cost_per_hour, is_open, correlation_id, trace_id, currency,
       app_instance_id AS _owner, 1 AS _src, app_n AS _owner_n, comp_n AS _comp, k AS _k, k = m - 1 AS _last
FROM timed`;

/** Allocation candidates, each with its row count before trimming to the target. */
const ALLOC_CANDIDATES = `CREATE TABLE g_alloc_cand AS
WITH b AS (
  SELECT a AS alloc_n,
         -- alloc_1 is always active: its open row carries the export's latest timestamp
         CASE WHEN a = 0 THEN 0 ELSE g_roll('alloc.status', a, 100) END AS st
  FROM range($candidates) t(a)
), s AS (
  SELECT alloc_n,
         CASE WHEN st < 35 THEN 'active' WHEN st < 40 THEN 'releasing' WHEN st < 45 THEN 'release_failed'
              WHEN st < 85 THEN 'released' WHEN st < 91 THEN 'failed' WHEN st < 96 THEN 'pending'
              ELSE 'provisioning' END AS status
  FROM b
)
SELECT *, CASE WHEN status IN ('active', 'releasing', 'release_failed', 'released')
               THEN 1 + g_roll('alloc.rows', alloc_n, 19) ELSE 0 END AS n_rows0
FROM s`;

const ALLOCS = `CREATE TABLE g_alloc AS
WITH trimmed AS (
  SELECT *, least(n_rows0, $target::BIGINT - (cs - n_rows0)) AS n_rows
  FROM (SELECT *, (sum(n_rows0) OVER (ORDER BY alloc_n))::BIGINT AS cs FROM g_alloc_cand)
  WHERE cs - n_rows0 < $target
), b AS (
  SELECT t.*, o.org_id, o.currency, o.org_n,
         'p_' || (o.org_n + 1) || '_' || (1 + g_roll('alloc.project', alloc_n, o.n_projects)) AS project_id,
         'u_' || (o.org_n + 1) || '_' || (1 + g_roll('alloc.user', alloc_n, o.n_users)) AS user_id,
         g_roll('alloc.gpu', alloc_n, 4) AS gpu_i,
         [1, 2, 4, 8][1 + g_roll('alloc.gpu_count', alloc_n, 4)] AS gpu_count,
         [15, 30, 60][1 + g_roll('alloc.interval', alloc_n, 3)] AS interval_min,
         30 + g_roll('alloc.open_age', alloc_n, 120) AS open_age,
         60 + g_roll('alloc.release_age', alloc_n, 6 * 24 * 60 - 60) AS release_age,
         g_roll('alloc.idle_age', alloc_n, 5 * 24 * 60) AS idle_age,
         g_roll('alloc.jitter', alloc_n, 10) AS jitter
  FROM trimmed t
  JOIN g_orgs o ON o.org_n = g_roll('alloc.org', t.alloc_n, getvariable('g_tenants'))
), timed AS (
  SELECT *,
         status IN ('active', 'releasing', 'release_failed') AS billable,
         CASE WHEN status IN ('active', 'releasing', 'release_failed')
                THEN g_as_of() - g_minutes(open_age + (n_rows - 1) * interval_min)
              WHEN status = 'released'
                THEN g_as_of() - g_minutes(release_age + n_rows * interval_min) END AS activated_at,
         CASE WHEN status = 'released' THEN g_as_of() - g_minutes(release_age) END AS released_at,
         -- releasing / release_failed happened after the open row started (>= 30 min ago)
         g_as_of() - g_minutes(1 + g_roll('alloc.transition', alloc_n, 20)) AS transition_at
  FROM b
)
SELECT alloc_n, alloc_n + 1 AS _ord, 'alloc_' || (alloc_n + 1) AS allocation_id,
       org_id, project_id, user_id AS requested_by_user_id, status,
       ['A100', 'H100', 'L4', 'H200'][1 + gpu_i] AS gpu_type, gpu_count,
       -- per GPU-hour, in minor units; divisible by 4 so 15-minute rows cost whole cents
       [320, 480, 80, 640][1 + gpu_i] AS rate,
       CASE WHEN activated_at IS NOT NULL THEN activated_at - g_minutes(1 + g_roll('alloc.created', alloc_n, 10))
            WHEN status = 'failed' THEN g_as_of() - g_minutes(10 + idle_age)
            ELSE g_as_of() - g_minutes(1 + idle_age % 120) END AS created_at,
       activated_at, released_at,
       CASE WHEN status IN ('releasing', 'release_failed') THEN transition_at
            WHEN status = 'released' THEN released_at
            WHEN status = 'active' THEN activated_at
            WHEN status = 'failed' THEN g_as_of() - g_minutes(9 + idle_age)
            ELSE g_as_of() - g_minutes(1 + idle_age % 120) END AS updated_at,
       'corr-' || g_hex('alloc.corr', alloc_n) AS correlation_id,
       CASE WHEN g_roll('alloc.trace', alloc_n, 10) > 0 THEN g_hex('alloc.trace', alloc_n) || g_hex('alloc.trace2', alloc_n) END AS trace_id,
       currency, n_rows, interval_min, open_age, billable, transition_at,
       -- near misses the audit must not report: metering starting a little before activation or
       -- ending a little after release (clock skew), inside the window tolerance
       jitter = 0 AS early_start, jitter = 1 AS late_end
FROM timed`;

const ALLOC_USAGE = `CREATE TABLE g_alloc_usage AS
WITH rows AS (SELECT *, unnest(range(n_rows)) AS k FROM g_alloc WHERE n_rows > 0),
timed AS (
  SELECT *, activated_at + g_minutes(k * interval_min) AS slot_start, billable AND k = n_rows - 1 AS is_open,
         g_roll('alloc.lb', [alloc_n, k], 50) AS lb_roll
  FROM rows
)
SELECT 'allocation' AS usage_source, allocation_id, NULL::VARCHAR AS app_instance_id,
       org_id, project_id, requested_by_user_id, NULL::VARCHAR AS component, NULL::BOOLEAN AS control_plane_component,
       NULL::VARCHAR AS operating_mode, NULL::VARCHAR AS control_plane_scope, NULL::VARCHAR AS runtime_backend,
       CASE WHEN k = 0 AND early_start THEN slot_start - INTERVAL 3 MINUTE ELSE slot_start END AS start_time,
       CASE WHEN is_open THEN NULL
            WHEN k = n_rows - 1 AND late_end THEN released_at + INTERVAL 4 MINUTE
            ELSE slot_start + g_minutes(interval_min) END AS end_time,
       CASE WHEN is_open AND alloc_n = 0 THEN g_as_of()
            WHEN is_open AND open_age < 55 AND lb_roll % 4 = 0 THEN NULL
            WHEN is_open THEN greatest(slot_start, g_as_of() - g_minutes(lb_roll))
            WHEN k = n_rows - 1 AND late_end THEN released_at + INTERVAL 4 MINUTE
            ELSE slot_start + g_minutes(interval_min) END AS last_billed_at,
       rate * gpu_count AS cost_per_hour, is_open, correlation_id, trace_id, currency,
       allocation_id AS _owner, 0 AS _src, alloc_n AS _owner_n, 0 AS _comp, k AS _k, k = n_rows - 1 AS _last,
       interval_min
FROM timed`;

const USAGE = `CREATE TABLE usage_records AS
WITH u AS (
  SELECT * FROM g_alloc_usage
  UNION ALL BY NAME
  SELECT *, 60 AS interval_min FROM g_app_usage
), numbered AS (
  SELECT *, row_number() OVER (ORDER BY start_time, _src, _owner_n, _comp, _k) AS _ord FROM u
)
SELECT 'ur_' || _ord AS usage_record_id, usage_source, allocation_id, app_instance_id,
       org_id, project_id, requested_by_user_id, component, control_plane_component,
       operating_mode, control_plane_scope, runtime_backend, start_time, end_time, last_billed_at,
       CASE
         WHEN is_open THEN cost_per_hour * date_diff('minute', start_time, coalesce(last_billed_at, start_time)) // 60
         -- a few closed intervals are free (credits, maintenance): zero cost, nothing to debit
         WHEN g_roll('usage.free', _ord, 33) = 0 THEN 0
         ELSE cost_per_hour * interval_min // 60
       END::BIGINT AS accrued_cost_minor,
       currency, correlation_id, trace_id,
       _ord, _owner, _k, _last,
       -- a debit retried by the billing worker and reversed by an operator: not a duplicate any more
       end_time IS NOT NULL AND g_roll('usage.retry', _ord, 50) = 0
         AND (end_time + INTERVAL 11 MINUTE <= g_balance_as_of() OR end_time + INTERVAL 1 MINUTE > g_balance_as_of())
         AS _near_miss
FROM numbered`;

const SESSIONS = `CREATE TABLE g_sessions AS
WITH b AS (
  SELECT i,
         g_roll('ps.account', i, (SELECT count(*) FROM g_accounts)) AS acct_n,
         g_roll('ps.status', i, 100) AS st,
         g_roll('ps.age', i, 6 * 24 * 60) AS age,
         g_roll('ps.recent', i, 100) < 40 AS recent
  FROM range($sessions) t(i)
), s AS (
  SELECT b.*, a.org_id, a.user_id, a.currency,
         CASE WHEN st < 60 THEN 'completed' WHEN st < 70 THEN 'open' WHEN st < 85 THEN 'expired' ELSE 'failed' END AS status
  FROM b JOIN g_accounts a USING (acct_n)
), timed AS (
  SELECT *,
         CASE WHEN status = 'open' THEN g_as_of() - g_minutes(5 + age % 180)
              WHEN recent THEN g_as_of() - g_minutes(15 + age % (24 * 60 - 15))
              ELSE g_as_of() - g_minutes(24 * 60 + age) END AS created_at
  FROM s
)
SELECT i + 1 AS _ord, 'ps_' || (i + 1) AS payment_session_id, org_id, user_id AS requested_by_user_id,
       ['stripe', 'adyen'][1 + g_roll('ps.provider', i, 2)] AS provider,
       'cs_' || g_hex('ps.provider_id', i) AS provider_session_id,
       status, ((10 + g_roll('ps.amount', i, 491)) * 100)::BIGINT AS amount_minor, currency,
       created_at,
       CASE WHEN status = 'completed' THEN created_at + g_minutes(1 + g_roll('ps.completion', i, 9)) END AS completed_at,
       'corr-' || g_hex('ps.corr', i) AS correlation_id,
       CASE WHEN g_roll('ps.trace', i, 10) > 0 THEN g_hex('ps.trace', i) || g_hex('ps.trace2', i) END AS trace_id
FROM timed`;

const LEDGER = `CREATE TABLE g_ledger AS
WITH debits AS (
  SELECT 'debit' AS _kind, _ord AS _ref, _owner, org_id, requested_by_user_id, project_id,
         'usage_debit' AS entry_type, 'debit' AS direction, accrued_cost_minor AS amount_minor, currency,
         usage_record_id, NULL::VARCHAR AS payment_session_id, 'debit:' || usage_record_id AS idempotency_key,
         NULL::VARCHAR AS actor, end_time + INTERVAL 1 MINUTE AS created_at, correlation_id, trace_id, _near_miss
  FROM usage_records WHERE end_time IS NOT NULL AND accrued_cost_minor > 0
), retried AS (
  SELECT * REPLACE ('retry' AS _kind, idempotency_key || ':retry' AS idempotency_key,
                    created_at + INTERVAL 2 MINUTE AS created_at)
  FROM debits WHERE _near_miss
), reversed AS (
  SELECT * REPLACE ('reversal' AS _kind, 'reversal' AS entry_type, 'credit' AS direction,
                    NULL AS usage_record_id, NULL AS idempotency_key, 'billing-ops@example.com' AS actor,
                    created_at + INTERVAL 10 MINUTE AS created_at,
                    'corr-fix-' || g_hex('ledger.fix', _ref) AS correlation_id, NULL AS trace_id)
  FROM debits WHERE _near_miss
), credits AS (
  SELECT 'credit' AS _kind, _ord AS _ref, payment_session_id AS _owner, org_id, requested_by_user_id,
         NULL::VARCHAR AS project_id, 'payment_credit' AS entry_type, 'credit' AS direction, amount_minor, currency,
         NULL::VARCHAR AS usage_record_id, payment_session_id, 'credit:' || payment_session_id AS idempotency_key,
         NULL::VARCHAR AS actor, completed_at AS created_at, correlation_id, trace_id, false AS _near_miss
  FROM g_sessions WHERE status = 'completed'
), promos AS (
  SELECT 'promo' AS _kind, acct_n AS _ref, NULL::VARCHAR AS _owner, org_id, user_id AS requested_by_user_id,
         NULL::VARCHAR AS project_id, 'promo_credit' AS entry_type, 'credit' AS direction,
         ((5 + g_roll('promo.amount', acct_n, 46)) * 100)::BIGINT AS amount_minor, currency,
         NULL::VARCHAR AS usage_record_id, NULL::VARCHAR AS payment_session_id, 'promo:' || user_id AS idempotency_key,
         NULL::VARCHAR AS actor, g_as_of() - g_minutes(2 * 24 * 60 + g_roll('promo.age', acct_n, 5 * 24 * 60)) AS created_at,
         'corr-promo-' || g_hex('promo.corr', acct_n) AS correlation_id, NULL::VARCHAR AS trace_id, false AS _near_miss
  FROM g_accounts WHERE g_roll('promo', acct_n, 2) = 0
), adjustments AS (
  SELECT 'adjustment' AS _kind, acct_n AS _ref, NULL::VARCHAR AS _owner, org_id, user_id AS requested_by_user_id,
         NULL::VARCHAR AS project_id, a.entry_type, a.direction,
         ((1 + g_roll('adj.amount', acct_n, 20)) * 100)::BIGINT AS amount_minor, currency,
         NULL::VARCHAR AS usage_record_id, NULL::VARCHAR AS payment_session_id, 'adj:' || user_id || ':1' AS idempotency_key,
         'finance@example.com' AS actor, g_as_of() - g_minutes(60 + g_roll('adj.age', acct_n, 6 * 24 * 60)) AS created_at,
         'corr-adj-' || g_hex('adj.corr', acct_n) AS correlation_id, NULL::VARCHAR AS trace_id, false AS _near_miss
  FROM g_accounts
  JOIN (VALUES (0, 'adjustment_credit', 'credit'), (1, 'adjustment_debit', 'debit')) a(pick, entry_type, direction)
    ON a.pick = g_roll('adj.type', acct_n, 2)
  WHERE g_roll('adj', acct_n, 3) = 0
), src AS (
  SELECT *, 0 AS _rank FROM debits UNION ALL BY NAME SELECT *, 1 FROM retried
  UNION ALL BY NAME SELECT *, 2 FROM reversed UNION ALL BY NAME SELECT *, 3 FROM credits
  UNION ALL BY NAME SELECT *, 4 FROM promos UNION ALL BY NAME SELECT *, 5 FROM adjustments
)
SELECT *, row_number() OVER (ORDER BY created_at, _rank, _ref) AS _ord FROM src`;

const LEDGER_ENTRIES = `CREATE TABLE ledger_entries AS
SELECT 'le_' || l._ord AS ledger_entry_id, l.org_id, l.requested_by_user_id, l.project_id, l.entry_type, l.direction,
       l.amount_minor, l.currency, l.usage_record_id, l.payment_session_id,
       CASE WHEN l._kind = 'reversal' THEN 'le_' || r._ord END AS reverses_ledger_entry_id,
       CASE WHEN l._kind = 'reversal' THEN 'reverse:le_' || r._ord ELSE l.idempotency_key END AS idempotency_key,
       l.actor, l.created_at, l.correlation_id, l.trace_id,
       l._ord, l._owner, l._near_miss
FROM g_ledger l
LEFT JOIN (SELECT _ref, _ord FROM g_ledger WHERE _kind = 'retry') r ON r._ref = l._ref`;

const PAYMENT_SESSIONS = `CREATE TABLE payment_sessions AS
SELECT s.payment_session_id, s.org_id, s.requested_by_user_id, s.provider, s.provider_session_id, s.status,
       s.amount_minor, s.currency, l.ledger_entry_id, s.created_at, s.completed_at, s.correlation_id, s.trace_id,
       s._ord
FROM g_sessions s
LEFT JOIN ledger_entries l ON l.entry_type = 'payment_credit' AND l.payment_session_id = s.payment_session_id`;

const ALLOCATIONS = `CREATE TABLE allocations AS
SELECT allocation_id, org_id, project_id, requested_by_user_id, status, gpu_type, gpu_count, created_at,
       activated_at, released_at, updated_at, correlation_id, trace_id, _ord
FROM g_alloc`;

const APP_INSTANCES = `CREATE TABLE app_instances AS
SELECT app_instance_id, org_id, project_id, app_type, operating_mode, control_plane_scope, runtime_backend,
       status, started_at, stopped_at, correlation_id, trace_id, _ord
FROM g_apps`;

/** The outbox as the provisioning and payment services emit it; each allocation's latest event matches its status. */
const EVENTS = `CREATE TABLE events AS
WITH src AS (
  SELECT 'provisioning.active' AS event_type, activated_at AS occurred_at, allocation_id, 0 AS _rank, _ord AS _ref,
         correlation_id, trace_id
  FROM g_alloc WHERE status IN ('active', 'releasing', 'release_failed', 'released')
  UNION ALL
  SELECT 'provisioning.releasing', CASE status WHEN 'released' THEN released_at - INTERVAL 2 MINUTE ELSE transition_at END,
         allocation_id, 1, _ord, correlation_id, trace_id
  FROM g_alloc WHERE status IN ('releasing', 'released')
  UNION ALL
  SELECT 'provisioning.releasing.completed', released_at, allocation_id, 2, _ord, correlation_id, trace_id
  FROM g_alloc WHERE status = 'released'
  UNION ALL
  SELECT 'provisioning.release_failed', transition_at, allocation_id, 3, _ord, correlation_id, trace_id
  FROM g_alloc WHERE status = 'release_failed'
), payments AS (
  SELECT 'payments.balance_credited' AS event_type, completed_at AS occurred_at, payment_session_id, _ord AS _ref,
         correlation_id, trace_id
  FROM payment_sessions WHERE status = 'completed'
), all_events AS (
  SELECT event_type, occurred_at, allocation_id, NULL::VARCHAR AS payment_session_id, _rank, _ref,
         correlation_id, trace_id FROM src
  UNION ALL
  SELECT event_type, occurred_at, NULL, payment_session_id, 4, _ref, correlation_id, trace_id FROM payments
), numbered AS (
  SELECT *, row_number() OVER (ORDER BY occurred_at, _rank, _ref) AS _ord FROM all_events
)
SELECT 'ev_' || _ord AS event_id, event_type, occurred_at, allocation_id, NULL::VARCHAR AS app_instance_id,
       payment_session_id, correlation_id, trace_id, _ord
FROM numbered`;

/**
 * The customer-visible projection, as of a day before the audit: effective credits minus
 * effective debits up to then. A retried debit and its reversal always fall on the same side of
 * that instant (see `_near_miss`), so effectiveness does not depend on when it is judged.
 */
const BALANCES = `CREATE TABLE balances AS
WITH effective AS (
  SELECT l.* FROM ledger_entries l
  WHERE l.entry_type <> 'reversal'
    AND NOT EXISTS (SELECT 1 FROM ledger_entries r WHERE r.reverses_ledger_entry_id = l.ledger_entry_id)
)
SELECT a.org_id, a.user_id AS requested_by_user_id, a.currency,
       coalesce(sum(CASE e.direction WHEN 'credit' THEN e.amount_minor ELSE -e.amount_minor END), 0)::BIGINT AS balance_minor,
       g_balance_as_of() AS as_of, a.acct_n + 1 AS _ord
FROM g_accounts a
LEFT JOIN effective e ON e.org_id = a.org_id AND e.requested_by_user_id = a.user_id AND e.currency = a.currency
                     AND e.created_at <= g_balance_as_of()
GROUP BY ALL`;

/** Builds the clean world's seven tables in `db`. */
export async function buildWorld(db: Db, p: WorldParams): Promise<void> {
  await db.run(`SET VARIABLE g_seed = $seed::BIGINT`, { seed: p.seed });
  await db.run(`SET VARIABLE g_tenants = $tenants::BIGINT`, { tenants: p.tenants });
  await db.run(`SET VARIABLE g_as_of = $as_of::TIMESTAMPTZ`, { as_of: p.asOf });
  await db.run(`SET VARIABLE g_balance_as_of = $as_of::TIMESTAMPTZ - INTERVAL 1 DAY + INTERVAL 30 SECOND`, { as_of: p.asOf });
  for (const sql of [...SETUP, ...ORGS]) await db.run(sql);

  const apps = Math.max(3, Math.round((p.usageRows * APP_SHARE) / APP_ROWS_PER_INSTANCE));
  await db.run(APPS, { apps });
  await db.run(APP_USAGE);
  const appRows = Number((await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM g_app_usage`))?.n ?? 0n);

  // Allocation rows make up the rest, exactly: the last allocation's history is cut short.
  const target = p.usageRows - appRows;
  if (target < 1) throw new InputError(`usage_rows ${p.usageRows} is too small for ${apps} app instances`);
  await db.run(ALLOC_CANDIDATES, { candidates: Math.ceil(target / 4) + 20 });
  const reached = await db.one<{ ok: boolean }>(`SELECT sum(n_rows0) >= $target AS ok FROM g_alloc_cand`, { target });
  if (!reached?.ok) throw new Error(`internal: allocation candidates do not reach ${target} usage rows`);
  await db.run(ALLOCS, { target });
  await db.run(ALLOC_USAGE);
  await db.run(USAGE);

  const accounts = Number((await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM g_accounts`))?.n ?? 0n);
  await db.run(SESSIONS, { sessions: Math.max(3 * accounts, Math.ceil(p.usageRows / 10)) });
  await db.run(LEDGER);
  await db.run(LEDGER_ENTRIES);
  await db.run(PAYMENT_SESSIONS);
  await db.run(ALLOCATIONS);
  await db.run(APP_INSTANCES);
  await db.run(EVENTS);
  await db.run(BALANCES);
}
