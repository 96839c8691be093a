import { firstRowPerKey, rowEntityId, type Dialect } from '../dialect/dialect.ts';
import { DETAIL_LIST_LIMIT, dialectOf, type Invariant } from './types.ts';

/**
 * CTEs `credit_rows` and `credits`: the effective payment credits of the sessions `sessions` (a
 * query of payment_session_id: the few reported) selects, for the details; each entry listed once.
 */
function sessionCredits(d: Dialect, sessions: string): string {
  return `credit_rows AS (
        SELECT * FROM effective_ledger_entries
        WHERE entry_type = 'payment_credit' AND payment_session_id IN (${sessions})),
      credits AS (
        SELECT payment_session_id,
               ${d.cappedList(rowEntityId(d, 'ledger_entries', 'ledger_entry_id'), `${d.nullsLast('created_at')}, ${d.nullsLast('ledger_entry_id')}, __file, __line`, DETAIL_LIST_LIMIT)} AS ledger_entry_ids
        FROM (${firstRowPerKey(d, 'credit_rows', 'ledger_entry_id')})
        GROUP BY payment_session_id)`;
}

/** A payment session's entity id: its key, or its source location when the key is null. */
const sessionEntity = (d: Dialect) => rowEntityId(d, 'payment_sessions', 'payment_session_id', 'p');

const SESSION_SCOPE = 'p.org_id, p.requested_by_user_id, p.payment_session_id, p.ledger_entry_id, p.amount_minor, p.currency, p.correlation_id, p.trace_id';

export const paymentsInvariants: readonly Invariant[] = [
  {
    id: 'payments.failed_reconcile',
    family: 'payments',
    title: 'No payment session is stuck in failed_reconcile',
    severity: 'error',
    owner: { layer: 'payments_webhook' },
    entity: 'payment_session',
    needs: ['payment_sessions', 'ledger_entries'],
    runbook:
      'Payments runbook: sessions in failed_reconcile were paid at the provider but could not be matched to a ' +
      'credit; look each one up at the provider and credit it (or refund it) by hand.',
    explanation:
      'The payment provider and our ledger disagree about this top-up and automatic reconciliation gave up: the ' +
      'customer may have paid without being credited, or been credited for a payment that did not go through. The ' +
      'money at stake is the session amount. The detail lists the provider reference and any effective credit the ' +
      'ledger already holds for the session.',
    sql: (ctx) => {
      const d = dialectOf(ctx);
      return `WITH ${sessionCredits(d, `SELECT payment_session_id FROM payment_sessions WHERE status = 'failed_reconcile'`)}
      SELECT ${sessionEntity(d)} AS entity_id, ${SESSION_SCOPE},
             ${d.jsonObject([
               ['status', 'p.status'],
               ['provider', 'p.provider'],
               ['provider_session_id', 'p.provider_session_id'],
               ['amount_minor', 'p.amount_minor'],
               ['currency', 'p.currency'],
               ['created_at', d.isoTimestamp('p.created_at')],
               ['completed_at', d.isoTimestamp('p.completed_at')],
               ['ledger_entry_id', 'p.ledger_entry_id'],
               ['effective_credits', `coalesce(c.ledger_entry_ids, ${d.emptyStringList()})`],
             ])} AS detail
      FROM payment_sessions p
      LEFT JOIN credits c ON c.payment_session_id = p.payment_session_id
      WHERE p.status = 'failed_reconcile'`;
    },
  },
  {
    id: 'payments.completed_without_credit',
    family: 'payments',
    title: 'Every completed payment is credited, once, for its amount',
    severity: 'error',
    owner: { layer: 'payments_webhook' },
    entity: 'payment_session',
    needs: ['payment_sessions', 'ledger_entries'],
    runbook:
      'Payments runbook: a completed session must name its ledger credit, and that credit must be an effective ' +
      'payment_credit of the same session, amount and currency; otherwise the webhook was lost or mis-applied.',
    explanation:
      'The customer paid (the session is completed) but the ledger does not show the matching credit: the session ' +
      'names no ledger entry, names one that does not exist, or names one that is not an effective payment credit ' +
      'of this session for the same amount and currency (a credit that was reversed no longer counts). The customer ' +
      'paid for money they cannot spend. An entry without a type, an amount or a currency matches nothing. The ' +
      'money at stake is the session amount. The detail lists every problem with the named entry and any effective ' +
      'credit the session has under another id.',
    sql: (ctx) => {
      const d = dialectOf(ctx);
      return `WITH completed AS (
        SELECT * FROM payment_sessions WHERE status = 'completed'),
      named_rows AS (
        -- The entry each completed session names, one row per id: a row exported twice is one entry.
        ${firstRowPerKey(d, 'ledger_entries', 'ledger_entry_id', 'ledger_entry_id IN (SELECT ledger_entry_id FROM completed)')}),
      reversals AS (
        SELECT reverses_ledger_entry_id AS ledger_entry_id,
               ${d.sortedSet(rowEntityId(d, 'ledger_entries', 'ledger_entry_id'))} AS reversed_by
        FROM ledger_entries
        WHERE entry_type = 'reversal' AND reverses_ledger_entry_id IN (SELECT ledger_entry_id FROM completed)
        GROUP BY reverses_ledger_entry_id),
      named AS (
        -- Effective or not, matched row by row.
        SELECT n.*, e.__line IS NOT NULL AS effective, r.reversed_by
        FROM named_rows n
        LEFT JOIN (SELECT __file, __line FROM effective_ledger_entries
                   WHERE ledger_entry_id IN (SELECT ledger_entry_id FROM completed)) e
          ON e.__file = n.__file AND e.__line = n.__line
        LEFT JOIN reversals r ON r.ledger_entry_id = n.ledger_entry_id),
      checked AS (
        SELECT p.*, n.ledger_entry_id IS NOT NULL AS entry_found, n.entry_type, n.payment_session_id AS entry_session_id,
               n.amount_minor AS entry_amount_minor, n.currency AS entry_currency, n.reversed_by,
               CASE WHEN n.ledger_entry_id IS NOT NULL THEN ${d.nonNullList([
                 `CASE WHEN n.entry_type IS NULL THEN 'the entry has no entry_type, so it is not a payment_credit'
                      WHEN n.entry_type <> 'payment_credit' THEN 'the entry is a ' || n.entry_type || ', not a payment_credit' END`,
                 `CASE WHEN n.entry_type IS DISTINCT FROM 'reversal' AND NOT n.effective THEN 'the entry was reversed' END`,
                 `CASE WHEN n.payment_session_id IS DISTINCT FROM p.payment_session_id
                      THEN 'the entry credits payment session ' || coalesce(n.payment_session_id, '(none)') END`,
                 `CASE WHEN n.amount_minor IS NULL THEN 'the entry has no amount'
                      WHEN n.amount_minor IS DISTINCT FROM p.amount_minor THEN 'the entry amount differs from the session amount' END`,
                 `CASE WHEN n.currency IS NULL THEN 'the entry has no currency'
                      WHEN n.currency IS DISTINCT FROM p.currency THEN 'the entry currency differs from the session currency' END`,
               ])}
               WHEN p.ledger_entry_id IS NULL THEN ['the session names no ledger entry']
               ELSE ['the named ledger entry does not exist'] END AS problems
        FROM completed p
        LEFT JOIN named n ON n.ledger_entry_id = p.ledger_entry_id),
      ${sessionCredits(d, `SELECT payment_session_id FROM checked WHERE ${d.listLength('problems')} > 0`)}
      SELECT ${sessionEntity(d)} AS entity_id, ${SESSION_SCOPE},
             ${d.jsonObject([
               ['problems', 'p.problems'],
               ['amount_minor', 'p.amount_minor'],
               ['currency', 'p.currency'],
               ['completed_at', d.isoTimestamp('p.completed_at')],
               ['ledger_entry_id', 'p.ledger_entry_id'],
               ['entry', `CASE WHEN p.entry_found THEN ${d.jsonObject([
                 ['entry_type', 'p.entry_type'],
                 ['payment_session_id', 'p.entry_session_id'],
                 ['amount_minor', 'p.entry_amount_minor'],
                 ['currency', 'p.entry_currency'],
                 ['reversed_by', 'p.reversed_by'],
               ])} END`],
               ['effective_credits', `coalesce(c.ledger_entry_ids, ${d.emptyStringList()})`],
             ])} AS detail
      FROM checked p
      LEFT JOIN credits c ON c.payment_session_id = p.payment_session_id
      WHERE ${d.listLength('p.problems')} > 0`;
    },
  },
];
