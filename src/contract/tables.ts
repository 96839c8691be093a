import { z } from 'zod';

/**
 * The tables and columns of CONTRACT.md §1, declared once. The DuckDB DDL, the loaders'
 * typing SQL, the `contract.invalid_value` checks and the zod row schemas are all derived
 * from this list, so a column is never described in two places.
 */
export type ColumnType = 'string' | 'timestamp' | 'bigint' | 'int' | 'bool';

export interface ColumnSpec {
  readonly name: string;
  readonly type: ColumnType;
  readonly notNull?: true;
  readonly enum?: readonly string[];
  /** ISO-4217: three upper-case letters. */
  readonly currency?: true;
  readonly min?: 'positive' | 'nonNegative';
}

export interface TableSpec {
  readonly name: TableName;
  readonly key: string | null;
  readonly required: boolean;
  readonly columns: readonly ColumnSpec[];
}

export const TABLE_NAMES = [
  'allocations',
  'app_instances',
  'usage_records',
  'ledger_entries',
  'payment_sessions',
  'events',
  'balances',
] as const;
export type TableName = (typeof TABLE_NAMES)[number];

export const ALLOCATION_STATUSES = [
  'pending', 'provisioning', 'active', 'releasing', 'released', 'release_failed', 'failed',
] as const;
/** The GPU is still held, so metering must be open (CONTRACT.md §1, allocations). */
export const BILLABLE_ALLOCATION_STATUSES = ['active', 'releasing', 'release_failed'] as const;
export const APP_INSTANCE_STATUSES = ['provisioning', 'running', 'stopping', 'stopped', 'failed'] as const;
export const BILLABLE_APP_STATUSES = ['running', 'stopping'] as const;
export const USAGE_SOURCES = ['allocation', 'app_runtime'] as const;
export const LEDGER_ENTRY_TYPES = [
  'usage_debit', 'payment_credit', 'promo_credit', 'adjustment_debit', 'adjustment_credit', 'reversal',
] as const;
export const DIRECTIONS = ['debit', 'credit'] as const;
export const PAYMENT_STATUSES = ['open', 'completed', 'expired', 'failed', 'failed_reconcile'] as const;

const s = (name: string, extra: Partial<ColumnSpec> = {}): ColumnSpec => ({ name, type: 'string', ...extra });
const req = (name: string, extra: Partial<ColumnSpec> = {}): ColumnSpec => s(name, { notNull: true, ...extra });
const ts = (name: string, notNull = false): ColumnSpec =>
  notNull ? { name, type: 'timestamp', notNull: true } : { name, type: 'timestamp' };
const currency: ColumnSpec = { name: 'currency', type: 'string', notNull: true, currency: true };
const trace = [s('correlation_id'), s('trace_id')];

export const TABLES: Readonly<Record<TableName, TableSpec>> = {
  allocations: {
    name: 'allocations',
    key: 'allocation_id',
    required: true,
    columns: [
      req('allocation_id'), req('org_id'), req('project_id'), req('requested_by_user_id'),
      req('status', { enum: ALLOCATION_STATUSES }),
      s('gpu_type'), { name: 'gpu_count', type: 'int' },
      ts('created_at', true), ts('activated_at'), ts('released_at'), ts('updated_at'),
      ...trace,
    ],
  },
  app_instances: {
    name: 'app_instances',
    key: 'app_instance_id',
    required: false,
    columns: [
      req('app_instance_id'), req('org_id'), req('project_id'), s('app_type'),
      req('operating_mode'), req('control_plane_scope'), req('runtime_backend'),
      req('status', { enum: APP_INSTANCE_STATUSES }),
      ts('started_at'), ts('stopped_at'),
      ...trace,
    ],
  },
  usage_records: {
    name: 'usage_records',
    key: 'usage_record_id',
    required: true,
    columns: [
      req('usage_record_id'),
      req('usage_source', { enum: USAGE_SOURCES }),
      s('allocation_id'), s('app_instance_id'),
      req('org_id'), req('project_id'), req('requested_by_user_id'),
      s('component'), { name: 'control_plane_component', type: 'bool' },
      s('operating_mode'), s('control_plane_scope'), s('runtime_backend'),
      ts('start_time', true), ts('end_time'), ts('last_billed_at'),
      { name: 'accrued_cost_minor', type: 'bigint', notNull: true, min: 'nonNegative' },
      currency,
      ...trace,
    ],
  },
  ledger_entries: {
    name: 'ledger_entries',
    key: 'ledger_entry_id',
    required: true,
    columns: [
      req('ledger_entry_id'), req('org_id'), req('requested_by_user_id'), s('project_id'),
      req('entry_type', { enum: LEDGER_ENTRY_TYPES }),
      req('direction', { enum: DIRECTIONS }),
      { name: 'amount_minor', type: 'bigint', notNull: true, min: 'positive' },
      currency,
      s('usage_record_id'), s('payment_session_id'), s('reverses_ledger_entry_id'),
      s('idempotency_key'), s('actor'),
      ts('created_at', true),
      ...trace,
    ],
  },
  payment_sessions: {
    name: 'payment_sessions',
    key: 'payment_session_id',
    required: true,
    columns: [
      req('payment_session_id'), req('org_id'), req('requested_by_user_id'),
      s('provider'), s('provider_session_id'),
      req('status', { enum: PAYMENT_STATUSES }),
      { name: 'amount_minor', type: 'bigint', notNull: true },
      currency,
      s('ledger_entry_id'),
      ts('created_at', true), ts('completed_at'),
      ...trace,
    ],
  },
  events: {
    name: 'events',
    key: 'event_id',
    required: false,
    columns: [
      req('event_id'), s('event_type'), ts('occurred_at'),
      s('allocation_id'), s('app_instance_id'), s('payment_session_id'),
      ...trace,
    ],
  },
  balances: {
    name: 'balances',
    key: null,
    required: false,
    columns: [
      req('org_id'), req('requested_by_user_id'), currency,
      { name: 'balance_minor', type: 'bigint', notNull: true },
      ts('as_of', true),
    ],
  },
};

export const DUCKDB_TYPE: Readonly<Record<ColumnType, string>> = {
  string: 'VARCHAR',
  timestamp: 'TIMESTAMPTZ',
  bigint: 'BIGINT',
  int: 'BIGINT',
  bool: 'BOOLEAN',
};

export function isTableName(name: string): name is TableName {
  return (TABLE_NAMES as readonly string[]).includes(name);
}

/** Double-quotes an SQL identifier (DuckDB rules: embedded quotes are doubled). */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Loader bookkeeping kept on every typed row, so a violation can point back at the source:
 * `__file` relative to the export directory, `__line` the 1-based physical line (CSV/NDJSON)
 * or row ordinal (Parquet/Arrow/BigQuery).
 */
export const PROVENANCE_COLUMNS = [
  { name: '__file', sql: 'VARCHAR' },
  { name: '__line', sql: 'BIGINT' },
] as const;

export function createTableSql(table: TableSpec, name: string = table.name, opts: { temp?: boolean } = {}): string {
  const cols = [
    ...table.columns.map((c) => `${quoteIdent(c.name)} ${DUCKDB_TYPE[c.type]}`),
    ...PROVENANCE_COLUMNS.map((c) => `${quoteIdent(c.name)} ${c.sql}`),
  ];
  return `CREATE OR REPLACE ${opts.temp ? 'TEMP ' : ''}TABLE ${quoteIdent(name)} (${cols.join(', ')})`;
}

/** A zod schema of one typed row as JavaScript sees it from DuckDB (`getRowObjects`). */
export function rowSchema(table: TableSpec): z.ZodObject {
  const shape: Record<string, z.ZodType> = {};
  for (const c of table.columns) {
    let t: z.ZodType;
    switch (c.type) {
      case 'string':
        t = c.enum ? z.enum(c.enum as [string, ...string[]]) : c.currency ? z.string().regex(/^[A-Z]{3}$/) : z.string();
        break;
      case 'timestamp':
        t = z.custom<{ micros: bigint }>((v) => typeof (v as { micros?: unknown })?.micros === 'bigint');
        break;
      case 'bigint':
        t = c.min === 'positive' ? z.bigint().positive() : c.min === 'nonNegative' ? z.bigint().nonnegative() : z.bigint();
        break;
      case 'int':
        t = z.bigint();
        break;
      case 'bool':
        t = z.boolean();
        break;
    }
    shape[c.name] = c.notNull ? t : t.nullable();
  }
  return z.object(shape);
}
