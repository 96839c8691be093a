import type { LoadedConfig } from '../config.ts';
import type { TableName } from '../contract/tables.ts';
import type { Severity } from '../contract/violations.ts';
import type { Db } from '../db.ts';
import type { Dialect } from '../dialect/dialect.ts';
import type { Invariant } from '../catalog/types.ts';
import type { IncidentIds, Scope, ScopeKey, Unmatched } from '../scope.ts';

/**
 * Where the contract tables live and where the catalog runs over them. Everything the audit
 * derives (the `violations` table, the findings, the reports' working tables) lives in `db`, a
 * local DuckDB session, whatever the engine: only what must read the contract tables goes through
 * an engine, so outputs never do, and a second engine (BigQuery) implements this interface and
 * nothing else. Methods that may produce many rows write them into a local table of `db`; the rest
 * return aggregates or bounded samples.
 */
export interface Engine {
  readonly name: 'duckdb' | 'bigquery';
  readonly dialect: Dialect;
  /** The local session holding `violations` and everything built from it. */
  readonly db: Db;
  /** The contract tables present in the exports. */
  readonly tables: ReadonlySet<TableName>;

  /** Rows per present table, the newest timestamp of each (null when it has none) and of them all. */
  tableFacts(): Promise<TableFacts>;
  /** Of `values` (already normalised), those no row carries in the dimension's columns, each with its nearest existing values. */
  unmatchedScopeValues(key: ScopeKey, values: readonly string[]): Promise<Unmatched[]>;
  /**
   * Materialises what invariant SQL reads besides the contract tables (src/catalog/setup.ts),
   * knowing the invariants about to run (an engine that bills by the byte estimates them first).
   */
  prepare(config: LoadedConfig['config'], asOf: string, invariants: readonly Invariant[]): Promise<void>;
  /** Runs one invariant into `violations`; a failing query is that invariant's error, returned. */
  run(inv: Invariant, severity: Severity): Promise<string | undefined>;
  /** Copies each named usage row's control-plane flag onto the violations naming it. */
  tagControlPlane(): Promise<void>;
  /** Deletes the violations whose entity had no activity in [since, until) (see WINDOWED). */
  restrictToWindow(window: ActivityWindow): Promise<void>;
  /** Keeps the violations of one incident: carrying its ids, or about a row that carries one. */
  narrowToIncident(ids: IncidentIds): Promise<void>;

  /** Denominators of the blast radius: tenants anywhere in the exports, open usage rows. */
  exportCounts(): Promise<ExportCounts>;
  /** `into(org_id, item, bucket, currency, n, amount)`: open usage and open payment sessions by age at `asOf`. */
  materialiseAging(asOf: string, into: string): Promise<void>;
  /** The app_instances rows (at most three per id) of the given app instances. */
  appInstances(ids: readonly string[]): Promise<AppInstanceRow[]>;
  /** Usage of the given app instances by source, control-plane flag and currency. */
  usageSplit(ids: readonly string[]): Promise<UsageSplit[]>;
  /**
   * The usage rows of the given app instances with the effective `usage_debit` entries behind
   * them, rows named in `violationsTable` first, `limit` per instance; and per-instance counts.
   */
  ledgerBacking(ids: readonly string[], limit: number, violationsTable: string): Promise<{ rows: BackingRow[]; summary: BackingSummary[] }>;
  /**
   * `into_usage(usage_record_id, start_time, end_time)`, `into_sessions(payment_session_id,
   * created_at)`, `into_ledger(ledger_entry_id, created_at)`: when each movement named in `from`
   * (violations-shaped) happened.
   */
  materialiseMovementTimes(from: string, into: { usage: string; sessions: string; ledger: string }): Promise<void>;
  /** Writes the evidence rows behind the violations in scope as Parquet under `snapDir/evidence/`. */
  writeEvidence(scope: Scope, snapDir: string): Promise<EvidenceFile[]>;
  /**
   * `snap_timeline(ts, tbl, id, event, correlation_id, trace_id, file, line, fields)`: the rows
   * carrying an id of `snap_corr(id)` or `snap_trace(id)`, one entry per timestamp.
   */
  materialiseTimeline(): Promise<void>;
}

export interface TableFacts {
  rows: Partial<Record<TableName, number>>;
  newest: Partial<Record<TableName, string | null>>;
  latest: string | null;
}

export interface ActivityWindow {
  since: string | null;
  until: string | null;
}

export interface ExportCounts {
  tenants_in_exports: number;
  open_usage_rows: number;
}


export interface EvidenceFile {
  table: EvidenceTable;
  /** Relative to the snapshot folder. */
  path: string;
  rows: number;
}

/** The evidence tables, in the order they are written; absent optional tables are skipped. */
export const EVIDENCE_TABLES = ['usage_records', 'ledger_entries', 'payment_sessions', 'app_instances', 'allocations'] as const;
export type EvidenceTable = (typeof EVIDENCE_TABLES)[number];

/** Ledger entry types a remediation posts by hand; the diff lists the ones that appeared. */
export const CORRECTIVE_ENTRY_TYPES = ['adjustment_debit', 'adjustment_credit', 'reversal'] as const;

export interface AppInstanceRow {
  app_instance_id: string;
  org_id: string | null;
  project_id: string | null;
  app_type: string | null;
  operating_mode: string | null;
  control_plane_scope: string | null;
  runtime_backend: string | null;
  status: string | null;
  started_at: string | null;
  stopped_at: string | null;
  correlation_id: string | null;
  trace_id: string | null;
  /** Rows with this id in app_instances (more than one is a duplicate key). */
  copies: number;
}

export interface UsageSplit {
  app_instance_id: string;
  usage_source: string | null;
  control_plane_component: boolean | null;
  currency: string | null;
  n: number;
  open: number;
  accrued: bigint | null;
}

export interface BackingRow {
  app_instance_id: string;
  usage_record_id: string;
  usage_source: string | null;
  component: string | null;
  control_plane_component: boolean | null;
  start_time: string | null;
  end_time: string | null;
  accrued_cost_minor: bigint | null;
  currency: string | null;
  /** Effective `usage_debit` entries naming this usage record. */
  debits: number;
  /** Sum of the effective debits in the usage row's currency. */
  debited: bigint | null;
  /** Effective debits in another currency than the usage row's. */
  other_currency: number;
  /** `usage_debit` entries that were reversed (or are reversals). */
  reversed: number;
  ledger_ids: string[];
  in_violations: boolean;
}

export interface BackingSummary {
  app_instance_id: string;
  rows: number;
  open: number;
  backed: number;
  unbacked: number;
}
