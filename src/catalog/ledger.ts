import { firstRowPerKey, rowEntityId, type Dialect } from '../dialect/dialect.ts';
import { DETAIL_LIST_LIMIT, dialectOf, type Invariant } from './types.ts';

/** A ledger row's entity id: its key, or its source location when the key is null. */
const entryEntity = (d: Dialect, alias?: string) => rowEntityId(d, 'ledger_entries', 'ledger_entry_id', alias);

/** The order of a key's entries: the earliest is the legitimate one. */
const entryOrder = (d: Dialect, alias?: string) => {
  const col = (name: string) => (alias ? `${alias}.${name}` : name);
  return `${d.nullsLast(col('created_at'))}, ${d.nullsLast(col('ledger_entry_id'))}, ${col('__file')}, ${col('__line')}`;
};

/** The scope columns of a ledger entry, for invariants whose entity is the entry itself. */
const ENTRY_SCOPE = (l: string) =>
  ['org_id', 'project_id', 'requested_by_user_id', 'ledger_entry_id', 'usage_record_id', 'payment_session_id', 'correlation_id', 'trace_id']
    .map((c) => `${l}.${c}`)
    .join(', ');

// Which currency's duplicated money is reported: the largest known amount, else an unknown one (a
// repeat without an amount), else nothing repeated; ties go to the kept entry's currency, then the code.
const STAKE_ORDER = `CASE WHEN duplicated_minor > 0 THEN 2 WHEN duplicated_minor IS NULL THEN 1 ELSE 0 END DESC,
                     duplicated_minor DESC, kept DESC, currency NULLS LAST`;

/**
 * CTE `duplicated`: the effective entries of one type per referenced row, for rows with more than
 * one. Each ledger entry counts once: a row exported twice (`contract.duplicate_key`) is not a
 * repeat. The earliest entry (created_at, then id) is the legitimate one; what the others add is
 * the duplicated money, in their currency: if they are in several, the currency with the most
 * (STAKE_ORDER).
 */
function duplicateEntriesCtes(d: Dialect, entryType: 'usage_debit' | 'payment_credit', key: 'usage_record_id' | 'payment_session_id'): string {
  const kept = (expr: string) => d.aggregateIf('any_value', expr, 'r.seq = 1');
  return `repeated AS (
        -- Only keys with two or more effective entries need ranking and listing.
        SELECT ${key}
        FROM effective_ledger_entries
        WHERE entry_type = '${entryType}' AND ${key} IS NOT NULL
        GROUP BY ${key}
        HAVING count(*) > 1),
      candidates AS (
        SELECT * FROM effective_ledger_entries
        WHERE entry_type = '${entryType}' AND ${key} IN (SELECT ${key} FROM repeated)),
      entries_once AS (
        ${firstRowPerKey(d, 'candidates', 'ledger_entry_id')}),
      ranked AS (
        SELECT *, row_number() OVER (PARTITION BY ${key} ORDER BY ${entryOrder(d)}) AS seq
        FROM entries_once),
      per_currency AS (
        -- An entry without an amount makes its currency's totals unknown (null).
        SELECT ${key}, currency, ${d.boolOr('seq = 1')} AS kept,
               CASE WHEN count(amount_minor) = count(*) THEN coalesce(sum(amount_minor), 0) END AS total_minor,
               CASE WHEN ${d.aggregateIf('count', 'amount_minor', 'seq > 1')} = ${d.countIf('seq > 1')}
                    THEN coalesce(${d.aggregateIf('sum', 'amount_minor', 'seq > 1')}, 0) END AS duplicated_minor
        FROM ranked
        GROUP BY ${key}, currency),
      at_stake AS (
        SELECT ${key},
               ${d.firstBy('currency', STAKE_ORDER)} AS currency,
               ${d.firstBy('total_minor', STAKE_ORDER)} AS effective_total_minor,
               ${d.firstBy('duplicated_minor', STAKE_ORDER)} AS duplicated_minor
        FROM per_currency
        GROUP BY ${key}),
      duplicated AS (
        SELECT r.${key},
               count(*) AS effective_entries,
               any_value(s.currency) AS currency,
               any_value(s.effective_total_minor) AS effective_total_minor,
               any_value(s.duplicated_minor) AS duplicated_minor,
               ${kept(entryEntity(d, 'r'))} AS kept_entry_id,
               ${kept('r.org_id')} AS kept_org_id,
               ${kept('r.requested_by_user_id')} AS kept_user_id,
               ${kept('r.project_id')} AS kept_project_id,
               ${kept('r.correlation_id')} AS kept_correlation_id,
               ${kept('r.trace_id')} AS kept_trace_id,
               ${d.cappedList(
                 d.struct([
                   ['ledger_entry_id', entryEntity(d, 'r')],
                   ['amount_minor', 'r.amount_minor'],
                   ['currency', 'r.currency'],
                   ['created_at', d.isoTimestamp('r.created_at')],
                   ['idempotency_key', 'r.idempotency_key'],
                 ]),
                 'r.seq',
                 DETAIL_LIST_LIMIT,
               )} AS entries
        FROM ranked r
        JOIN at_stake s ON s.${key} = r.${key}
        GROUP BY r.${key}
        HAVING count(*) > 1)`;
}

const duplicateDetail = (d: Dialect) =>
  d.jsonObject([
    ['effective_entries', 'd.effective_entries'],
    ['kept_entry_id', 'd.kept_entry_id'],
    ['effective_total_minor', 'd.effective_total_minor'],
    ['duplicated_minor', 'd.duplicated_minor'],
    ['currency', 'd.currency'],
    ['entries', 'd.entries'],
  ]);

/** The references a ledger entry makes: its column, the table it names, and the joined key that is NULL when absent. */
/** A ledger entry's references: its column, the table the row must be in, and that table's key. */
const DANGLING = [
  ['usage_record_id', 'usage_records', 'usage_record_id'],
  ['payment_session_id', 'payment_sessions', 'payment_session_id'],
  ['reverses_ledger_entry_id', 'ledger_entries', 'ledger_entry_id'],
] as const;

export const ledgerInvariants: readonly Invariant[] = [
  {
    id: 'ledger.duplicate_debit',
    family: 'ledger',
    title: 'At most one effective usage debit per usage record',
    severity: 'error',
    owner: { layer: 'billing_worker' },
    entity: 'usage_record',
    needs: ['ledger_entries', 'usage_records'],
    runbook:
      'Billing runbook: group usage_debit entries by usage_record_id; more than one means a retry double-charged. ' +
      'Reverse the extra debits (a reversal with actor and correlation id), never delete them.',
    explanation:
      'The same usage interval was charged more than once, typically because the billing worker retried a debit ' +
      'that had already been posted. The money at stake is the duplicated amount: what the effective debits after ' +
      'the one legitimate debit, taken to be the earliest, add, in their currency (a repeat may be posted in ' +
      'another currency than the first debit; if the repeats are in several, the currency with the largest ' +
      'duplicated amount is reported, and the detail lists every debit). A duplicate that was already reversed is ' +
      'no longer counted, and a ledger row the export repeats is one debit (contract.duplicate_key reports it).',
    sql: (ctx) => {
      const d = dialectOf(ctx);
      return `WITH ${duplicateEntriesCtes(d, 'usage_debit', 'usage_record_id')},
      owners AS (
        ${firstRowPerKey(d, 'usage_records', 'usage_record_id', 'usage_record_id IN (SELECT usage_record_id FROM duplicated)')})
      SELECT d.usage_record_id AS entity_id,
             coalesce(u.org_id, d.kept_org_id) AS org_id,
             coalesce(u.project_id, d.kept_project_id) AS project_id,
             coalesce(u.requested_by_user_id, d.kept_user_id) AS requested_by_user_id,
             u.allocation_id, u.app_instance_id, d.usage_record_id, u.usage_source,
             d.duplicated_minor AS amount_minor, CASE WHEN d.duplicated_minor IS NOT NULL THEN d.currency END AS currency,
             coalesce(u.correlation_id, d.kept_correlation_id) AS correlation_id,
             coalesce(u.trace_id, d.kept_trace_id) AS trace_id,
             ${duplicateDetail(d)} AS detail
      FROM duplicated d
      LEFT JOIN owners u USING (usage_record_id)`;
    },
  },
  {
    id: 'ledger.duplicate_credit',
    family: 'ledger',
    title: 'At most one effective payment credit per payment session',
    severity: 'error',
    owner: { layer: 'payments_webhook' },
    entity: 'payment_session',
    needs: ['ledger_entries', 'payment_sessions'],
    runbook:
      'Payments runbook: group payment_credit entries by payment_session_id; more than one means a webhook retry ' +
      'credited the top-up twice. Reverse the extra credits.',
    explanation:
      'One customer payment was credited to the balance more than once, typically because a provider webhook was ' +
      'delivered again and processed twice: the customer can spend money they never paid. The money at stake is ' +
      'the duplicated amount: what the effective credits after the one legitimate credit, taken to be the ' +
      'earliest, add, in their currency (if the repeats are in several currencies, the currency with the largest ' +
      'duplicated amount is reported, and the detail lists every credit). A duplicate that was already reversed is ' +
      'no longer counted, and a ledger row the export repeats is one credit (contract.duplicate_key reports it).',
    moneyKind: `'duplicate_credit'`,
    sql: (ctx) => {
      const d = dialectOf(ctx);
      return `WITH ${duplicateEntriesCtes(d, 'payment_credit', 'payment_session_id')},
      sessions AS (
        ${firstRowPerKey(d, 'payment_sessions', 'payment_session_id', 'payment_session_id IN (SELECT payment_session_id FROM duplicated)')})
      SELECT d.payment_session_id AS entity_id,
             coalesce(p.org_id, d.kept_org_id) AS org_id,
             coalesce(p.requested_by_user_id, d.kept_user_id) AS requested_by_user_id,
             d.payment_session_id,
             d.duplicated_minor AS amount_minor, CASE WHEN d.duplicated_minor IS NOT NULL THEN d.currency END AS currency,
             coalesce(p.correlation_id, d.kept_correlation_id) AS correlation_id,
             coalesce(p.trace_id, d.kept_trace_id) AS trace_id,
             ${duplicateDetail(d)} AS detail
      FROM duplicated d
      LEFT JOIN sessions p USING (payment_session_id)`;
    },
  },
  {
    id: 'ledger.duplicate_idempotency_key',
    family: 'ledger',
    title: 'Every idempotency key is used once',
    severity: 'error',
    owner: {
      layer: 'billing_worker',
      refine: [
        {
          when: `json_extract_string(detail, '$.entry_type') = 'payment_credit'`,
          layer: 'payments_webhook',
          why: 'a credit posted twice under one key is a webhook retry, not a usage charge',
        },
      ],
    },
    entity: 'ledger_entry',
    needs: ['ledger_entries'],
    runbook:
      'Billing runbook: an idempotency key on more than one ledger entry means the ledger did not deduplicate a ' +
      'retry; find every entry of the key and keep one.',
    explanation:
      'Several effective ledger entries carry the same idempotency key, so the protection against double posting ' +
      'did not work and the money moved more than once. Every effective entry of the key is reported; reversals ' +
      'and reversed entries are not counted (CONTRACT.md §1), so a reuse whose extra entry was reversed during ' +
      'remediation is resolved. Money is at stake on each entry that repeats an earlier effective entry of the ' +
      'key: its amount is reported; the first effective entry carries no amount. A ledger row the export repeats ' +
      'is one entry (contract.duplicate_key reports it), so it neither uses a key twice nor repeats itself.',
    sql: (ctx) => {
      const d = dialectOf(ctx);
      return `WITH reused AS (
        -- Only keys on more than one effective row need the per-entry analysis below.
        SELECT idempotency_key
        FROM effective_ledger_entries
        WHERE idempotency_key IS NOT NULL
        GROUP BY idempotency_key
        HAVING count(*) > 1),
      entries AS (
        ${firstRowPerKey(d, 'effective_ledger_entries', 'ledger_entry_id', 'idempotency_key IN (SELECT idempotency_key FROM reused)')}),
      keys AS (
        SELECT idempotency_key, count(*) AS uses,
               ${d.cappedList(entryEntity(d), entryOrder(d), DETAIL_LIST_LIMIT)} AS key_entries
        FROM entries
        GROUP BY idempotency_key
        HAVING count(*) > 1),
      judged AS (
        SELECT e.*, k.uses, k.key_entries,
               first_value(${entryEntity(d, 'e')}) OVER key_order AS first_entry,
               row_number() OVER key_order > 1 AS repeats
        FROM entries e
        JOIN keys k ON k.idempotency_key = e.idempotency_key
        WINDOW key_order AS (PARTITION BY e.idempotency_key ORDER BY ${entryOrder(d, 'e')}))
      SELECT ${entryEntity(d, 'j')} AS entity_id, ${ENTRY_SCOPE('j')},
             CASE WHEN j.repeats THEN j.amount_minor END AS amount_minor,
             CASE WHEN j.repeats THEN j.currency END AS currency,
             ${d.jsonObject([
               ['idempotency_key', 'j.idempotency_key'],
               ['effective_uses', 'j.uses'],
               ['ledger_entry_ids', 'j.key_entries'],
               ['entry_type', 'j.entry_type'],
               ['amount_minor', 'j.amount_minor'],
               ['entry_currency', 'j.currency'],
               ['role', `CASE WHEN j.repeats THEN 'repeats effective entry ' || j.first_entry
                            ELSE 'first effective entry of the key' END`],
             ])} AS detail
      FROM judged j`;
    },
  },
  {
    id: 'ledger.dangling_reference',
    family: 'ledger',
    title: 'Ledger references name existing rows',
    severity: 'error',
    owner: {
      layer: 'billing_worker',
      refine: [
        {
          when: `list_contains(json_extract_string(detail, '$.dangling[*].column'), 'payment_session_id')`,
          layer: 'payments_webhook',
          why: 'the entry credits a payment session the payments service never exported',
        },
      ],
    },
    entity: 'ledger_entry',
    needs: ['ledger_entries', 'usage_records', 'payment_sessions'],
    runbook:
      'Billing runbook: every usage_record_id, payment_session_id and reverses_ledger_entry_id on a ledger entry ' +
      'must resolve; a dangling one is money moved for something that does not exist.',
    explanation:
      'This ledger entry points at a usage record, payment session or ledger entry that is not in the exports: ' +
      'money was charged, credited or reversed for something that cannot be found, so nobody can check that it ' +
      'was right. The money at stake is the entry\'s amount. The detail names each broken reference.',
    sql: (ctx) => {
      const d = dialectOf(ctx);
      // One anti-join per reference, then only the entries with a broken one are read again: a
      // join of every entry against every referenced table cost four times as much on 10M rows.
      const broken = DANGLING.map(
        ([column, table, key], i) => `SELECT l.__file, l.__line, ${i} AS ord,
               ${d.struct([['column', d.string(column)], ['value', `l.${column}`], ['missing_from', d.string(table)]])} AS ref
        FROM ${d.antiJoin({ table: 'ledger_entries', alias: 'l' }, { table, alias: 'x' }, `x.${key} = l.${column}`)}
        WHERE l.${column} IS NOT NULL`,
      );
      return `WITH broken AS (
        ${broken.join('\n        UNION ALL\n        ')}),
      refs AS (
        SELECT __file, __line, ${d.orderedList('ref', 'ord')} AS dangling FROM broken GROUP BY __file, __line)
      SELECT ${entryEntity(d, 'l')} AS entity_id, ${ENTRY_SCOPE('l')},
             l.amount_minor, l.currency,
             ${d.jsonObject([['entry_type', 'l.entry_type'], ['dangling', 'f.dangling']])} AS detail
      FROM refs f
      JOIN ledger_entries l ON l.__file = f.__file AND l.__line = f.__line`;
    },
  },
  {
    id: 'ledger.debit_wrong_account',
    family: 'ledger',
    title: 'Usage debits are posted to the usage owner\'s account',
    severity: 'error',
    owner: { layer: 'attribution_mapping' },
    entity: 'ledger_entry',
    needs: ['ledger_entries', 'usage_records'],
    runbook:
      'Billing runbook: join usage_debit to usage_records; org_id and requested_by_user_id must match, otherwise ' +
      'one customer paid for another\'s usage.',
    explanation:
      'This effective usage debit charged a different organisation or user than the one whose usage it bills: one ' +
      'customer paid for another\'s GPU time, and the owner was not charged. The money at stake is the debit\'s ' +
      'amount. Only org and user define the account; a different project or currency is not a wrong account (a ' +
      'currency error is reported by usage.debit_mismatch). The scope columns are those of the account charged.',
    sql: (ctx) => {
      const d = dialectOf(ctx);
      return `WITH suspect_rows AS (
        -- A plain join finds the few debits that differ from a row of their usage record; it
        -- carries only where the two rows are, which halved its cost on 10M rows ...
        SELECT l.__file AS entry_file, l.__line AS entry_line, u.usage_record_id,
               u.__file AS owner_file, u.__line AS owner_line
        FROM effective_ledger_entries l
        JOIN usage_records u ON u.usage_record_id = l.usage_record_id
        WHERE l.entry_type = 'usage_debit'
          AND (l.org_id IS DISTINCT FROM u.org_id OR l.requested_by_user_id IS DISTINCT FROM u.requested_by_user_id)),
      owners AS (
        -- ... and the record's first row in the export says whose usage it is, even if it is exported twice.
        ${firstRowPerKey(d, 'usage_records', 'usage_record_id', 'usage_record_id IN (SELECT usage_record_id FROM suspect_rows)')}),
      suspects AS (
        SELECT l.*, o.org_id AS owner_org_id, o.requested_by_user_id AS owner_user_id,
               o.allocation_id AS owner_allocation_id, o.app_instance_id AS owner_app_instance_id,
               o.usage_source AS owner_usage_source
        FROM suspect_rows k
        JOIN owners o ON o.__file = k.owner_file AND o.__line = k.owner_line
        JOIN ledger_entries l ON l.__file = k.entry_file AND l.__line = k.entry_line)
      SELECT ${entryEntity(d, 'l')} AS entity_id, ${ENTRY_SCOPE('l')},
             l.owner_allocation_id AS allocation_id, l.owner_app_instance_id AS app_instance_id,
             l.owner_usage_source AS usage_source,
             l.amount_minor, l.currency,
             ${d.jsonObject([
               ['expected', d.jsonObject([['org_id', 'l.owner_org_id'], ['requested_by_user_id', 'l.owner_user_id']])],
               ['actual', d.jsonObject([['org_id', 'l.org_id'], ['requested_by_user_id', 'l.requested_by_user_id']])],
               ['mismatched', d.nonNullList([
                 `CASE WHEN l.org_id IS DISTINCT FROM l.owner_org_id THEN 'org_id' END`,
                 `CASE WHEN l.requested_by_user_id IS DISTINCT FROM l.owner_user_id THEN 'requested_by_user_id' END`,
               ])],
             ])} AS detail
      FROM suspects l`;
    },
  },
  {
    id: 'ledger.unaudited_adjustment',
    family: 'ledger',
    title: 'Manual entries name an actor and a correlation id',
    severity: 'warn',
    owner: { layer: 'billing_worker' },
    entity: 'ledger_entry',
    needs: ['ledger_entries'],
    runbook:
      'Billing runbook: every remediation entry (adjustment or reversal) must record who made it (actor) and the ' +
      'incident it belongs to (correlation_id).',
    explanation:
      'A manual adjustment or a reversal was posted without saying who made it or which incident it belongs to, so ' +
      'it cannot be audited: nobody can tell whether it was an authorised correction. Reversed adjustments are ' +
      'reported too, because the missing audit trail is the defect. A blank value counts as missing. The money at ' +
      'stake is the entry\'s amount.',
    sql: (ctx) => {
      const d = dialectOf(ctx);
      const blank = (expr: string) => `nullif(${d.trimSpaces(expr)}, '') IS NULL`;
      return `SELECT ${entryEntity(d, 'l')} AS entity_id, ${ENTRY_SCOPE('l')},
             l.amount_minor, l.currency,
             ${d.jsonObject([
               ['entry_type', 'l.entry_type'],
               ['missing', d.nonNullList([
                 `CASE WHEN ${blank('l.actor')} THEN 'actor' END`,
                 `CASE WHEN ${blank('l.correlation_id')} THEN 'correlation_id' END`,
               ])],
               ['actor', 'l.actor'],
               ['reverses_ledger_entry_id', 'l.reverses_ledger_entry_id'],
               ['created_at', d.isoTimestamp('l.created_at')],
             ])} AS detail
      FROM ledger_entries l
      WHERE l.entry_type IN ('adjustment_debit', 'adjustment_credit', 'reversal')
        AND (${blank('l.actor')} OR ${blank('l.correlation_id')})`;
    },
  },
  {
    id: 'ledger.balance_projection',
    family: 'ledger',
    title: 'Customer balances equal the ledger',
    severity: 'error',
    owner: { layer: 'ui_export' },
    entity: 'balance',
    needs: ['balances', 'ledger_entries'],
    runbook:
      'Billing runbook: recompute each balance as effective credits minus effective debits up to its as_of and ' +
      'compare with the balance the customer sees.',
    explanation:
      'The balance shown to the customer differs from what the ledger says it should be: the effective credits ' +
      'minus the effective debits of that org, user and currency, posted up to the balance\'s as_of (entries in ' +
      'another currency do not count; an account with no entries should show 0). The customer sees more or less ' +
      'money than they have. The money at stake is the absolute difference. If the export holds several balance ' +
      'rows for one account, each is checked and the latest mismatching one is reported, with the number of ' +
      'mismatching rows. Each ledger entry counts once, even if the export repeats its row.',
    sql: (ctx) => {
      const d = dialectOf(ctx);
      return `WITH entries_once AS (
        ${firstRowPerKey(d, 'effective_ledger_entries', 'ledger_entry_id')}),
      projected AS (
        SELECT b.org_id, b.requested_by_user_id, b.currency, b.as_of, b.balance_minor, b.__file, b.__line,
               coalesce(${d.aggregateIf('sum', 'l.amount_minor', `l.direction = 'credit'`)}, 0) AS credits_minor,
               coalesce(${d.aggregateIf('sum', 'l.amount_minor', `l.direction = 'debit'`)}, 0) AS debits_minor,
               count(l.__line) AS entries
        FROM balances b
        LEFT JOIN entries_once l
          ON l.org_id = b.org_id AND l.requested_by_user_id = b.requested_by_user_id
         AND l.currency = b.currency AND l.created_at <= b.as_of
        GROUP BY b.org_id, b.requested_by_user_id, b.currency, b.as_of, b.balance_minor, b.__file, b.__line),
      mismatched AS (
        SELECT *, credits_minor - debits_minor AS expected_minor,
               balance_minor - (credits_minor - debits_minor) AS difference_minor
        FROM projected
        WHERE balance_minor <> credits_minor - debits_minor),
      latest AS (
        SELECT *, count(*) OVER account AS mismatched_rows,
               row_number() OVER (account ORDER BY as_of DESC, __file DESC, __line DESC) AS recency
        FROM mismatched
        WINDOW account AS (PARTITION BY org_id, requested_by_user_id, currency))
      SELECT coalesce(org_id, '') || '|' || coalesce(requested_by_user_id, '') || '|' || coalesce(currency, '') AS entity_id,
             org_id, requested_by_user_id,
             abs(difference_minor) AS amount_minor, currency,
             ${d.jsonObject([
               ['as_of', d.isoTimestamp('as_of')],
               ['balance_minor', 'balance_minor'],
               ['expected_minor', 'expected_minor'],
               ['difference_minor', 'difference_minor'],
               ['effective_credits_minor', 'credits_minor'],
               ['effective_debits_minor', 'debits_minor'],
               ['effective_entries', 'entries'],
               ['mismatched_balance_rows', 'mismatched_rows'],
             ])} AS detail
      FROM latest
      WHERE recency = 1`;
    },
  },
];
