import { listValue } from '@duckdb/node-api';
import { CATALOG } from '../catalog/index.ts';
import type { Db } from '../db.ts';
import type { AppInstanceRow, BackingRow, BackingSummary, Engine, UsageSplit } from '../engine/engine.ts';
import type { Violation } from '../findings/types.ts';
import { sqlString } from '../sql.ts';
import { atStakeSql, moneyItemsSql, moneyTotalsSql } from '../findings/money.ts';

/**
 * The SQL behind the reports. Every query aggregates or bounds in DuckDB (GROUP BY, window
 * `row_number() <= n`, LIMIT): JavaScript only ever sees aggregates and capped row lists, and
 * per-entity pages are built in batches of consecutive ranks, never from all violations at once.
 *
 * Working tables live in the TEMP schema of the caller's connection and are dropped by
 * `dropReportTables`; the `violations` table is only read, and what the contract tables say comes
 * from the engine.
 */

export const T = {
  v: '__report_v',
  orgs: '__report_orgs',
  orgMoney: '__report_org_money',
  apps: '__report_apps',
  appMoney: '__report_app_money',
  aging: '__report_aging',
  currencies: '__report_currencies',
  orgLargest: '__report_org_largest',
  appLargest: '__report_app_largest',
} as const;

export type EntityKind = 'org' | 'app';

const ENTITY: Record<EntityKind, { col: 'org_id' | 'app_instance_id'; rank: string; money: string; largest: string }> = {
  org: { col: 'org_id', rank: T.orgs, money: T.orgMoney, largest: T.orgLargest },
  app: { col: 'app_instance_id', rank: T.apps, money: T.appMoney, largest: T.appLargest },
};

export interface Money {
  currency: string | null;
  amount: bigint;
}

/** The order of aging buckets; `bucket` in SQL is the index into this list. */
export const AGING_BUCKETS = ['< 1h', '1–6h', '6–24h', '1–7d', '> 7d', 'unknown start'] as const;

/** The money kind of a violation row: each invariant's own rule (Invariant.moneyKind), NULL for the rest. */
const MONEY_KIND_SQL = `CASE invariant_id ${CATALOG.filter((i) => i.moneyKind)
  .map((i) => `WHEN ${sqlString(i.id)} THEN ${i.moneyKind}`)
  .join(' ')} END`;

export type MoneyKind = 'unbilled' | 'over' | 'under' | 'currency_mismatch' | 'mismatch' | 'duplicate_credit';

export interface Environment {
  /** What the reports need beyond the violations (open items, app instances, ledger backing) comes from here. */
  engine: Engine;
  /** recon_settings.as_of when present, else the findings' as_of. */
  asOf: string;
}

/**
 * Builds the working tables: a normalised copy of `violations` (waived never NULL, the money kind
 * classified once), the ranking of tenants and app instances, and the open-items aging of the
 * tenants that get a page.
 */
export async function prepare(engine: Engine, findingsAsOf: string, batchSize: number): Promise<Environment> {
  const { db } = engine;
  const env: Environment = { engine, asOf: findingsAsOf };
  const settings = await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = 'recon_settings'`);
  if ((settings?.n ?? 0n) > 0n) {
    const row = await db.one<{ t: string | null }>(
      `SELECT strftime(as_of, '%Y-%m-%dT%H:%M:%SZ') AS t FROM recon_settings LIMIT 1`,
    );
    if (row?.t) env.asOf = row.t;
  }

  await db.run(`CREATE OR REPLACE TEMP TABLE ${T.v} AS
    SELECT * REPLACE (coalesce(waived, false) AS waived), ${MONEY_KIND_SQL} AS money_kind FROM violations`);

  // Currencies are never converted: an entity's ranking key lists its money per currency in the
  // order of the currencies' weight in this audit (most money movements first), so tenants are
  // ranked by the main currency, then the next, and so on.
  await db.run(`CREATE OR REPLACE TEMP TABLE ${T.currencies} AS
    SELECT currency, row_number() OVER (ORDER BY count(*) DESC, sum(coalesce(error_minor, warn_minor)) DESC, currency) - 1 AS prio
    FROM (${moneyItemsSql(T.v)}) GROUP BY currency`);
  for (const kind of ['org', 'app'] as const) {
    const { col, rank, money } = ENTITY[kind];
    await db.run(`CREATE OR REPLACE TEMP TABLE ${money} AS
      WITH m AS (
        SELECT ${col} AS id, currency, total_minor AS amount, error_minor, warn_minor, items
        FROM (${moneyTotalsSql(T.v, [col], `${col} IS NOT NULL`)})),
      o AS (
        SELECT ${col} AS id, currency, sum(amount_minor)::HUGEINT AS overlapping FROM ${T.v}
        WHERE ${col} IS NOT NULL AND ${atStakeSql()} GROUP BY ALL)
      SELECT m.*, o.overlapping, c.prio, rank() OVER (PARTITION BY m.currency ORDER BY m.amount DESC) AS currency_rank
      FROM m JOIN o USING (id, currency) JOIN ${T.currencies} c USING (currency)`);
    // The largest money item of each entity (in its main currency): the "largest issue".
    await db.run(`CREATE OR REPLACE TEMP TABLE ${ENTITY[kind].largest} AS
      SELECT ${col} AS id, arg_min({'item': i.item, 'currency': i.currency, 'amount': coalesce(i.error_minor, i.warn_minor)::HUGEINT,
                                     'invariant_ids': i.invariant_ids},
                                    (c.prio, -abs(coalesce(i.error_minor, i.warn_minor)::HUGEINT), i.item)) AS largest
      FROM (${moneyItemsSql(T.v, [col], `${col} IS NOT NULL`)}) i JOIN ${T.currencies} c USING (currency)
      GROUP BY 1`);
    await db.run(`CREATE OR REPLACE TEMP TABLE ${rank} AS
      WITH c AS (
        SELECT ${col} AS id,
               count(*) FILTER (WHERE NOT waived) AS open,
               count(*) FILTER (WHERE NOT waived AND severity = 'error') AS errors,
               count(*) FILTER (WHERE NOT waived AND severity <> 'error') AS warns,
               count(*) FILTER (WHERE waived) AS waived,
               count(DISTINCT invariant_id) AS invariants,
               list(DISTINCT invariant_id ORDER BY invariant_id) AS invariant_ids
        FROM ${T.v} WHERE ${col} IS NOT NULL GROUP BY 1),
      r AS (SELECT id, min(currency_rank) FILTER (WHERE amount > 0) AS best_rank,
                   list({'p': prio, 'a': -amount} ORDER BY prio) FILTER (WHERE amount > 0) AS money_key
            FROM ${money} GROUP BY 1),
      p AS (SELECT c.*, r.best_rank,
                   row_number() OVER (ORDER BY r.money_key ASC NULLS LAST, c.open DESC, c.waived DESC, c.id) AS pos
            FROM c LEFT JOIN r USING (id))
      SELECT *, (pos - 1) // $batch AS batch FROM p`, { batch: batchSize });
  }

  const all = `${T.aging}_all`;
  await engine.materialiseAging(env.asOf, all);
  await db.run(`CREATE OR REPLACE TEMP TABLE ${T.aging} AS SELECT a.* FROM ${all} a JOIN ${T.orgs} o ON o.id = a.org_id`);
  await db.run(`DROP TABLE ${all}`);
  return env;
}

export async function dropReportTables(db: Db): Promise<void> {
  for (const t of Object.values(T)) await db.run(`DROP TABLE IF EXISTS temp.${t}`);
}

// --- ranking lists ------------------------------------------------------------------------------

export interface LargestIssue {
  /** `usage_record:ur_1`, `payment_session:ps_2`, ... (src/findings/money.ts) */
  item: string;
  currency: string;
  amount: bigint;
  invariant_ids: string[];
}

export interface RankedEntity {
  id: string;
  pos: number;
  open: number;
  errors: number;
  warns: number;
  waived: number;
  invariants: number;
  invariant_ids: string[];
  /** De-duplicated money per currency (each money movement once), with the entity's rank within that currency. */
  money: Array<Money & { rank: number; error: bigint; warn: bigint; overlapping: bigint }>;
  largest: LargestIssue | null;
}

export async function countEntities(db: Db, kind: EntityKind): Promise<number> {
  const row = await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM ${ENTITY[kind].rank}`);
  return Number(row?.n ?? 0n);
}

/** The currencies of this audit's money, main one first (see prepare). */
export async function currencies(db: Db): Promise<string[]> {
  return (await db.all<{ currency: string }>(`SELECT currency FROM ${T.currencies} ORDER BY prio`)).map((r) => r.currency);
}

/** Entities ranked `from`..`to` (1-based, inclusive). */
export async function rankedEntities(db: Db, kind: EntityKind, from: number, to: number): Promise<RankedEntity[]> {
  const { rank, money, largest } = ENTITY[kind];
  const rows = await db.all<{ id: string; pos: bigint; open: bigint; errors: bigint; warns: bigint; waived: bigint; invariants: bigint;
    invariant_ids: { items: unknown[] }; l_item: string | null; l_currency: string | null; l_amount: bigint | null; l_invariants: { items: unknown[] } | null }>(
    `SELECT r.id, r.pos, r.open, r.errors, r.warns, r.waived, r.invariants, r.invariant_ids,
            l.largest.item AS l_item, l.largest.currency AS l_currency, l.largest.amount AS l_amount, l.largest.invariant_ids AS l_invariants
     FROM ${rank} r LEFT JOIN ${largest} l USING (id) WHERE r.pos BETWEEN $from AND $to ORDER BY r.pos`,
    { from, to },
  );
  const m = await db.all<{ id: string; currency: string; amount: bigint; error_minor: bigint; warn_minor: bigint; overlapping: bigint; currency_rank: bigint }>(
    `SELECT m.id, m.currency, m.amount, m.error_minor, m.warn_minor, m.overlapping, m.currency_rank FROM ${money} m JOIN ${rank} r USING (id)
     WHERE r.pos BETWEEN $from AND $to ORDER BY m.prio`,
    { from, to },
  );
  const byId = new Map<string, RankedEntity>();
  const out = rows.map((r) => {
    const e: RankedEntity = {
      id: r.id,
      pos: Number(r.pos),
      open: Number(r.open),
      errors: Number(r.errors),
      warns: Number(r.warns),
      waived: Number(r.waived),
      invariants: Number(r.invariants),
      invariant_ids: r.invariant_ids.items.map(String),
      money: [],
      largest:
        r.l_item !== null && r.l_currency !== null && r.l_amount !== null
          ? { item: r.l_item, currency: r.l_currency, amount: BigInt(r.l_amount), invariant_ids: (r.l_invariants?.items ?? []).map(String) }
          : null,
    };
    byId.set(r.id, e);
    return e;
  });
  for (const x of m) {
    byId.get(x.id)?.money.push({ currency: x.currency, amount: BigInt(x.amount), error: BigInt(x.error_minor), warn: BigInt(x.warn_minor), overlapping: BigInt(x.overlapping), rank: Number(x.currency_rank) });
  }
  return out;
}

export async function batchCount(db: Db, kind: EntityKind): Promise<number> {
  const row = await db.one<{ n: bigint | null }>(`SELECT max(batch) + 1 AS n FROM ${ENTITY[kind].rank}`);
  return Number(row?.n ?? 0n);
}

/** The ids of one batch, in rank order. */
export async function batchIds(db: Db, kind: EntityKind, batch: number): Promise<string[]> {
  const rows = await db.all<{ id: string }>(`SELECT id FROM ${ENTITY[kind].rank} WHERE batch = $b ORDER BY pos`, { b: batch });
  return rows.map((r) => r.id);
}

/** Which of `ids` have a page of `kind` (i.e. have violations). Bounded by the input. */
export async function withPages(db: Db, kind: EntityKind, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await db.all<{ id: string }>(
    `SELECT id FROM ${ENTITY[kind].rank} WHERE list_contains($ids::VARCHAR[], id)`,
    { ids: listValue([...ids]) },
  );
  return new Set(rows.map((r) => r.id));
}

// --- global aggregates (index) ------------------------------------------------------------------

export interface Unattributed {
  invariant_id: string;
  n: number;
  money: Money[];
}

/** Violations that name no tenant (e.g. unreadable rows), per invariant: listed on the index. */
export async function unattributed(db: Db): Promise<Unattributed[]> {
  const rows = await db.all<{ invariant_id: string; n: bigint }>(
    `SELECT invariant_id, count(*) AS n FROM ${T.v} WHERE org_id IS NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 100`,
  );
  const money = await db.all<{ invariant_id: string; currency: string; amount: bigint }>(
    `SELECT invariant_id, currency, sum(amount_minor)::HUGEINT AS amount FROM ${T.v}
     WHERE org_id IS NULL AND ${atStakeSql()} GROUP BY 1, 2 ORDER BY 1, 2`,
  );
  return rows.map((r) => ({
    invariant_id: r.invariant_id,
    n: Number(r.n),
    money: money.filter((m) => m.invariant_id === r.invariant_id).map((m) => ({ currency: m.currency, amount: BigInt(m.amount) })),
  }));
}

/** Violations without a tenant, most money first, capped: the rows of the no-tenant page. */
export async function unattributedRows(db: Db, maxRows: number, detailChars: number): Promise<{ rows: ViolationRow[]; total: number }> {
  const n = await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM ${T.v} WHERE org_id IS NULL`);
  const rows = await db.all<ViolationRow>(
    `SELECT '' AS entity, invariant_id, severity, entity_type, entity_id, org_id, project_id,
            requested_by_user_id, allocation_id, app_instance_id, usage_record_id, ledger_entry_id,
            payment_session_id, usage_source, amount_minor, currency, correlation_id, trace_id,
            left(detail, $chars) AS detail, length(detail) > $chars AS detail_truncated, waived, waiver_reason
     FROM ${T.v} WHERE org_id IS NULL
     ORDER BY waived, abs(amount_minor::HUGEINT) DESC NULLS LAST, invariant_id, entity_id LIMIT $max`,
    { max: maxRows, chars: detailChars },
  );
  return { rows, total: Number(n?.n ?? 0n) };
}

export interface InvariantTenant {
  invariant_id: string;
  org_id: string | null;
  open: number;
  waived: number;
  money: Money[];
  /** Rank of this tenant within the invariant (violations), for the cap. */
  tenants: number;
}

/**
 * Per invariant, the tenants it affects (violations and its own, overlapping, money per
 * currency), most money first; `limit` tenants per invariant, plus how many there are.
 */
export async function invariantTenants(db: Db, limit: number): Promise<InvariantTenant[]> {
  const rows = await db.all<{ invariant_id: string; org_id: string | null; open: bigint; waived: bigint; tenants: bigint; currency: string | null; amount: bigint | null }>(
    `WITH g AS (
       SELECT invariant_id, org_id, count(*) FILTER (WHERE NOT waived) AS open, count(*) FILTER (WHERE waived) AS waived,
              max(abs(amount_minor::HUGEINT)) FILTER (WHERE NOT waived) AS biggest
       FROM ${T.v} GROUP BY 1, 2),
     r AS (SELECT *, row_number() OVER (PARTITION BY invariant_id ORDER BY biggest DESC NULLS LAST, open DESC, org_id NULLS LAST) AS rn,
                  count(*) OVER (PARTITION BY invariant_id) AS tenants FROM g),
     m AS (SELECT invariant_id, org_id, currency, sum(amount_minor)::HUGEINT AS amount FROM ${T.v}
           WHERE ${atStakeSql()} GROUP BY 1, 2, 3)
     SELECT r.invariant_id, r.org_id, r.open, r.waived, r.tenants, m.currency, m.amount
     FROM r LEFT JOIN m ON m.invariant_id = r.invariant_id AND m.org_id IS NOT DISTINCT FROM r.org_id
     WHERE r.rn <= $limit ORDER BY r.invariant_id, r.rn, m.currency`,
    { limit },
  );
  const out = new Map<string, InvariantTenant>();
  for (const r of rows) {
    const key = `${r.invariant_id}\u0000${r.org_id ?? '\u0001'}`;
    let t = out.get(key);
    if (!t) {
      t = { invariant_id: r.invariant_id, org_id: r.org_id, open: Number(r.open), waived: Number(r.waived), money: [], tenants: Number(r.tenants) };
      out.set(key, t);
    }
    if (r.amount !== null) t.money.push({ currency: r.currency, amount: BigInt(r.amount) });
  }
  return [...out.values()];
}

// --- per-entity pages, one batch at a time ------------------------------------------------------

export interface InvariantTotals {
  entity: string;
  invariant_id: string;
  severity: string;
  open: number;
  waived: number;
  money: Money[];
}

export type ViolationRow = Omit<Violation, 'detail'> & {
  /** The tenant or app instance the page is about. */
  entity: string;
  /** JSON text, cut to a length a table cell can show. */
  detail: string | null;
  detail_truncated: boolean;
};

export interface MoneySplit {
  entity: string;
  currency: string;
  /** Each money movement once (src/findings/money.ts). */
  deduplicated: bigint;
  error: bigint;
  warn: bigint;
  items: bigint;
  /** The per-invariant amounts added up: overlapping, the sum the kinds below split. */
  total: bigint;
  unbilled: bigint;
  over: bigint;
  under: bigint;
  currency_mismatch: bigint;
  mismatch: bigint;
  duplicate_credit: bigint;
}

export interface ImpactRow {
  entity: string;
  key: string | null;
  /** Violations of this key (all currencies). */
  n: number;
  money: Money[];
}

export interface AgingRow {
  org_id: string;
  item: string;
  bucket: number;
  currency: string | null;
  n: number;
  amount: bigint | null;
}

function batchFilter(kind: EntityKind): string {
  const { col, rank } = ENTITY[kind];
  return `${col} IN (SELECT id FROM ${rank} WHERE batch = $b)`;
}

/** Counts and money per (entity, invariant) for one batch. */
export async function invariantTotals(db: Db, kind: EntityKind, batch: number): Promise<InvariantTotals[]> {
  const { col } = ENTITY[kind];
  const rows = await db.all<{ entity: string; invariant_id: string; severity: string; open: bigint; waived: bigint; currency: string | null; amount: bigint | null }>(
    `WITH g AS (
       SELECT ${col} AS entity, invariant_id, min(severity) AS severity,
              count(*) FILTER (WHERE NOT waived) AS open, count(*) FILTER (WHERE waived) AS waived
       FROM ${T.v} WHERE ${batchFilter(kind)} GROUP BY 1, 2),
     m AS (
       SELECT ${col} AS entity, invariant_id, currency, sum(amount_minor)::HUGEINT AS amount
       FROM ${T.v} WHERE ${batchFilter(kind)} AND ${atStakeSql()}
       GROUP BY 1, 2, 3)
     SELECT g.*, m.currency, m.amount FROM g LEFT JOIN m USING (entity, invariant_id)
     ORDER BY g.entity, g.invariant_id, m.currency`,
    { b: batch },
  );
  const out = new Map<string, InvariantTotals>();
  for (const r of rows) {
    const key = `${r.entity}\u0000${r.invariant_id}`;
    let t = out.get(key);
    if (!t) {
      t = { entity: r.entity, invariant_id: r.invariant_id, severity: r.severity, open: Number(r.open), waived: Number(r.waived), money: [] };
      out.set(key, t);
    }
    if (r.amount !== null) t.money.push({ currency: r.currency, amount: r.amount });
  }
  return [...out.values()];
}

/** Up to `maxRows` violations per (entity, invariant), open ones and the most money first. */
export async function violationRows(db: Db, kind: EntityKind, batch: number, maxRows: number, detailChars: number): Promise<ViolationRow[]> {
  const { col } = ENTITY[kind];
  return db.all<ViolationRow>(
    `SELECT * EXCLUDE (rn) FROM (
       SELECT ${col} AS entity, invariant_id, severity, entity_type, entity_id, org_id, project_id,
              requested_by_user_id, allocation_id, app_instance_id, usage_record_id, ledger_entry_id,
              payment_session_id, usage_source, amount_minor, currency, correlation_id, trace_id,
              left(detail, $chars) AS detail, length(detail) > $chars AS detail_truncated, waived, waiver_reason,
              row_number() OVER (PARTITION BY ${col}, invariant_id
                                 ORDER BY waived, abs(amount_minor) DESC NULLS LAST, entity_id) AS rn
       FROM ${T.v} WHERE ${batchFilter(kind)})
     WHERE rn <= $max ORDER BY entity, invariant_id, rn`,
    { b: batch, max: maxRows, chars: detailChars },
  );
}

/** Money at stake per currency: de-duplicated, and the overlapping per-invariant sum split by kind. */
export async function moneySplit(db: Db, kind: EntityKind, batch: number): Promise<MoneySplit[]> {
  const { col, money } = ENTITY[kind];
  const f = (k: MoneyKind) => `coalesce(sum(abs(amount_minor)) FILTER (WHERE money_kind = '${k}'), 0)::HUGEINT AS ${k}`;
  return db.all<MoneySplit>(
    `WITH s AS (
       SELECT ${col} AS entity, currency, sum(amount_minor)::HUGEINT AS total,
              ${f('unbilled')}, ${f('over')}, ${f('under')}, ${f('currency_mismatch')}, ${f('mismatch')}, ${f('duplicate_credit')}
       FROM ${T.v}
       WHERE ${batchFilter(kind)} AND ${atStakeSql()}
       GROUP BY 1, 2)
     SELECT s.*, m.amount AS deduplicated, m.error_minor AS error, m.warn_minor AS warn, m.items
     FROM s JOIN ${money} m ON m.id = s.entity AND m.currency = s.currency
     ORDER BY m.prio, 1`,
    { b: batch },
  );
}

/**
 * Violations and money per project (or per app instance) of each entity in the batch; the
 * `limit` keys with the most violations per entity, plus how many keys there are in all.
 */
export async function impact(
  db: Db,
  kind: EntityKind,
  batch: number,
  by: 'project_id' | 'app_instance_id' | 'org_id',
  limit: number,
): Promise<{ rows: ImpactRow[]; keys: Map<string, number> }> {
  const { col } = ENTITY[kind];
  const rows = await db.all<{ entity: string; key: string | null; n: bigint; currency: string | null; amount: bigint | null; keys: bigint }>(
    `WITH k AS (
       SELECT ${col} AS entity, ${by} AS key, count(*) AS n,
              row_number() OVER (PARTITION BY ${col} ORDER BY count(*) DESC, ${by} NULLS LAST) AS rn,
              count(*) OVER (PARTITION BY ${col}) AS keys
       FROM ${T.v} WHERE ${batchFilter(kind)} AND NOT waived ${by === 'app_instance_id' ? 'AND app_instance_id IS NOT NULL' : ''}
       GROUP BY 1, 2),
     m AS (
       SELECT ${col} AS entity, ${by} AS key, currency, sum(amount_minor)::HUGEINT AS amount
       FROM ${T.v} WHERE ${batchFilter(kind)} AND ${atStakeSql()}
       GROUP BY 1, 2, 3)
     SELECT k.entity, k.key, k.n, k.keys, m.currency, m.amount
     FROM k LEFT JOIN m ON m.entity = k.entity AND m.key IS NOT DISTINCT FROM k.key
     WHERE k.rn <= $limit ORDER BY k.entity, k.rn, m.currency`,
    { b: batch, limit },
  );
  const out = new Map<string, ImpactRow>();
  const keys = new Map<string, number>();
  for (const r of rows) {
    keys.set(r.entity, Number(r.keys));
    const id = `${r.entity}\u0000${r.key ?? '\u0001'}`;
    let row = out.get(id);
    if (!row) {
      row = { entity: r.entity, key: r.key, n: Number(r.n), money: [] };
      out.set(id, row);
    }
    if (r.amount !== null) row.money.push({ currency: r.currency, amount: r.amount });
  }
  return { rows: [...out.values()], keys };
}

export async function aging(db: Db, batch: number): Promise<AgingRow[]> {
  const rows = await db.all<{ org_id: string; item: string; bucket: number; currency: string | null; n: bigint; amount: bigint | null }>(
    `SELECT org_id, item, bucket, currency, n, amount FROM ${T.aging}
     WHERE org_id IN (SELECT id FROM ${T.orgs} WHERE batch = $b) ORDER BY org_id, item, bucket, currency`,
    { b: batch },
  );
  return rows.map((r) => ({ ...r, n: Number(r.n) }));
}

// --- app instances ------------------------------------------------------------------------------

export type AppAttribution = AppInstanceRow;

export async function appAttribution(db: Db, env: Environment, batch: number): Promise<AppAttribution[]> {
  return env.engine.appInstances(await batchIds(db, 'app', batch));
}

export async function usageSplit(db: Db, env: Environment, batch: number): Promise<UsageSplit[]> {
  return env.engine.usageSplit(await batchIds(db, 'app', batch));
}

/**
 * The usage rows of each app instance of the batch with the `usage_debit` entries that back
 * them, rows named by a violation first, `limit` per instance; plus per-instance counts.
 */
export async function ledgerBacking(
  db: Db,
  env: Environment,
  batch: number,
  limit: number,
): Promise<{ rows: BackingRow[]; summary: BackingSummary[] }> {
  return env.engine.ledgerBacking(await batchIds(db, 'app', batch), limit, T.v);
}
