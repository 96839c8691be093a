import { firstRowPerKey, rowEntityId, type Dialect } from '../dialect/dialect.ts';
import { dialectOf, type Invariant } from './types.ts';

/**
 * The provisioning events that imply an allocation status (CONTRACT.md §3), with their stage
 * in the release lifecycle: of two events at the same instant, the later stage is the latest.
 */
const provisioningStatuses = (d: Dialect) =>
  d.valuesCte('provisioning_statuses', ['event_type', 'implied_status', 'stage'], [
    ['provisioning.active', 'active', 1],
    ['provisioning.releasing', 'releasing', 2],
    ['provisioning.release_failed', 'release_failed', 3],
    ['provisioning.releasing.completed', 'released', 4],
  ]);

const RUNBOOK = 'Billing drift runbook';

export const eventsInvariants: readonly Invariant[] = [
  {
    id: 'events.allocation_status_mismatch',
    family: 'events',
    title: "An allocation's status agrees with its latest provisioning event",
    severity: 'warn',
    owner: { layer: 'metering_emitter' },
    entity: 'allocation',
    needs: ['allocations', 'events'],
    runbook: `${RUNBOOK}: compare each allocation's status with the latest provisioning.* event on the bus; a disagreement means a consumer missed or misapplied an event.`,
    explanation:
      'The provisioning service announces every allocation state change as an event, and billing opens and closes ' +
      'metering from those announcements. When the allocation table says one thing and the latest event says another ' +
      '(for example the table says active but the last event says the GPUs are being released), one side missed an ' +
      'update, and metering may be running for GPUs the customer gave back, or stopped for GPUs still held. The ' +
      'latest provisioning.* event of any type is compared, and only if it is one of the four that imply a status ' +
      '(active, releasing, release_failed, releasing.completed): a later event of another type (a heartbeat, a ' +
      'provisioning.failed) says nothing this check can compare, so the allocation is not reported. Events without ' +
      'a time are ignored; two events at the same instant are ordered by release lifecycle (active, releasing, ' +
      'release_failed, released; an event that implies no status comes before them), then by event id.',
    sql: (ctx) => {
      const d = dialectOf(ctx);
      return `WITH ${provisioningStatuses(d)},
allocations_by_key AS (
  ${firstRowPerKey(d, 'allocations', 'allocation_id', 'allocation_id IS NOT NULL')}),
latest_event AS (
  -- The latest provisioning.* event of any type; only afterwards is it asked what status it implies.
  SELECT e.event_id, e.event_type, e.occurred_at, e.allocation_id, p.implied_status
  FROM events e
  LEFT JOIN provisioning_statuses p ON p.event_type = e.event_type
  WHERE e.allocation_id IS NOT NULL AND e.occurred_at IS NOT NULL AND starts_with(e.event_type, 'provisioning.')
  QUALIFY row_number() OVER (
    PARTITION BY e.allocation_id ORDER BY e.occurred_at DESC, p.stage DESC NULLS LAST, e.event_id DESC NULLS LAST) = 1)
SELECT ${rowEntityId(d, 'allocations', 'allocation_id', 'a')} AS entity_id, a.org_id, a.project_id, a.requested_by_user_id, a.allocation_id,
  a.correlation_id, a.trace_id,
  ${d.jsonObject([
    ['status', 'a.status'],
    ['implied_status', 'l.implied_status'],
    ['latest_event_id', 'l.event_id'],
    ['latest_event_type', 'l.event_type'],
    ['latest_event_at', d.isoTimestamp('l.occurred_at')],
  ])} AS detail
FROM latest_event l
JOIN allocations_by_key a ON a.allocation_id = l.allocation_id
WHERE l.implied_status IS NOT NULL AND a.status IS DISTINCT FROM l.implied_status`;
    },
  },
  {
    id: 'events.payment_event_mismatch',
    family: 'events',
    title: 'Payment outcomes were announced to the balance projection',
    severity: 'warn',
    owner: { layer: 'payments_webhook' },
    entity: 'payment_session',
    needs: ['payment_sessions', 'events', 'ledger_entries'],
    runbook: `${RUNBOOK}: a failed_reconcile session must have emitted payments.reconcile_failed, and a completed session whose credit is in the ledger must have emitted payments.balance_credited.`,
    explanation:
      'The customer-visible balance and the payments alerting are fed by events. A top-up that completed and was ' +
      'credited in the ledger but never announced with payments.balance_credited may be missing from the balance the ' +
      'customer sees; a session stuck in failed_reconcile without payments.reconcile_failed was never raised to the ' +
      'team that repairs it. The amount at stake is the session amount. A session counts as credited when the ledger ' +
      'holds an effective payment credit for it (naming the session, or named by the session); a completed session ' +
      'without one is reported by payments.completed_without_credit instead.',
    sql: (ctx) => {
      const d = dialectOf(ctx);
      return `WITH sessions AS (
  SELECT *, ${rowEntityId(d, 'payment_sessions', 'payment_session_id')} AS session_entity
  FROM (${firstRowPerKey(d, 'payment_sessions', 'payment_session_id')})),
credits AS (
  -- Two equi-joins, not one join on an OR: an OR condition cannot be hashed and turns into a
  -- nested loop over sessions × ledger entries. Only completed sessions need a credit.
  -- A credit without an id still credits the session; the detail names it by its location.
  SELECT session_entity, min(credit_entity) AS credit_ledger_entry_id, min(credit_id) AS credit_id
  FROM (
    SELECT s.session_entity, e.ledger_entry_id AS credit_id,
           ${rowEntityId(d, 'ledger_entries', 'ledger_entry_id', 'e')} AS credit_entity
    FROM sessions s JOIN effective_ledger_entries e ON e.payment_session_id = s.payment_session_id
    WHERE s.status = 'completed' AND e.entry_type = 'payment_credit'
    UNION ALL
    SELECT s.session_entity, e.ledger_entry_id, ${rowEntityId(d, 'ledger_entries', 'ledger_entry_id', 'e')}
    FROM sessions s JOIN effective_ledger_entries e ON e.ledger_entry_id = s.ledger_entry_id
    WHERE s.status = 'completed' AND e.entry_type = 'payment_credit')
  GROUP BY session_entity),
announced AS (
  SELECT payment_session_id, ${d.sortedSet('event_type')} AS event_types
  FROM events
  WHERE payment_session_id IS NOT NULL AND event_type IS NOT NULL
  GROUP BY payment_session_id),
expected AS (
  SELECT s.*, c.credit_ledger_entry_id, c.credit_id, coalesce(a.event_types, ${d.emptyStringList()}) AS event_types,
    CASE WHEN s.status = 'failed_reconcile' THEN 'payments.reconcile_failed'
         WHEN s.status = 'completed' AND c.credit_ledger_entry_id IS NOT NULL THEN 'payments.balance_credited'
    END AS expected_event
  FROM sessions s
  LEFT JOIN credits c ON c.session_entity = s.session_entity
  LEFT JOIN announced a ON a.payment_session_id = s.payment_session_id)
SELECT session_entity AS entity_id, org_id, requested_by_user_id, payment_session_id,
  coalesce(credit_id, ledger_entry_id) AS ledger_entry_id,
  amount_minor, currency, correlation_id, trace_id,
  ${d.jsonObject([
    ['status', 'status'],
    ['missing_event', 'expected_event'],
    ['credit_ledger_entry_id', 'credit_ledger_entry_id'],
    ['events_seen', 'to_json(event_types)'],
  ])} AS detail
FROM expected
WHERE expected_event IS NOT NULL AND NOT ${d.listContains('event_types', 'expected_event')}`;
    },
  },
];
