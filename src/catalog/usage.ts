import { BILLABLE_ALLOCATION_STATUSES } from '../contract/tables.ts';
import { firstRowPerKey, rowEntityId, type Dialect } from '../dialect/dialect.ts';
import { DETAIL_LIST_LIMIT, dialectOf, type Invariant } from './types.ts';

/** The scope columns of a usage row, for invariants whose entity is the usage record. */
function usageScope(alias: string): string {
  return [
    'org_id', 'project_id', 'requested_by_user_id', 'allocation_id', 'app_instance_id',
    'usage_record_id', 'usage_source', 'correlation_id', 'trace_id',
  ].map((c) => `${alias}.${c}`).join(', ');
}

/** A usage row's entity id: its key, or its source location when the key is null. */
/** A field of a violation row's `detail`, in the local DuckDB where violations are judged after the check. */
const detailField = (path: string) => `json_extract_string(detail, '$.${path}')`;

const usageEntity = (d: Dialect, alias: string) => rowEntityId(d, 'usage_records', 'usage_record_id', alias);

/** allocations with one row per key, so a join from usage never fans out on a repeated one. */
const allocationsOnce = (d: Dialect) =>
  `allocations_once AS (${firstRowPerKey(d, 'allocations', 'allocation_id', 'allocation_id IS NOT NULL')})`;

const billable = (d: Dialect) => BILLABLE_ALLOCATION_STATUSES.map(d.string).join(', ');

export const usageInvariants: readonly Invariant[] = [
  {
    id: 'usage.missing_open',
    family: 'usage',
    title: 'Every billable allocation has open allocation usage',
    severity: 'error',
    owner: { layer: 'metering_emitter' },
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
    sql: (ctx) => {
      const d = dialectOf(ctx);
      return `WITH metered AS (
        -- Allocations with open allocation usage; a row exported twice changes nothing here.
        SELECT DISTINCT allocation_id
        FROM usage_records
        WHERE usage_source = 'allocation' AND allocation_id IS NOT NULL AND end_time IS NULL),
      unmetered AS (
        SELECT a.* FROM allocations a
        LEFT JOIN metered m ON m.allocation_id = a.allocation_id
        WHERE a.status IN (${billable(d)}) AND m.allocation_id IS NULL),
      closed_usage AS (
        -- For the detail of the few allocations reported: each usage record counts once.
        SELECT allocation_id,
               count(DISTINCT ${rowEntityId(d, 'usage_records', 'usage_record_id')}) AS closed_rows,
               max(end_time) AS last_end_time
        FROM usage_records
        WHERE usage_source = 'allocation' AND end_time IS NOT NULL
          AND allocation_id IN (SELECT allocation_id FROM unmetered)
        GROUP BY allocation_id)
      SELECT ${rowEntityId(d, 'allocations', 'allocation_id', 'a')} AS entity_id,
             a.org_id, a.project_id, a.requested_by_user_id, a.allocation_id, a.correlation_id, a.trace_id,
             ${d.jsonObject([
               ['allocation_status', 'a.status'],
               ['activated_at', d.isoTimestamp('a.activated_at')],
               ['expected', `'an open allocation usage row'`],
               ['open_usage_rows', '0'],
               ['closed_usage_rows', 'coalesce(u.closed_rows, 0)'],
               ['last_usage_end_time', d.isoTimestamp('u.last_end_time')],
             ])} AS detail
      FROM unmetered a
      LEFT JOIN closed_usage u ON u.allocation_id = a.allocation_id`;
    },
  },
  {
    id: 'usage.orphan_open',
    family: 'usage',
    title: 'Open allocation usage belongs to a billable allocation',
    severity: 'error',
    owner: { layer: 'metering_emitter' },
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
    sql: (ctx) => {
      const d = dialectOf(ctx);
      return `WITH ${allocationsOnce(d)}
      SELECT ${usageEntity(d, 'u')} AS entity_id, ${usageScope('u')},
             ${d.jsonObject([
               ['problem', `CASE
                 WHEN u.allocation_id IS NULL THEN 'the usage row names no allocation'
                 WHEN a.allocation_id IS NULL THEN 'allocation not found'
                 ELSE 'allocation status is ' || coalesce(a.status, 'empty') || ', not billable' END`],
               ['allocation_status', 'a.status'],
               ['released_at', d.isoTimestamp('a.released_at')],
               ['billable_statuses', `[${billable(d)}]`],
               ['start_time', d.isoTimestamp('u.start_time')],
               ['last_billed_at', d.isoTimestamp('u.last_billed_at')],
               ['accrued_cost_minor', 'u.accrued_cost_minor'],
               ['currency', 'u.currency'],
             ])} AS detail
      FROM usage_records u
      LEFT JOIN allocations_once a ON a.allocation_id = u.allocation_id
      WHERE u.usage_source = 'allocation' AND u.end_time IS NULL
        AND (a.allocation_id IS NULL OR a.status IS NULL OR a.status NOT IN (${billable(d)}))`;
    },
  },
  {
    id: 'usage.duplicate_open',
    family: 'usage',
    title: 'At most one open usage row per allocation, and per app instance and component',
    severity: 'error',
    owner: { layer: 'metering_emitter' },
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
    sql: (ctx) => {
      const d = dialectOf(ctx);
      return `WITH open_usage AS (
        SELECT *,
               CASE usage_source WHEN 'allocation' THEN allocation_id WHEN 'app_runtime' THEN app_instance_id END AS anchor_id,
               CASE usage_source WHEN 'app_runtime' THEN lower(component) END AS anchor_component
        FROM usage_records
        WHERE end_time IS NULL),
      suspects AS (
        -- Plain counts find the few resources with more than one open row ...
        SELECT usage_source, anchor_id, anchor_component
        FROM open_usage
        WHERE anchor_id IS NOT NULL
        GROUP BY usage_source, anchor_id, anchor_component
        HAVING count(*) > 1),
      suspect_rows AS (
        SELECT u.* FROM open_usage u
        JOIN suspects g ON g.usage_source = u.usage_source AND g.anchor_id = u.anchor_id
                       AND g.anchor_component IS NOT DISTINCT FROM u.anchor_component),
      metering AS (
        -- ... whose rows then count once per usage record: a row exported twice is one meter.
        ${firstRowPerKey(d, 'suspect_rows', 'usage_record_id')}),
      open_groups AS (
        SELECT usage_source, anchor_id, anchor_component, count(*) AS open_rows,
               ${d.cappedList(
                 d.struct([
                   ['usage_record_id', 'usage_record_id'],
                   ['start_time', d.isoTimestamp('start_time')],
                   ['accrued_cost_minor', 'accrued_cost_minor'],
                   ['currency', 'currency'],
                 ]),
                 `${d.nullsLast('start_time')}, ${d.nullsLast('usage_record_id')}, __file, __line`,
                 DETAIL_LIST_LIMIT,
               )} AS group_rows
        FROM metering
        GROUP BY usage_source, anchor_id, anchor_component
        HAVING count(*) > 1)
      SELECT ${usageEntity(d, 'u')} AS entity_id, ${usageScope('u')},
             ${d.jsonObject([
               ['metered_resource', `CASE u.usage_source
                 WHEN 'allocation' THEN ${d.jsonObject([['allocation_id', 'u.allocation_id']])}
                 ELSE ${d.jsonObject([['app_instance_id', 'u.app_instance_id'], ['component', 'u.component']])} END`],
               ['open_rows', 'g.open_rows'],
               ['group', 'g.group_rows'],
             ])} AS detail
      FROM metering u
      JOIN open_groups g ON g.usage_source = u.usage_source AND g.anchor_id = u.anchor_id
                   AND g.anchor_component IS NOT DISTINCT FROM u.anchor_component`;
    },
  },
  {
    id: 'usage.unbilled_closed',
    family: 'usage',
    title: 'Closed usage with a cost has been debited',
    severity: 'error',
    owner: { layer: 'billing_worker' },
    entity: 'usage_record',
    needs: ['usage_records', 'ledger_entries'],
    runbook:
      'Billing runbook: closed usage rows with accrued_cost_minor > 0 and no usage_debit in the ledger are unbilled; ' +
      're-run the debit for them.',
    explanation:
      'This metering interval is finished and cost money, but no effective usage debit was ever posted for it: the ' +
      'customer was never charged. The money at stake is the accrued cost. A debit that was later reversed does not ' +
      'count as billing (the detail lists such reversed debits); a zero-cost interval needs no debit.',
    moneyKind: `'unbilled'`,
    sql: (ctx) => {
      const d = dialectOf(ctx);
      return `WITH billed AS (
        SELECT DISTINCT usage_record_id
        FROM effective_ledger_entries
        WHERE entry_type = 'usage_debit' AND usage_record_id IS NOT NULL),
      unbilled AS (
        SELECT u.* FROM usage_records u
        LEFT JOIN billed b ON b.usage_record_id = u.usage_record_id
        WHERE u.end_time IS NOT NULL AND u.accrued_cost_minor > 0 AND b.usage_record_id IS NULL),
      reversed AS (
        -- A usage debit that is not effective was reversed, so every debit of an unbilled record was.
        SELECT usage_record_id, ${d.cappedList('DISTINCT ledger_entry_id', 'ledger_entry_id', DETAIL_LIST_LIMIT)} AS ledger_entry_ids
        FROM ledger_entries
        WHERE entry_type = 'usage_debit' AND ledger_entry_id IS NOT NULL
          AND usage_record_id IN (SELECT usage_record_id FROM unbilled)
        GROUP BY usage_record_id)
      SELECT ${usageEntity(d, 'u')} AS entity_id, ${usageScope('u')},
             u.accrued_cost_minor AS amount_minor, u.currency,
             ${d.jsonObject([
               ['expected', `'an effective usage_debit'`],
               ['accrued_cost_minor', 'u.accrued_cost_minor'],
               ['currency', 'u.currency'],
               ['start_time', d.isoTimestamp('u.start_time')],
               ['end_time', d.isoTimestamp('u.end_time')],
               ['reversed_debits', `coalesce(r.ledger_entry_ids, ${d.emptyStringList()})`],
             ])} AS detail
      FROM unbilled u
      LEFT JOIN reversed r ON r.usage_record_id = u.usage_record_id`;
    },
  },
  {
    id: 'usage.debit_mismatch',
    family: 'usage',
    title: 'Debits of closed usage equal its accrued cost, in its currency',
    severity: 'error',
    owner: { layer: 'billing_worker' },
    entity: 'usage_record',
    needs: ['usage_records', 'ledger_entries'],
    runbook:
      'Billing runbook: for closed usage, compare sum(usage_debit.amount_minor) with accrued_cost_minor and the ' +
      'currencies; post a correcting adjustment for every difference.',
    explanation:
      'The effective usage debits of this finished interval do not add up to what it cost, or were posted in another ' +
      'currency: the customer was over- or under-charged. The money at stake is the absolute difference in the ' +
      'record\'s own currency; if that currency is charged exactly and the error is only an extra charge in another ' +
      'currency, that extra charge is reported instead. A debit without a currency counts as another currency; a ' +
      'debit without an amount makes the total unknown, so the record is reported with no money at stake and ' +
      'debited_minor null for that currency. Each ledger entry counts once, even if the export repeats its row. ' +
      'The detail breaks the debits down per currency.',
    // How the money splits into over- and under-charge, read from the detail written below:
    // `currency` is the record's own currency, `debited_minor` the effective debits in it (NULL
    // when none), `difference_minor` = debited − accrued. When the violation's own `currency` is
    // another one, the record was charged exactly in its currency and the money at stake is an
    // extra charge in that other currency: its own kind, never mixed into the over-charge.
    moneyKind: `CASE WHEN NOT coalesce(json_valid(detail), false) THEN 'mismatch'
         WHEN ${detailField('currency')} IS NOT NULL AND currency IS DISTINCT FROM ${detailField('currency')} THEN 'currency_mismatch'
         WHEN TRY_CAST(${detailField('difference_minor')} AS HUGEINT) > 0 THEN 'over'
         WHEN TRY_CAST(${detailField('difference_minor')} AS HUGEINT) < 0 THEN 'under'
         -- nothing debited in the record's own currency: its whole cost went uncharged there
         WHEN ${detailField('debited_minor')} IS NULL AND TRY_CAST(${detailField('accrued_cost_minor')} AS HUGEINT) > 0 THEN 'under'
         ELSE 'mismatch' END`,
    sql: (ctx) => {
      const d = dialectOf(ctx);
      // The money at stake: the own currency if it is wrong, else the largest extra charge.
      const stakeOrder = `(own_currency AND (debited IS NULL OR debited IS DISTINCT FROM expected)) DESC,
                     abs(debited - expected) DESC NULLS LAST, currency NULLS LAST`;
      return `WITH debit_rows AS (
        SELECT * FROM effective_ledger_entries
        WHERE entry_type = 'usage_debit' AND usage_record_id IS NOT NULL),
      totals AS (
        -- One pass over every debit, then one join with the usage it bills.
        SELECT usage_record_id, count(*) AS entries, min(currency) AS currency,
               count(amount_minor) = count(*) AS amounts_known, sum(amount_minor) AS debited
        FROM debit_rows
        GROUP BY usage_record_id),
      suspects AS (
        -- Closed rows whose only debit is not exactly their cost in their currency, and every closed row with
        -- several debits: those may repeat a ledger row, so they are recounted below, each entry once.
        SELECT u.* FROM usage_records u
        JOIN totals t ON t.usage_record_id = u.usage_record_id
        WHERE u.end_time IS NOT NULL
          AND (t.entries > 1 OR NOT t.amounts_known
               OR t.currency IS DISTINCT FROM u.currency OR t.debited IS DISTINCT FROM u.accrued_cost_minor)),
      suspect_debits AS (
        ${firstRowPerKey(d, 'debit_rows', 'ledger_entry_id', 'usage_record_id IN (SELECT usage_record_id FROM suspects)')}),
      debits AS (
        SELECT usage_record_id, currency,
               CASE WHEN count(amount_minor) = count(*) THEN coalesce(sum(amount_minor), 0) END AS debited,
               ${d.cappedList(rowEntityId(d, 'ledger_entries', 'ledger_entry_id'), `${d.nullsLast('ledger_entry_id')}, __file, __line`, DETAIL_LIST_LIMIT)} AS ledger_entry_ids
        FROM suspect_debits
        GROUP BY usage_record_id, currency),
      per_currency AS (
        -- Each usage row is judged on its own (a row exported twice is one entity, reported once): its own
        -- currency, expected to carry its cost, even when nothing was debited in it ...
        SELECT s.__file, s.__line, s.currency, true AS own_currency, s.accrued_cost_minor AS expected,
               CASE WHEN d.usage_record_id IS NULL THEN 0 ELSE d.debited END AS debited,
               coalesce(d.ledger_entry_ids, ${d.emptyStringList()}) AS ledger_entry_ids
        FROM suspects s
        LEFT JOIN debits d ON d.usage_record_id = s.usage_record_id AND d.currency IS NOT DISTINCT FROM s.currency
        UNION ALL
        -- ... and every other currency it was debited in, expected to carry nothing.
        SELECT s.__file, s.__line, d.currency, false, 0, d.debited, d.ledger_entry_ids
        FROM suspects s
        JOIN debits d ON d.usage_record_id = s.usage_record_id AND d.currency IS DISTINCT FROM s.currency),
      judged AS (
        SELECT __file, __line,
               ${d.boolOr('NOT own_currency OR debited IS NULL OR debited IS DISTINCT FROM expected')} AS mismatched,
               ${d.firstBy('abs(debited - expected)', stakeOrder)} AS at_stake,
               ${d.firstBy('currency', stakeOrder)} AS at_stake_currency,
               -- one row of the group is the own currency's
               ${d.aggregateIf('any_value', 'debited', 'own_currency')} AS debited_own,
               ${d.orderedList(
                 d.struct([
                   ['currency', 'currency'],
                   ['expected_minor', 'expected'],
                   ['debited_minor', 'debited'],
                   ['ledger_entry_ids', 'ledger_entry_ids'],
                 ]),
                 'NOT own_currency, currency NULLS LAST',
               )} AS by_currency
        FROM per_currency
        GROUP BY __file, __line)
      SELECT ${usageEntity(d, 's')} AS entity_id, ${usageScope('s')},
             j.at_stake AS amount_minor, CASE WHEN j.at_stake IS NOT NULL THEN j.at_stake_currency END AS currency,
             ${d.jsonObject([
               ['accrued_cost_minor', 's.accrued_cost_minor'],
               ['currency', 's.currency'],
               ['debited_minor', 'j.debited_own'],
               ['difference_minor', 'j.debited_own - s.accrued_cost_minor'],
               ['by_currency', 'j.by_currency'],
             ])} AS detail
      FROM suspects s
      JOIN judged j ON j.__file = s.__file AND j.__line = s.__line
      WHERE j.mismatched`;
    },
  },
  {
    id: 'usage.lifecycle',
    family: 'usage',
    title: 'Usage timestamps are in order',
    severity: 'error',
    owner: {
      layer: 'metering_emitter',
      refine: [
        {
          when: `NOT list_contains(json_extract_string(detail, '$.problems[*]'), 'end_time is before start_time')`,
          layer: 'billing_worker',
          why: 'only last_billed_at is out of the interval: the worker accrued past it, the emitter\'s interval is sound',
        },
      ],
    },
    entity: 'usage_record',
    needs: ['usage_records'],
    runbook:
      'Billing runbook: sanity-check intervals: end_time >= start_time, and start_time <= last_billed_at <= end_time.',
    explanation:
      'The interval\'s timestamps contradict each other: it ends before it starts, or the worker claims to have ' +
      'billed it up to a moment before it started or after it ended. Its accrued cost cannot be trusted until the ' +
      'row is corrected, but the exports do not say by how much it is off, so no money is reported.',
    sql: (ctx) => {
      const d = dialectOf(ctx);
      return `SELECT ${usageEntity(d, 'u')} AS entity_id, ${usageScope('u')},
             ${d.jsonObject([
               ['problems', d.nonNullList([
                 `CASE WHEN u.end_time < u.start_time THEN 'end_time is before start_time' END`,
                 `CASE WHEN u.last_billed_at < u.start_time THEN 'last_billed_at is before start_time' END`,
                 `CASE WHEN u.last_billed_at > u.end_time THEN 'last_billed_at is after end_time' END`,
               ])],
               ['start_time', d.isoTimestamp('u.start_time')],
               ['end_time', d.isoTimestamp('u.end_time')],
               ['last_billed_at', d.isoTimestamp('u.last_billed_at')],
             ])} AS detail
      FROM usage_records u
      WHERE u.end_time < u.start_time OR u.last_billed_at < u.start_time OR u.last_billed_at > u.end_time`;
    },
  },
  {
    id: 'usage.billing_lag',
    family: 'usage',
    title: 'Open usage is billed up to date',
    severity: 'warn',
    owner: { layer: 'billing_worker' },
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
    sql: (ctx) => {
      const d = dialectOf(ctx);
      const billedThrough = 'coalesce(u.last_billed_at, u.start_time)';
      return `SELECT ${usageEntity(d, 'u')} AS entity_id, ${usageScope('u')},
             ${d.jsonObject([
               ['billed_through', d.isoTimestamp(billedThrough)],
               ['never_billed', 'u.last_billed_at IS NULL'],
               ['as_of', d.isoTimestamp('s.as_of')],
               ['lag_minutes', `round(${d.minutesBetween('s.as_of', billedThrough)}, 2)`],
               ['threshold_minutes', 's.billing_lag_minutes'],
               ['accrued_cost_minor', 'u.accrued_cost_minor'],
               ['currency', 'u.currency'],
             ])} AS detail
      FROM usage_records u
      CROSS JOIN recon_settings s
      WHERE u.end_time IS NULL
        AND ${billedThrough} < ${d.shiftMinutes('s.as_of', '-', 's.billing_lag_minutes')}`;
    },
  },
  {
    id: 'usage.outside_allocation_window',
    family: 'usage',
    title: 'Allocation usage lies within the allocation\'s active window',
    severity: 'warn',
    owner: { layer: 'metering_emitter' },
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
    sql: (ctx) => {
      const d = dialectOf(ctx);
      return `WITH ${allocationsOnce(d)},
      windows AS (
        SELECT u.*, a.activated_at, a.released_at, a.status AS allocation_status,
               s.allocation_window_tolerance_minutes AS tolerance_minutes,
               u.start_time < ${d.shiftMinutes('a.activated_at', '-', 's.allocation_window_tolerance_minutes')} AS starts_early,
               u.end_time > ${d.shiftMinutes('a.released_at', '+', 's.allocation_window_tolerance_minutes')} AS ends_late
        FROM usage_records u
        JOIN allocations_once a ON a.allocation_id = u.allocation_id
        CROSS JOIN recon_settings s
        WHERE u.usage_source = 'allocation')
      SELECT ${usageEntity(d, 'w')} AS entity_id, ${usageScope('w')},
             ${d.jsonObject([
               ['problems', d.nonNullList([
                 `CASE WHEN w.starts_early THEN 'starts before activated_at' END`,
                 `CASE WHEN w.ends_late THEN 'ends after released_at' END`,
               ])],
               ['start_time', d.isoTimestamp('w.start_time')],
               ['end_time', d.isoTimestamp('w.end_time')],
               ['activated_at', d.isoTimestamp('w.activated_at')],
               ['released_at', d.isoTimestamp('w.released_at')],
               ['minutes_before_activation', `CASE WHEN w.starts_early THEN round(${d.minutesBetween('w.activated_at', 'w.start_time')}, 2) END`],
               ['minutes_after_release', `CASE WHEN w.ends_late THEN round(${d.minutesBetween('w.end_time', 'w.released_at')}, 2) END`],
               ['tolerance_minutes', 'w.tolerance_minutes'],
               ['allocation_status', 'w.allocation_status'],
             ])} AS detail
      FROM windows w
      WHERE w.starts_early OR w.ends_late`;
    },
  },
];
