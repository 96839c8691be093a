import type { Db } from '../db.ts';
import { sqlString } from '../sql.ts';

/**
 * Money totals that count each money movement once (CONTRACT.md §3). One defect is seen by
 * several invariants (a double debit is a `ledger.duplicate_debit`, a `usage.debit_mismatch` and a
 * `ledger.duplicate_idempotency_key`), each pricing it from its own angle; a total that added
 * those up would count the same cents two or three times. So violations are grouped into *money
 * items* — the usage record, payment session or ledger entry they price, where a ledger entry
 * counts as the usage record or payment session it names — and each item is priced once, at the
 * largest of its violations' amounts in each currency.
 *
 * Error and warning money are totalled apart, and never overlap: an item's error money is its
 * largest error-severity amount; its warning money is its largest warning amount only when no
 * error prices the item in that currency, so error + warning is still each movement once.
 * Waived violations count nowhere, as in the per-invariant sums. Everything is summed in DuckDB
 * as HUGEINT and reaches JavaScript as bigint.
 */

/**
 * ISO 4217 minor-unit exponents that are not 2 (ISO 4217 list one, 2024). Written out rather
 * than taken from ICU, whose CLDR data rounds some currencies differently from the standard
 * (e.g. ISK, IDR); any other 3-letter code has 2.
 */
export const ISO_4217_EXPONENT: Readonly<Record<string, number>> = {
  BIF: 0, CLP: 0, DJF: 0, GNF: 0, ISK: 0, JPY: 0, KMF: 0, KRW: 0, PYG: 0, RWF: 0, UGX: 0, UYI: 0,
  VND: 0, VUV: 0, XAF: 0, XOF: 0, XPF: 0,
  BHD: 3, IQD: 3, JOD: 3, KWD: 3, LYD: 3, OMR: 3, TND: 3,
  CLF: 4, UYW: 4,
};

/**
 * SQL: a violation whose money counts as at stake: not waived, with an amount and a currency.
 * Every sum of money at stake (per invariant, per tenant or app instance, the de-duplicated
 * totals, the history, the diff) filters by this one rule. `prefix` reads one side of a diff's
 * matched rows (`before_` reads before_waived, before_amount_minor, before_currency).
 */
export function atStakeSql(prefix = ''): string {
  return `NOT coalesce(${prefix}waived, false) AND ${prefix}amount_minor IS NOT NULL AND ${prefix}currency IS NOT NULL`;
}

/** The money item a violation prices: `usage_record:ur_1`, `payment_session:ps_2`, `ledger_entry:le_3`, or its own identity. */
export const MONEY_ITEM_SQL = `coalesce(
    'usage_record:' || usage_record_id,
    'payment_session:' || payment_session_id,
    'ledger_entry:' || ledger_entry_id,
    CASE WHEN entity_type IN ('usage_record', 'payment_session', 'ledger_entry') THEN entity_type || ':' || entity_id END,
    invariant_id || ':' || entity_id)`;

/**
 * One row per (group columns, item, currency) of the priced, open violations of `source`, with
 * `error_minor` / `warn_minor` (NULL when none) and the invariants that priced it. `group` are
 * column names of `source` (e.g. `['org_id']`); `where` narrows the violations.
 */
export function moneyItemsSql(source: string, group: readonly string[] = [], where = 'true'): string {
  const g = group.map((c) => `${c}, `).join('');
  // The largest amount by size (a negative amount keeps its sign); abs on HUGEINT cannot overflow.
  const largest = (cond: string) => `arg_max(amount_minor, abs(amount_minor::HUGEINT)) FILTER (WHERE ${cond})`;
  return `SELECT ${g}item, currency,
         ${largest(`severity = 'error'`)} AS error_minor,
         CASE WHEN count(*) FILTER (WHERE severity = 'error') = 0 THEN ${largest(`severity <> 'error'`)} END AS warn_minor,
         list(DISTINCT invariant_id ORDER BY invariant_id) AS invariant_ids,
         count(*) AS violations
  FROM (SELECT *, ${MONEY_ITEM_SQL} AS item FROM ${source}
        WHERE ${atStakeSql()} AND (${where}))
  GROUP BY ${g}item, currency`;
}

/** Per (group columns, currency): de-duplicated total, error and warning money, and how many items. */
export function moneyTotalsSql(source: string, group: readonly string[] = [], where = 'true'): string {
  const g = group.map((c) => `${c}, `).join('');
  return `SELECT ${g}currency,
         sum(coalesce(error_minor, warn_minor))::HUGEINT AS total_minor,
         coalesce(sum(error_minor), 0)::HUGEINT AS error_minor,
         coalesce(sum(warn_minor), 0)::HUGEINT AS warn_minor,
         count(*) AS items
  FROM (${moneyItemsSql(source, group, where)})
  GROUP BY ${g}currency`;
}

export type MoneyByCurrency = Record<string, bigint>;

export interface MoneyTotals {
  /** Each money movement once, error and warning together. */
  total: MoneyByCurrency;
  error: MoneyByCurrency;
  warn: MoneyByCurrency;
  /** Money items counted, all currencies. */
  items: number;
}

function sorted(m: MoneyByCurrency): MoneyByCurrency {
  return Object.fromEntries(Object.entries(m).sort(([a], [b]) => a.localeCompare(b)));
}

/** The de-duplicated totals of a violations table (or any query with its columns). */
export async function moneyTotals(db: Db, source = 'violations', where = 'true'): Promise<MoneyTotals> {
  const rows = await db.all<{ currency: string; total_minor: bigint; error_minor: bigint; warn_minor: bigint; items: bigint }>(
    `${moneyTotalsSql(source, [], where)} ORDER BY currency`,
  );
  const out: MoneyTotals = { total: {}, error: {}, warn: {}, items: 0 };
  for (const r of rows) {
    out.total[r.currency] = BigInt(r.total_minor);
    if (r.error_minor !== 0n) out.error[r.currency] = BigInt(r.error_minor);
    if (r.warn_minor !== 0n) out.warn[r.currency] = BigInt(r.warn_minor);
    out.items += Number(r.items);
  }
  return { total: sorted(out.total), error: sorted(out.error), warn: sorted(out.warn), items: out.items };
}

export interface MoneyItem {
  item: string;
  currency: string;
  /** The item's price: its error money, else its warning money. */
  amount_minor: bigint;
  severity: 'error' | 'warn';
  invariant_ids: string[];
}

/** The counted money movements themselves, largest first (capped): what a total is made of. */
export async function moneyItems(db: Db, source = 'violations', where = 'true', limit = 1000): Promise<MoneyItem[]> {
  const rows = await db.all<{ item: string; currency: string; amount_minor: bigint; severity: 'error' | 'warn'; invariant_ids: { items: unknown[] } }>(
    `SELECT item, currency, coalesce(error_minor, warn_minor)::HUGEINT AS amount_minor,
            CASE WHEN error_minor IS NOT NULL THEN 'error' ELSE 'warn' END AS severity, invariant_ids
     FROM (${moneyItemsSql(source, [], where)})
     ORDER BY currency, abs(amount_minor) DESC, item LIMIT ${Math.max(0, Math.trunc(limit))}`,
  );
  return rows.map((r) => ({ ...r, amount_minor: BigInt(r.amount_minor), invariant_ids: r.invariant_ids.items.map(String) }));
}

/**
 * SQL: minor units as an exact decimal text in major units (`48360`, `EUR` → `483.60`; JPY has no
 * decimals), the same text as minorToDecimal, for violations.csv/parquet. String arithmetic on
 * the digits, never a float or a DECIMAL cast that could overflow; NULL without a currency.
 */
export function majorUnitsSql(amount: string, currency: string): string {
  const exponents = Object.entries(ISO_4217_EXPONENT)
    .map(([code, d]) => `WHEN ${sqlString(code)} THEN ${d}`)
    .join(' ');
  const d = `(CASE ${currency} ${exponents} ELSE 2 END)`;
  // Padded to at least d + 1 digits; lpad would cut a longer string.
  const abs = `abs(${amount}::HUGEINT)::VARCHAR`;
  const digits = `(repeat('0', greatest(0, ${d} + 1 - length(${abs}))) || ${abs})`;
  return `CASE WHEN ${amount} IS NULL OR ${currency} IS NULL THEN NULL ELSE
    (CASE WHEN ${amount} < 0 THEN '-' ELSE '' END) ||
    CASE WHEN ${d} = 0 THEN ${digits} ELSE left(${digits}, length(${digits}) - ${d}) || '.' || right(${digits}, ${d}) END END`;
}
