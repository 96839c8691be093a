import type { TableName } from './tables.ts';

/**
 * The `violations` table: the line the house is cut at. The catalog writes it, everything after
 * it (findings, outputs, reports, diff, history) reads it. Its columns and vocabulary live here,
 * below both, so neither side imports the other for them.
 */

export type Severity = 'error' | 'warn';

export type EntityType =
  | 'source_row'
  | 'table_row'
  | 'key'
  | 'allocation'
  | 'usage_record'
  | 'ledger_entry'
  | 'payment_session'
  | 'app_instance'
  | 'balance'
  /** A whole table of the export (`contract.stale_export`). */
  | 'table'
  /** A waiver of the config, `waivers[i]` (`waivers.expired`, `waivers.stale`). */
  | 'waiver';

/**
 * The layers the runbooks send follow-ups to ("follow-up tasks for the owning layer"). Each
 * invariant names one; OwnerRule.refine moves a violation elsewhere where its detail says so.
 */
export const OWNING_LAYERS = {
  metering_emitter: 'Metering emitter (opens, closes and classifies usage rows on provisioning and runtime events)',
  attribution_mapping: 'Attribution mapping (which tenant, project, user and runtime a usage row or debit is attributed to)',
  billing_worker: 'Billing worker interpretation (accrual, debits, lag, idempotency of usage charges)',
  payments_webhook: 'Payments / webhook (payment sessions, provider webhooks, balance credits and their events)',
  ui_export: 'UI / export path (the exported rows and the customer-visible balance projection)',
} as const;
export type OwningLayer = keyof typeof OWNING_LAYERS;

/**
 * The columns of the `violations` table and of violations.csv/parquet, in order
 * (CONTRACT.md §4). `detail` is JSON text.
 */
export const VIOLATION_COLUMNS = [
  { name: 'invariant_id', sql: 'VARCHAR' },
  { name: 'severity', sql: 'VARCHAR' },
  { name: 'entity_type', sql: 'VARCHAR' },
  { name: 'entity_id', sql: 'VARCHAR' },
  { name: 'org_id', sql: 'VARCHAR' },
  { name: 'project_id', sql: 'VARCHAR' },
  { name: 'requested_by_user_id', sql: 'VARCHAR' },
  { name: 'allocation_id', sql: 'VARCHAR' },
  { name: 'app_instance_id', sql: 'VARCHAR' },
  { name: 'usage_record_id', sql: 'VARCHAR' },
  { name: 'ledger_entry_id', sql: 'VARCHAR' },
  { name: 'payment_session_id', sql: 'VARCHAR' },
  { name: 'usage_source', sql: 'VARCHAR' },
  { name: 'amount_minor', sql: 'BIGINT' },
  { name: 'currency', sql: 'VARCHAR' },
  { name: 'correlation_id', sql: 'VARCHAR' },
  { name: 'trace_id', sql: 'VARCHAR' },
  { name: 'detail', sql: 'VARCHAR' },
  { name: 'waived', sql: 'BOOLEAN' },
  { name: 'waiver_reason', sql: 'VARCHAR' },
  { name: 'owning_layer', sql: 'VARCHAR' },
  { name: 'control_plane_component', sql: 'BOOLEAN' },
] as const;

export type ViolationColumn = (typeof VIOLATION_COLUMNS)[number]['name'];

export const VIOLATIONS_DDL = `CREATE OR REPLACE TABLE violations (${VIOLATION_COLUMNS.map((c) => `${c.name} ${c.sql}`).join(', ')})`;

/** The contract table whose rows an entity type names (a table row, key or source row names none). */
export const ENTITY_TABLE: Partial<Record<EntityType, TableName>> = {
  allocation: 'allocations',
  usage_record: 'usage_records',
  ledger_entry: 'ledger_entries',
  payment_session: 'payment_sessions',
  app_instance: 'app_instances',
  balance: 'balances',
};
