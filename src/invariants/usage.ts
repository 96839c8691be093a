import { BILLABLE_ALLOCATION_STATUSES } from '../contract/tables.ts';
import { isoSql, sqlList } from '../sql.ts';
import { DETAIL_LIST_LIMIT, type Invariant } from './types.ts';

/** The scope columns of a usage row, for invariants whose entity is the usage record. */
function usageScope(alias: string): string {
  return [
    'org_id', 'project_id', 'requested_by_user_id', 'allocation_id', 'app_instance_id',
    'usage_record_id', 'usage_source', 'correlation_id', 'trace_id',
  ].map((c) => `${alias}.${c}`).join(', ');
}

const BILLABLE = sqlList(BILLABLE_ALLOCATION_STATUSES);

export const usageInvariants: readonly Invariant[] = [
  {
    id: 'usage.missing_open',
    family: 'usage',
    title: 'Every billable allocation has open allocation usage',
    severity: 'error',
    entity: 'allocation',
    needs: ['allocations', 'usage_records'],
    runbook:
      'Billing runbook: for allocations in active, releasing or release_failed, check that an open usage row exists ' +
      '(end_time IS NULL); if none, the worker stopped metering a GPU the customer still holds.',
    explanation:
      'The customer still holds this GPU (the allocation is active, releasing or release_failed) but no open ' +
      'allocation usage row is metering it, so every minute since the last usage row closed is given away. ' +
      'A release that failed counts as held: the hardware is not back in the pool. The amount is not known from ' +
      'the exports (no row accrues it), so no money is reported; the detail shows when metering last stopped.',
    sql: () => `WITH allocation_usage AS (
        SELECT allocation_id,
               count(*) FILTER (WHERE end_time IS NULL) AS open_rows,
               count(*) FILTER (WHERE end_time IS NOT NULL) AS closed_rows,
               max(end_time) AS last_end_time
        FROM usage_records
        WHERE usage_source = 'allocation' AND allocation_id IS NOT NULL
        GROUP BY allocation_id)
      SELECT a.allocation_id AS entity_id,
             a.org_id, a.project_id, a.requested_by_user_id, a.allocation_id, a.correlation_id, a.trace_id,
             json_object(
               'allocation_status', a.status,
               'activated_at', ${isoSql('a.activated_at')},
               'expected', 'an open allocation usage row',
               'open_usage_rows', 0,
               'closed_usage_rows', coalesce(u.closed_rows, 0),
               'last_usage_end_time', ${isoSql('u.last_end_time')}) AS detail
      FROM allocations a
      LEFT JOIN allocation_usage u USING (allocation_id)
      WHERE a.status IN (${BILLABLE}) AND coalesce(u.open_rows, 0) = 0`,
  },
  {
    id: 'usage.orphan_open',
    family: 'usage',
    title: 'Open allocation usage belongs to a billable allocation',
    severity: 'error',
    entity: 'usage_record',
    needs: ['usage_records', 'allocations'],
    runbook:
      'Billing runbook: list open allocation usage rows whose allocation is missing or no longer billable, and close ' +
      'them at the allocation\'s released_at.',
    explanation:
      'This usage row is still metering, but its allocation does not exist (or the row names none) or is no longer ' +
      'held (released, failed, pending): the customer keeps being charged for a GPU they gave back. Only the part ' +
      'accrued after the allocation stopped being billable is wrong, and the exports cannot split it, so the row\'s ' +
      'accrued cost is shown in the detail rather than reported as money at stake.',
    sql: () => `SELECT u.usage_record_id AS entity_id, ${usageScope('u')},
             json_object(
               'problem', CASE
                 WHEN u.allocation_id IS NULL THEN 'the usage row names no allocation'
                 WHEN a.allocation_id IS NULL THEN 'allocation not found'
                 ELSE 'allocation status is ' || coalesce(a.status, 'empty') || ', not billable' END,
               'allocation_status', a.status,
               'released_at', ${isoSql('a.released_at')},
               'billable_statuses', [${BILLABLE}],
               'start_time', ${isoSql('u.start_time')},
               'last_billed_at', ${isoSql('u.last_billed_at')},
               'accrued_cost_minor', u.accrued_cost_minor,
               'currency', u.currency) AS detail
      FROM usage_records u
      LEFT JOIN allocations a ON a.allocation_id = u.allocation_id
      WHERE u.usage_source = 'allocation' AND u.end_time IS NULL
        AND (a.allocation_id IS NULL OR a.status IS NULL OR a.status NOT IN (${BILLABLE}))`,
  },
  {
    id: 'usage.duplicate_open',
    family: 'usage',
    title: 'At most one open usage row per allocation, and per app instance and component',
    severity: 'error',
    entity: 'usage_record',
    needs: ['usage_records'],
    runbook:
      'Billing runbook: group open usage by allocation (and by app instance and component for app runtimes); more ' +
      'than one open row means the same resource is metered twice. Close the duplicates.',
    explanation:
      'Two or more usage rows are metering the same allocation (or the same component of an app instance) at once, ' +
      'so the customer is charged twice for one resource. Every row of the group is reported because the exports ' +
      'cannot tell which one is the legitimate meter; the detail lists the group with each row\'s accrued cost. ' +
      'App runtime rows with no component are grouped together; component names are compared ignoring case, as the ' +
      'control-plane classification compares them.',
    sql: () => `WITH open_usage AS (
        SELECT *,
               CASE usage_source WHEN 'allocation' THEN allocation_id WHEN 'app_runtime' THEN app_instance_id END AS anchor_id,
               CASE usage_source WHEN 'app_runtime' THEN lower(component) END AS anchor_component
        FROM usage_records
        WHERE end_time IS NULL),
      groups AS (
        SELECT usage_source, anchor_id, anchor_component, count(*) AS open_rows,
               list({'usage_record_id': usage_record_id, 'start_time': ${isoSql('start_time')},
                     'accrued_cost_minor': accrued_cost_minor, 'currency': currency}
                    ORDER BY start_time, usage_record_id)[1:${DETAIL_LIST_LIMIT}] AS rows
        FROM open_usage
        WHERE anchor_id IS NOT NULL
        GROUP BY usage_source, anchor_id, anchor_component
        HAVING count(*) > 1)
      SELECT u.usage_record_id AS entity_id, ${usageScope('u')},
             json_object(
               'metered_resource', CASE u.usage_source
                 WHEN 'allocation' THEN json_object('allocation_id', u.allocation_id)
                 ELSE json_object('app_instance_id', u.app_instance_id, 'component', u.component) END,
               'open_rows', g.open_rows,
               'group', g.rows) AS detail
      FROM open_usage u
      JOIN groups g ON g.usage_source = u.usage_source AND g.anchor_id = u.anchor_id
                   AND g.anchor_component IS NOT DISTINCT FROM u.anchor_component`,
  },
  {
    id: 'usage.unbilled_closed',
    family: 'usage',
    title: 'Closed usage with a cost has been debited',
    severity: 'error',
    entity: 'usage_record',
    needs: ['usage_records', 'ledger_entries'],
    runbook:
      'Billing runbook: closed usage rows with accrued_cost_minor > 0 and no usage_debit in the ledger are unbilled; ' +
      're-run the debit for them.',
    explanation:
      'This metering interval is finished and cost money, but no effective usage debit was ever posted for it: the ' +
      'customer was never charged. The money at stake is the accrued cost. A debit that was later reversed does not ' +
      'count as billing (the detail lists such reversed debits); a zero-cost interval needs no debit.',
    sql: () => `WITH debits AS (
        SELECT l.usage_record_id,
               bool_or(e.ledger_entry_id IS NOT NULL) AS billed,
               list(l.ledger_entry_id ORDER BY l.ledger_entry_id) FILTER (WHERE e.ledger_entry_id IS NULL) AS reversed
        FROM ledger_entries l
        LEFT JOIN effective_ledger_entries e USING (ledger_entry_id)
        WHERE l.entry_type = 'usage_debit' AND l.usage_record_id IS NOT NULL
        GROUP BY l.usage_record_id)
      SELECT u.usage_record_id AS entity_id, ${usageScope('u')},
             u.accrued_cost_minor AS amount_minor, u.currency,
             json_object(
               'expected', 'an effective usage_debit',
               'accrued_cost_minor', u.accrued_cost_minor,
               'currency', u.currency,
               'start_time', ${isoSql('u.start_time')},
               'end_time', ${isoSql('u.end_time')},
               'reversed_debits', coalesce(d.reversed, []::VARCHAR[])[1:${DETAIL_LIST_LIMIT}]) AS detail
      FROM usage_records u
      LEFT JOIN debits d USING (usage_record_id)
      WHERE u.end_time IS NOT NULL AND u.accrued_cost_minor > 0 AND NOT coalesce(d.billed, false)`,
  },
  {
    id: 'usage.debit_mismatch',
    family: 'usage',
    title: 'Debits of closed usage equal its accrued cost, in its currency',
    severity: 'error',
    entity: 'usage_record',
    needs: ['usage_records', 'ledger_entries'],
    runbook:
      'Billing runbook: for closed usage, compare sum(usage_debit.amount_minor) with accrued_cost_minor and the ' +
      'currencies; post a correcting adjustment for every difference.',
    explanation:
      'The effective usage debits of this finished interval do not add up to what it cost, or were posted in another ' +
      'currency: the customer was over- or under-charged. The money at stake is the absolute difference in the ' +
      'record\'s own currency; if that currency is charged exactly and the error is only an extra charge in another ' +
      'currency, that extra charge is reported instead. The detail breaks the debits down per currency.',
    sql: () => `WITH debits AS (
        SELECT usage_record_id, currency, sum(amount_minor)::BIGINT AS debited
        FROM effective_ledger_entries
        WHERE entry_type = 'usage_debit' AND usage_record_id IS NOT NULL
        GROUP BY usage_record_id, currency),
      charged AS (
        SELECT u.* FROM usage_records u
        WHERE u.end_time IS NOT NULL
          AND EXISTS (SELECT 1 FROM debits d WHERE d.usage_record_id = u.usage_record_id)),
      per_currency AS (
        -- the record's own currency (expected: its cost) and every other currency it was debited in (expected: 0)
        SELECT c.usage_record_id, k.currency, k.currency = c.currency AS own_currency,
               CASE WHEN k.currency = c.currency THEN c.accrued_cost_minor ELSE 0 END AS expected,
               coalesce(d.debited, 0) AS debited
        FROM charged c
        JOIN (SELECT usage_record_id, currency FROM charged
              UNION SELECT usage_record_id, currency FROM debits) k USING (usage_record_id)
        LEFT JOIN debits d ON d.usage_record_id = c.usage_record_id AND d.currency = k.currency),
      flagged AS (
        -- Plain sums find the few mismatched records; the detail below is built for them alone.
        SELECT usage_record_id FROM per_currency
        GROUP BY usage_record_id
        HAVING sum(debited) <> sum(expected) OR bool_or(NOT own_currency)),
      entry_ids AS (
        SELECT usage_record_id, currency, list(ledger_entry_id ORDER BY ledger_entry_id)[1:${DETAIL_LIST_LIMIT}] AS ledger_entry_ids
        FROM effective_ledger_entries
        WHERE entry_type = 'usage_debit' AND usage_record_id IN (SELECT usage_record_id FROM flagged)
        GROUP BY usage_record_id, currency),
      mismatched AS (
        SELECT p.usage_record_id,
               first(abs(debited - expected) ORDER BY (own_currency AND debited <> expected) DESC, abs(debited - expected) DESC, p.currency) AS at_stake,
               first(p.currency ORDER BY (own_currency AND debited <> expected) DESC, abs(debited - expected) DESC, p.currency) AS at_stake_currency,
               sum(debited) FILTER (WHERE own_currency) AS debited_own,
               list({'currency': p.currency, 'expected_minor': expected, 'debited_minor': debited,
                     'ledger_entry_ids': coalesce(e.ledger_entry_ids, []::VARCHAR[])}
                    ORDER BY NOT own_currency, p.currency) AS by_currency
        FROM per_currency p
        LEFT JOIN entry_ids e ON e.usage_record_id = p.usage_record_id AND e.currency = p.currency
        WHERE p.usage_record_id IN (SELECT usage_record_id FROM flagged)
        GROUP BY p.usage_record_id)
      SELECT c.usage_record_id AS entity_id, ${usageScope('c')},
             m.at_stake AS amount_minor, m.at_stake_currency AS currency,
             json_object(
               'accrued_cost_minor', c.accrued_cost_minor,
               'currency', c.currency,
               'debited_minor', m.debited_own,
               'difference_minor', m.debited_own - c.accrued_cost_minor,
               'by_currency', m.by_currency) AS detail
      FROM charged c
      JOIN mismatched m USING (usage_record_id)`,
  },
  {
    id: 'usage.lifecycle',
    family: 'usage',
    title: 'Usage timestamps are in order',
    severity: 'error',
    entity: 'usage_record',
    needs: ['usage_records'],
    runbook:
      'Billing runbook: sanity-check intervals: end_time >= start_time, and start_time <= last_billed_at <= end_time.',
    explanation:
      'The interval\'s timestamps contradict each other: it ends before it starts, or the worker claims to have ' +
      'billed it up to a moment before it started or after it ended. Its accrued cost cannot be trusted until the ' +
      'row is corrected, but the exports do not say by how much it is off, so no money is reported.',
    sql: () => `SELECT u.usage_record_id AS entity_id, ${usageScope('u')},
             json_object(
               'problems', list_filter([
                 CASE WHEN u.end_time < u.start_time THEN 'end_time is before start_time' END,
                 CASE WHEN u.last_billed_at < u.start_time THEN 'last_billed_at is before start_time' END,
                 CASE WHEN u.last_billed_at > u.end_time THEN 'last_billed_at is after end_time' END],
                 p -> p IS NOT NULL),
               'start_time', ${isoSql('u.start_time')},
               'end_time', ${isoSql('u.end_time')},
               'last_billed_at', ${isoSql('u.last_billed_at')}) AS detail
      FROM usage_records u
      WHERE u.end_time < u.start_time OR u.last_billed_at < u.start_time OR u.last_billed_at > u.end_time`,
  },
  {
    id: 'usage.billing_lag',
    family: 'usage',
    title: 'Open usage is billed up to date',
    severity: 'warn',
    entity: 'usage_record',
    needs: ['usage_records'],
    runbook:
      'Billing runbook: open rows whose last_billed_at (or start_time, if never billed) is older than the lag ' +
      'threshold mean the billing worker is stalled or backlogged.',
    explanation:
      'This usage row is still open but the billing worker has not accrued it for longer than the configured lag ' +
      '(default 60 minutes) before the audit time, usually because the worker is stalled. Revenue is being ' +
      'recognised late and, if the worker never catches up, lost. A row exactly at the threshold is not late. The ' +
      'amount not yet accrued is not in the exports, so no money is reported.',
    sql: () => `SELECT u.usage_record_id AS entity_id, ${usageScope('u')},
             json_object(
               'billed_through', ${isoSql('coalesce(u.last_billed_at, u.start_time)')},
               'never_billed', u.last_billed_at IS NULL,
               'as_of', ${isoSql('s.as_of')},
               'lag_minutes', round(epoch(s.as_of - coalesce(u.last_billed_at, u.start_time)) / 60, 2),
               'threshold_minutes', s.billing_lag_minutes,
               'accrued_cost_minor', u.accrued_cost_minor,
               'currency', u.currency) AS detail
      FROM usage_records u
      CROSS JOIN recon_settings s
      WHERE u.end_time IS NULL
        AND coalesce(u.last_billed_at, u.start_time) < s.as_of - to_minutes(s.billing_lag_minutes)`,
  },
  {
    id: 'usage.outside_allocation_window',
    family: 'usage',
    title: 'Allocation usage lies within the allocation\'s active window',
    severity: 'warn',
    entity: 'usage_record',
    needs: ['usage_records', 'allocations'],
    runbook:
      'Billing runbook: usage must start no earlier than activated_at and (once closed) end no later than ' +
      'released_at, give or take the tolerance.',
    explanation:
      'This allocation usage row meters time when the GPU was not yet active or already released, by more than the ' +
      'configured tolerance (default 5 minutes): the customer is charged for time they did not hold the GPU. ' +
      'A difference exactly at the tolerance is accepted. An allocation with no activated_at or released_at gives ' +
      'nothing to compare with, so that side is not checked; open rows are only checked against activated_at. ' +
      'The detail says by how many minutes the row overshoots; the exports cannot price that time, so no money ' +
      'is reported.',
    sql: () => `WITH windows AS (
        SELECT u.*, a.activated_at, a.released_at, a.status AS allocation_status,
               s.allocation_window_tolerance_minutes AS tolerance_minutes,
               u.start_time < a.activated_at - to_minutes(s.allocation_window_tolerance_minutes) AS starts_early,
               u.end_time > a.released_at + to_minutes(s.allocation_window_tolerance_minutes) AS ends_late
        FROM usage_records u
        JOIN allocations a ON a.allocation_id = u.allocation_id
        CROSS JOIN recon_settings s
        WHERE u.usage_source = 'allocation')
      SELECT w.usage_record_id AS entity_id, ${usageScope('w')},
             json_object(
               'problems', list_filter([
                 CASE WHEN w.starts_early THEN 'starts before activated_at' END,
                 CASE WHEN w.ends_late THEN 'ends after released_at' END],
                 p -> p IS NOT NULL),
               'start_time', ${isoSql('w.start_time')},
               'end_time', ${isoSql('w.end_time')},
               'activated_at', ${isoSql('w.activated_at')},
               'released_at', ${isoSql('w.released_at')},
               'minutes_before_activation', CASE WHEN w.starts_early THEN round(epoch(w.activated_at - w.start_time) / 60, 2) END,
               'minutes_after_release', CASE WHEN w.ends_late THEN round(epoch(w.end_time - w.released_at) / 60, 2) END,
               'tolerance_minutes', w.tolerance_minutes,
               'allocation_status', w.allocation_status) AS detail
      FROM windows w
      WHERE w.starts_early OR w.ends_late`,
  },
];
