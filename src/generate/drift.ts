import type { Db } from '../db.ts';
import { InputError } from '../errors.ts';
import { APP_RUNTIME_DRIFT } from './drift/app-runtime.ts';
import { CONTRACT_DRIFT } from './drift/contract.ts';
import { EVENTS_DRIFT } from './drift/events.ts';
import type { DriftDefinition, Variant } from './drift/kinds.ts';
import { LEDGER_DRIFT } from './drift/ledger.ts';
import { PAYMENTS_DRIFT } from './drift/payments.ts';
import { USAGE_DRIFT } from './drift/usage.ts';

/**
 * Drift: deliberate defects injected into a clean world, each recorded with exactly the
 * (invariant_id, entity_id) violations CONTRACT.md §3 says it produces.
 *
 * Every injection picks its entities (seeded) among those no earlier injection touched: a pick
 * claims its *owner* (the allocation, app instance, payment session or balance account that all
 * related rows hang off), and later picks skip claimed owners. Money-moving injections only touch
 * ledger entries created after the balances' `as_of`, so they never disturb
 * `ledger.balance_projection`; only `balance_projection` itself does. Together that keeps every
 * injection's footprint exactly what its definition records.
 */

// Spread in this order: it is the order injections are applied in, and seeded worlds depend on it.
const DEFINITIONS = {
  ...USAGE_DRIFT,
  ...LEDGER_DRIFT,
  ...PAYMENTS_DRIFT,
  ...APP_RUNTIME_DRIFT,
  ...EVENTS_DRIFT,
  ...CONTRACT_DRIFT,
} as const satisfies Record<string, DriftDefinition>;

export type DriftKind = keyof typeof DEFINITIONS;

/** Every drift kind, in the order injections are applied. */
export const DRIFT_KINDS = Object.keys(DEFINITIONS) as readonly DriftKind[];

/** What each kind does and which invariants it may trip, for `--help`, docs and tests. */
export const DRIFT_CATALOG: Readonly<Record<DriftKind, { readonly description: string; readonly trips: readonly string[] }>> =
  DEFINITIONS;

export function isDriftKind(name: string): name is DriftKind {
  return Object.hasOwn(DEFINITIONS, name);
}

export interface ExpectedViolation {
  invariant_id: string;
  entity_id: string;
  kind: DriftKind;
}

/** Id prefix → the table whose `_ord` numbers its ids. */
const ID_TABLES = {
  ur: 'usage_records',
  le: 'ledger_entries',
  ev: 'events',
  ps: 'payment_sessions',
  app: 'app_instances',
} as const;
type IdPrefix = keyof typeof ID_TABLES;

/**
 * Applies `inject` (kind → count) to the clean world in `db` and returns the violations it
 * causes, unsorted. Throws an InputError when the world is too small for the requested counts.
 */
export async function injectDrift(db: Db, inject: Partial<Record<DriftKind, number>>): Promise<ExpectedViolation[]> {
  await db.run(`CREATE TABLE g_claimed (owner VARCHAR)`);
  // alloc_1's open row carries the latest timestamp of the exports, which is the audit's as_of
  await db.run(`INSERT INTO g_claimed VALUES ('alloc_1')`);
  await db.run(`CREATE TABLE g_expected (invariant_id VARCHAR, entity_id VARCHAR, kind VARCHAR)`);

  // Fresh ids continue each table's numbering; ids drawn but never inserted are, by construction, dangling.
  const next = {} as Record<IdPrefix, bigint>;
  for (const [prefix, table] of Object.entries(ID_TABLES) as [IdPrefix, string][]) {
    next[prefix] = (await db.one<{ n: bigint | null }>(`SELECT max(_ord) AS n FROM ${table}`))?.n ?? 0n;
  }

  for (const kind of DRIFT_KINDS) {
    const count = inject[kind] ?? 0;
    if (count === 0) continue;
    const variants: readonly Variant[] = DEFINITIONS[kind].variants;
    // Seeded rotation, so every variant gets exercised across seeds even with count 1.
    const start = Number((await db.one<{ r: bigint }>(`SELECT g_roll('drift.variant', $kind, $n) AS r`, { kind, n: variants.length }))?.r ?? 0n);
    const order = [...variants.slice(start), ...variants.slice(0, start)];
    let remaining = count;
    // A variant whose pool runs dry hands its share to the others; the second pass takes what is left.
    for (const pass of [0, 1]) {
      for (const [i, variant] of order.entries()) {
        if (remaining === 0) break;
        const want = pass === 0 ? Math.ceil(remaining / (order.length - i)) : remaining;
        remaining -= await applyVariant(db, kind, variant, want, next);
      }
    }
    if (remaining > 0) {
      throw new InputError(
        `generate: cannot inject ${count} × ${kind}: only ${count - remaining} otherwise clean entities are left for it; ` +
          `generate more usage rows or tenants, or inject fewer`,
      );
    }
  }
  return db.all<ExpectedViolation>(`SELECT invariant_id, entity_id, kind FROM g_expected`);
}

/** Picks up to `want` injections' worth of candidates, records and applies them; returns how many it made. */
async function applyVariant(db: Db, kind: DriftKind, variant: Variant, want: number, next: Record<IdPrefix, bigint>): Promise<number> {
  const size = variant.size ?? 1;
  const tag = `${kind}/${variant.name}`;
  await db.run(
    `CREATE OR REPLACE TABLE g_pick AS
     WITH pool AS (${variant.pool}),
     unclaimed AS (
       SELECT pool.*, hash(getvariable('g_seed'), $tag, pool.id) AS _h FROM pool
       WHERE NOT EXISTS (SELECT 1 FROM g_claimed c WHERE c.owner = pool.owner)
     ),
     one_per_owner AS (SELECT * FROM unclaimed QUALIFY row_number() OVER (PARTITION BY owner ORDER BY _h, id) = 1),
     ranked AS (SELECT *, row_number() OVER (ORDER BY _h, id) AS _k FROM one_per_owner)
     SELECT ranked.*,
            $ur + _k AS new_ur_n, 'ur_' || ($ur + _k) AS new_ur,
            $le + 2 * _k - 1 AS new_le_n, 'le_' || ($le + 2 * _k - 1) AS new_le,
            $le + 2 * _k AS new_le2_n, 'le_' || ($le + 2 * _k) AS new_le2,
            $ev + 2 * _k - 1 AS new_ev_n, 'ev_' || ($ev + 2 * _k - 1) AS new_ev,
            $ev + 2 * _k AS new_ev2_n, 'ev_' || ($ev + 2 * _k) AS new_ev2,
            'ps_' || ($ps + _k) AS new_ps, 'app_' || ($app + _k) AS new_app
     FROM ranked WHERE _k <= $n`,
    { tag, n: want * size, ur: next.ur, le: next.le, ev: next.ev, ps: next.ps, app: next.app },
  );
  const picked = Number((await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM g_pick`))?.n ?? 0n);
  const made = Math.floor(picked / size);
  if (made === 0) return 0;
  // An unpaired last pick of a pair variant is not used, so it is not claimed either.
  await db.run(`DELETE FROM g_pick WHERE _k > $n`, { n: made * size });
  await db.run(`INSERT INTO g_claimed SELECT owner FROM g_pick`);
  await db.run(`INSERT INTO g_expected SELECT invariant_id, entity_id, $kind FROM (${variant.expect})`, { kind });
  for (const sql of variant.apply) await db.run(sql);
  const n = BigInt(made * size);
  next.ur += n;
  next.le += 2n * n;
  next.ev += 2n * n;
  next.ps += n;
  next.app += n;
  return made;
}
