import type { Db } from '../db.ts';
import { InputError, errorMessage } from '../errors.ts';
import { VIOLATION_COLUMNS } from '../contract/violations.ts';
import { toViolation } from '../findings/io.ts';
import { IDENTITY_SQL, sameViolationSql } from '../findings/identity.ts';
import { atStakeSql, moneyItemsSql } from '../findings/money.ts';
import { sqlList } from '../sql.ts';
import { LIST_LIMIT, type DiffDocument, type DiffMoneyItem, type PersistingViolation } from './diff-document.ts';

/**
 * The diff's matching in DuckDB: the violations of both sides (tables `v_before`, `v_after`)
 * matched by identity into table `d`, the money items of both sides into table `items`, and what
 * diff.json lists and counts from them. `inScope` is the SQL condition of what the diff judges.
 */

const COLUMNS = VIOLATION_COLUMNS.map((c) => c.name).join(', ');

/**
 * One row per (invariant_id, entity_id). The contract reports one violation per entity, but a
 * key shared by two rows (itself a `contract.duplicate_key`) can give two `contract.invalid_value`
 * rows with one entity id; the first in a total order is compared and the diff says so.
 */
export async function loadViolations(db: Db, table: string, file: string, role: string): Promise<number> {
  try {
    await db.run(`CREATE TABLE ${table}_all AS SELECT ${COLUMNS} FROM read_parquet($file)`, { file });
  } catch (err) {
    throw new InputError(`recon diff: ${role} ${file} is not a violations file of this recon version: ${errorMessage(err).split('\n')[0]}`, { cause: err });
  }
  await db.run(`CREATE TABLE ${table} AS SELECT * FROM ${table}_all
    QUALIFY row_number() OVER (PARTITION BY ${IDENTITY_SQL} ORDER BY ${COLUMNS}) = 1`);
  const n = await db.one<{ all: bigint; dedup: bigint }>(
    `SELECT (SELECT count(*) FROM ${table}_all) AS all, (SELECT count(*) FROM ${table}) AS dedup`,
  );
  return Number((n?.all ?? 0n) - (n?.dedup ?? 0n));
}

export interface MatchCounts {
  not_comparable: number;
  resolved: number;
  persisting: number;
  introduced: number;
  open_error_introduced: number;
  open_error_persisting: number;
}

const SCOPE_COLUMNS = VIOLATION_COLUMNS.map((c) => c.name).filter(
  (n) => !['invariant_id', 'entity_id', 'severity', 'amount_minor', 'currency', 'detail', 'waived', 'waiver_reason'].includes(n),
);

/**
 * Table `d`: one row per (invariant_id, entity_id) of either side, with its status, the
 * severity and scope of its latest side, and the money and detail before and after. A key is
 * `open` when its latest side is not waived.
 */
export async function matchViolations(db: Db, notComparable: readonly string[], inScope: string): Promise<MatchCounts> {
  // A check that did not run on one side says nothing there: its violations are neither resolved nor introduced.
  await db.run(`CREATE TABLE d AS
    SELECT coalesce(a.invariant_id, b.invariant_id) AS invariant_id, coalesce(a.entity_id, b.entity_id) AS entity_id,
      CASE WHEN coalesce(a.invariant_id, b.invariant_id) IN (${notComparable.length ? sqlList(notComparable) : 'NULL'}) THEN 'not_comparable'
           WHEN b.invariant_id IS NULL THEN 'introduced' WHEN a.invariant_id IS NULL THEN 'resolved' ELSE 'persisting' END AS status,
      coalesce(a.severity, b.severity) AS severity,
      NOT coalesce(a.waived, b.waived, false) AS open,
      ${SCOPE_COLUMNS.map((c) => `coalesce(a.${c}, b.${c}) AS ${c}`).join(', ')},
      b.amount_minor AS before_amount_minor, b.currency AS before_currency, coalesce(b.waived, false) AS before_waived,
      a.amount_minor AS after_amount_minor, a.currency AS after_currency, coalesce(a.waived, false) AS after_waived,
      b.detail AS before_detail, a.detail AS after_detail
    FROM v_before b FULL OUTER JOIN v_after a ON ${sameViolationSql('a', 'b')}`);
  const c = await db.one<Record<keyof MatchCounts, bigint>>(`SELECT
      count(*) FILTER (WHERE status = 'not_comparable' AND ${inScope}) AS not_comparable,
      count(*) FILTER (WHERE status = 'resolved' AND ${inScope}) AS resolved,
      count(*) FILTER (WHERE status = 'persisting' AND ${inScope}) AS persisting,
      count(*) FILTER (WHERE status = 'introduced' AND ${inScope}) AS introduced,
      count(*) FILTER (WHERE status = 'introduced' AND open AND severity = 'error' AND ${inScope}) AS open_error_introduced,
      count(*) FILTER (WHERE status = 'persisting' AND open AND severity = 'error' AND ${inScope}) AS open_error_persisting
    FROM d`);
  return {
    not_comparable: Number(c?.not_comparable ?? 0n),
    resolved: Number(c?.resolved ?? 0n),
    persisting: Number(c?.persisting ?? 0n),
    introduced: Number(c?.introduced ?? 0n),
    open_error_introduced: Number(c?.open_error_introduced ?? 0n),
    open_error_persisting: Number(c?.open_error_persisting ?? 0n),
  };
}

const emptyMoney = (): DiffDocument['money'] => ({ before: {}, after: {}, resolved: {}, persisting_before: {}, persisting_after: {}, introduced: {} });

/** Per-violation sums per currency (overlapping), summed in DuckDB; waived violations excluded, as in the audit. */
export async function overlappingMoney(db: Db, inScope: string): Promise<DiffDocument['money']> {
  const side = (name: string, prefix: 'before' | 'after', statuses: string) =>
    `SELECT '${name}' AS k, ${prefix}_currency AS currency, sum(${prefix}_amount_minor)::HUGEINT AS amount FROM d
     WHERE status IN (${statuses}) AND ${atStakeSql(`${prefix}_`)} AND ${inScope}
     GROUP BY ${prefix}_currency`;
  const rows = await db.all<{ k: keyof DiffDocument['money']; currency: string; amount: bigint }>(
    [
      side('before', 'before', `'resolved', 'persisting'`),
      side('after', 'after', `'persisting', 'introduced'`),
      side('resolved', 'before', `'resolved'`),
      side('persisting_before', 'before', `'persisting'`),
      side('persisting_after', 'after', `'persisting'`),
      side('introduced', 'after', `'introduced'`),
    ].join('\nUNION ALL\n') + '\nORDER BY k, currency',
  );
  const money = emptyMoney();
  for (const r of rows) money[r.k][r.currency] = BigInt(r.amount);
  return money;
}

/**
 * Table `items`: the money items of both sides (src/findings/money.ts), each priced once per side, with
 * its status: resolved (priced only before), introduced (only after), persisting (both).
 */
export async function matchMoneyItems(db: Db, inScope: string): Promise<void> {
  await db.run(`CREATE TABLE items AS
    WITH b AS (${moneyItemsSql('v_before', [], inScope)}),
         a AS (${moneyItemsSql('v_after', [], inScope)})
    SELECT coalesce(a.item, b.item) AS item, coalesce(a.currency, b.currency) AS currency,
           CASE WHEN b.item IS NULL THEN 'introduced' WHEN a.item IS NULL THEN 'resolved' ELSE 'persisting' END AS status,
           coalesce(b.error_minor, b.warn_minor) AS before_minor, CASE WHEN b.error_minor IS NOT NULL THEN 'error' WHEN b.item IS NOT NULL THEN 'warn' END AS before_severity,
           coalesce(a.error_minor, a.warn_minor) AS after_minor, CASE WHEN a.error_minor IS NOT NULL THEN 'error' WHEN a.item IS NOT NULL THEN 'warn' END AS after_severity,
           coalesce(a.invariant_ids, b.invariant_ids) AS invariant_ids
    FROM b FULL OUTER JOIN a ON a.item = b.item AND a.currency = b.currency`);
}

/** Money at stake per currency from \`items\`, each movement once; with \`severity\`, only the items priced at it. */
export async function itemMoney(db: Db, severity?: 'error' | 'warn'): Promise<DiffDocument['money']> {
  const sev = (side: 'before' | 'after') => (severity ? `AND ${side}_severity = '${severity}'` : '');
  const part = (name: string, side: 'before' | 'after', statuses: string) =>
    `SELECT '${name}' AS k, currency, sum(${side}_minor)::HUGEINT AS amount FROM items
     WHERE status IN (${statuses}) AND ${side}_minor IS NOT NULL ${sev(side)} GROUP BY currency`;
  const rows = await db.all<{ k: keyof DiffDocument['money']; currency: string; amount: bigint }>(
    [
      part('before', 'before', `'resolved', 'persisting'`),
      part('after', 'after', `'persisting', 'introduced'`),
      part('resolved', 'before', `'resolved'`),
      part('persisting_before', 'before', `'persisting'`),
      part('persisting_after', 'after', `'persisting'`),
      part('introduced', 'after', `'introduced'`),
    ].join('\nUNION ALL\n') + '\nORDER BY k, currency',
  );
  const money = emptyMoney();
  for (const r of rows) money[r.k][r.currency] = BigInt(r.amount);
  return money;
}

export async function itemList(db: Db, status: 'resolved' | 'introduced'): Promise<DiffMoneyItem[]> {
  const side = status === 'resolved' ? 'before' : 'after';
  const rows = await db.all<{ item: string; currency: string; amount_minor: bigint; severity: 'error' | 'warn'; invariant_ids: { items: unknown[] } }>(
    `SELECT item, currency, ${side}_minor::HUGEINT AS amount_minor, ${side}_severity AS severity, invariant_ids FROM items
     WHERE status = '${status}' ORDER BY currency, abs(${side}_minor::HUGEINT) DESC, item LIMIT ${LIST_LIMIT}`,
  );
  return rows.map((r) => ({ ...r, amount_minor: BigInt(r.amount_minor), invariant_ids: r.invariant_ids.items.map(String) }));
}

/**
 * The violations resolved, introduced and persisting, for diff.json (capped at LIST_LIMIT; every
 * row is in diff.parquet). `comparable` leaves out the checks that did not run on both sides.
 */
export async function listedViolations(db: Db, inScope: string, comparable: string) {
  const order = `ORDER BY invariant_id, entity_id LIMIT ${LIST_LIMIT}`;
  const on = sameViolationSql('a', 'b');
  const rows = async (sql: string) => (await db.all(sql)).map(toViolation);
  const resolved = await rows(`SELECT * FROM v_before b WHERE NOT EXISTS (SELECT 1 FROM v_after a WHERE ${on}) AND ${inScope} ${comparable} ${order}`);
  const introduced = await rows(`SELECT * FROM v_after a WHERE NOT EXISTS (SELECT 1 FROM v_before b WHERE ${on}) AND ${inScope} ${comparable} ${order}`);
  const persistingAfter = await rows(`SELECT * FROM v_after a WHERE EXISTS (SELECT 1 FROM v_before b WHERE ${on}) AND ${inScope} ${comparable} ${order}`);
  const persistingBefore = await rows(`SELECT * FROM v_before b WHERE EXISTS (SELECT 1 FROM v_after a WHERE ${on}) AND ${inScope} ${comparable} ${order}`);
  // Keys are unique on each side and both lists are in key order, so they pair up by index.
  const persisting: PersistingViolation[] = persistingAfter.map((a, i) => ({
    invariant_id: a.invariant_id,
    entity_id: a.entity_id,
    before: persistingBefore[i]!,
    after: a,
  }));

  return { resolved, introduced, persisting };
}

/** In a tenant-scoped diff, the violations that name no tenant: listed apart, not judged. */
export async function withoutTenant(db: Db, tenantScoped: boolean): Promise<DiffDocument['without_tenant']> {
  if (!tenantScoped) return { applies: false, resolved: 0, persisting: 0, introduced: 0, violations: [] };
  const c = await db.one<{ resolved: bigint; persisting: bigint; introduced: bigint }>(
    `SELECT count(*) FILTER (WHERE status = 'resolved') AS resolved, count(*) FILTER (WHERE status = 'persisting') AS persisting,
            count(*) FILTER (WHERE status = 'introduced') AS introduced FROM d WHERE org_id IS NULL`,
  );
  const violations = await db.all<{ invariant_id: string; entity_id: string; status: string; severity: string }>(
    `SELECT invariant_id, entity_id, status, severity FROM d WHERE org_id IS NULL ORDER BY invariant_id, entity_id LIMIT ${LIST_LIMIT}`,
  );
  return { applies: true, resolved: Number(c?.resolved ?? 0n), persisting: Number(c?.persisting ?? 0n), introduced: Number(c?.introduced ?? 0n), violations };
}

export async function countsByInvariant(db: Db, inScope: string): Promise<DiffDocument['summary']['by_invariant']> {
  return (
    await db.all<{ invariant_id: string; severity: string; resolved: bigint; persisting: bigint; introduced: bigint }>(
      `SELECT invariant_id, min(severity) AS severity, count(*) FILTER (WHERE status = 'resolved') AS resolved,
              count(*) FILTER (WHERE status = 'persisting') AS persisting, count(*) FILTER (WHERE status = 'introduced') AS introduced
       FROM d WHERE ${inScope} GROUP BY invariant_id ORDER BY invariant_id`,
    )
  ).map((r) => ({ ...r, resolved: Number(r.resolved), persisting: Number(r.persisting), introduced: Number(r.introduced) }));
}
