import { listValue } from '@duckdb/node-api';
import type { Config } from '../config.ts';
import type { Db } from '../db.ts';
import type { Dialect } from '../dialect/dialect.ts';
import { duckdb } from '../dialect/duckdb.ts';

/**
 * "Effective" ledger entries (CONTRACT.md §1): everything except reversals and the entries a
 * reversal names. Defined once here; every invariant that counts money reads this view, so a
 * duplicate that was properly reversed during remediation is no longer a duplicate. The ids
 * reversals name are collected once per audit, so each read of the view is one hash anti-join.
 */
export function effectiveLedgerSql(opts: { temp?: boolean } = {}): string[] {
  const temp = opts.temp ? 'TEMP ' : '';
  return [
    `CREATE OR REPLACE ${temp}TABLE recon_reversed_entry_ids AS
     SELECT DISTINCT reverses_ledger_entry_id AS ledger_entry_id FROM ledger_entries
     WHERE entry_type = 'reversal' AND reverses_ledger_entry_id IS NOT NULL`,
    `CREATE OR REPLACE ${temp}VIEW effective_ledger_entries AS
     ${effectiveLedgerQuery(duckdb)}`,
  ];
}

/** The query of `effective_ledger_entries` in dialect `d`, over `recon_reversed_entry_ids`. */
export function effectiveLedgerQuery(d: Dialect): string {
  return `SELECT l.* FROM ${d.antiJoin({ table: 'ledger_entries', alias: 'l' }, { table: 'recon_reversed_entry_ids', alias: 'r' }, 'r.ledger_entry_id = l.ledger_entry_id')}
   WHERE l.entry_type IS DISTINCT FROM 'reversal'`;
}

/**
 * Creates what invariant SQL may read besides the contract tables: `recon_settings` (one row:
 * `as_of`, `billing_lag_minutes`, `allocation_window_tolerance_minutes`),
 * `recon_control_plane_components(name)` and `effective_ledger_entries`. Values are bound here,
 * so the catalog's SQL holds no literal thresholds.
 */
export async function createInvariantContext(db: Db, config: Config, asOf: string): Promise<void> {
  await createSettings(db, config, asOf);
  for (const sql of effectiveLedgerSql()) await db.run(sql);
}

/** `recon_settings` and `recon_control_plane_components` alone: what the local session holds when the catalog runs elsewhere. */
export async function createSettings(db: Db, config: Config, asOf: string): Promise<void> {
  await db.run(
    `CREATE OR REPLACE TABLE recon_settings AS SELECT
       $as_of::TIMESTAMPTZ AS as_of,
       $lag::BIGINT AS billing_lag_minutes,
       $tolerance::BIGINT AS allocation_window_tolerance_minutes`,
    {
      as_of: asOf,
      lag: config.thresholds.billing_lag_minutes,
      tolerance: config.thresholds.allocation_window_tolerance_minutes,
    },
  );
  await db.run(
    `CREATE OR REPLACE TABLE recon_control_plane_components AS SELECT unnest($names::VARCHAR[]) AS name`,
    { names: listValue(config.control_plane_components) },
  );
}
