import type { TableName } from '../contract/tables.ts';
import type { ScopeKey } from '../scope.ts';

export type Severity = 'error' | 'warn';

/** How many entries a list in a `detail` keeps: enough to act on, bounded for the reports. */
export const DETAIL_LIST_LIMIT = 20;
export type Family = 'contract' | 'usage' | 'ledger' | 'payments' | 'app_runtime' | 'events' | 'waivers';
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

/** What an invariant's SQL may look at besides the tables it needs. */
export interface SqlContext {
  /** The tables present in this audit (loaded, possibly empty). */
  readonly tables: ReadonlySet<TableName>;
}

/**
 * One check of CONTRACT.md §3, as data. `sql` returns one row per violating entity with
 * `entity_id` (text) and any other column of VIOLATION_COLUMNS up to `detail` (a JSON value saying what
 * exactly is wrong). The SQL reads the typed tables, the `effective_ledger_entries` view and the
 * `recon_settings` / `recon_control_plane_components` tables created by the audit; it never
 * embeds a value: thresholds come from `recon_settings`.
 */
export interface Invariant {
  readonly id: string;
  readonly family: Family;
  readonly title: string;
  readonly severity: Severity;
  readonly entity: EntityType;
  /** Tables that must be present; if one is absent the invariant is `skipped`. */
  readonly needs: readonly TableName[];
  /** The runbook step this automates, quoted or paraphrased. */
  readonly runbook: string;
  /** One paragraph for a finance reader: what it means, why it costs money. */
  readonly explanation: string;
  readonly sql: (ctx: SqlContext) => string;
  /** Where the runbooks send the follow-up, refined per violation where they distinguish. */
  readonly owner: OwnerRule;
  /**
   * `after_waivers`: a check of the audit itself, run once waivers have been matched (it reads
   * `recon_waivers`). Default: with the catalog.
   */
  readonly phase?: 'after_waivers';
}

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

export interface OwnerRule {
  readonly layer: OwningLayer;
  /** First match wins: `when` is SQL over one violation row (its columns and `detail` JSON). */
  readonly refine?: ReadonlyArray<{ readonly when: string; readonly layer: OwningLayer; readonly why: string }>;
}

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

/** A violation as JavaScript sees it (samples, reports): money stays bigint. */
export interface Violation {
  invariant_id: string;
  severity: Severity;
  entity_type: EntityType;
  entity_id: string;
  org_id: string | null;
  project_id: string | null;
  requested_by_user_id: string | null;
  allocation_id: string | null;
  app_instance_id: string | null;
  usage_record_id: string | null;
  ledger_entry_id: string | null;
  payment_session_id: string | null;
  usage_source: string | null;
  amount_minor: bigint | null;
  currency: string | null;
  correlation_id: string | null;
  trace_id: string | null;
  /** Parsed from the JSON text. */
  detail: unknown;
  waived: boolean;
  waiver_reason: string | null;
  /** The layer a follow-up goes to (OWNING_LAYERS). */
  owning_layer: OwningLayer | null;
  /** The usage row's flag, for violations about (or billing) a usage record. */
  control_plane_component: boolean | null;
}

export type InvariantStatus = 'pass' | 'fail' | 'skipped' | 'waived';

export interface InvariantResult {
  id: string;
  title: string;
  family: Family;
  severity: Severity;
  entity: EntityType;
  status: InvariantStatus;
  /** Violations not covered by a waiver. */
  violations: number;
  waived_violations: number;
  amount_minor_by_currency: Record<string, bigint>;
  skipped_reason?: string;
  /** Set when the invariant's query failed; the other invariants still ran. */
  error?: string;
  /** Set when config thresholds judged the violations: what tripped, or why they were tolerated. */
  threshold?: { outcome: 'tolerated' | 'warn' | 'fail'; reason: string };
  /** Set on a windowed audit (`--since/--until`): how this invariant was restricted, or why it was not. */
  window?: { windowed: boolean; note: string };
  /** Set when a baseline was given: violations new since it, still there, and gone. */
  baseline?: { new: number; persisting: number; resolved: number; new_sample: string[] };
  /** Set when a history is kept: the last runs (oldest first, this one last). */
  trend?: Array<{ run_id: string; as_of: string; status: InvariantStatus; violations: number }>;
  sample: Violation[];
}

export interface InputFile {
  table: string;
  source: string;
  format: string;
  rows: number;
  rejected_rows: number;
  sha256: string;
  /**
   * Text formats: every physical line of the file, accounted for. `physical` is the sum of the
   * others, checked when the file is loaded (a quote left open cannot swallow rows unseen).
   */
  lines?: { physical: number; header: number; loaded: number; rejected: number; blank: number; continuation: number };
}

export interface PreviousRun {
  run_id: string;
  generated_at: string;
  as_of: string;
  invariants: Record<string, { status: InvariantStatus; violations: number }>;
}

export interface Findings {
  schema_version: 1;
  tool: { name: string; version: string };
  /** Set by `recon audit`, never by snapshots (whose bytes must repeat): which run this was. */
  run_id?: string;
  generated_at?: string;
  durations_ms?: { total: number; load: number; invariants: number };
  /** Where new-vs-persisting was measured against, and that run's counts. */
  baseline?: { source: string; run_id?: string; as_of?: string };
  previous_run?: PreviousRun;
  as_of: string;
  /** `--warn-error`: every warning counted as an error. */
  warn_error?: boolean;
  /** `--since/--until`: the activity window the violations were restricted to. */
  window?: { since: string | null; until: string | null };
  /** `--select/--exclude` as given. */
  selection?: { select: string[]; exclude: string[] };
  config_sha256: string;
  /** `orgs` and `app_instances` always; every other dimension of src/scope.ts only when it narrows. */
  scope: { orgs: string[]; app_instances: string[] } & Partial<Record<ScopeKey, string[]>>;
  /** How far the open violations spread, with the numbers behind the verdict (src/triage.ts). */
  blast_radius: BlastRadius;
  /** Open violations grouped by the layer that owns the fix, with the ids to hand over. */
  follow_ups: FollowUpGroup[];
  inputs: InputFile[];
  invariants: InvariantResult[];
  totals: {
    invariants: number;
    passed: number;
    failed: number;
    skipped: number;
    waived: number;
    errored: number;
    violations: number;
    error_violations: number;
    warn_violations: number;
    waived_violations: number;
    /** Money at stake, each money movement counted once (CONTRACT.md §3; src/money.ts). */
    amount_minor_by_currency: Record<string, bigint>;
    /** The part of it priced by error-severity violations. */
    error_amount_minor_by_currency: Record<string, bigint>;
    /** The part priced by warnings only (movements no error prices). */
    warn_amount_minor_by_currency: Record<string, bigint>;
    /** Money movements counted in the totals. */
    money_items: number;
    /** The per-invariant sums added up: overlapping, so larger than the total; a cross-check only. */
    overlapping_amount_minor_by_currency: Record<string, bigint>;
  };
}

/** The blast-radius rules' thresholds (src/triage.ts applies them; the verdict carries them). */
export const BLAST_RADIUS_THRESHOLDS = {
  GLOBAL_MIN_TENANTS: 3,
  GLOBAL_TENANT_SHARE: 0.5,
  WORKER_LAG_SHARE: 0.8,
  WORKER_MIN_ROWS: 2,
} as const;

export type BlastRadiusClass = 'none' | 'unattributed' | 'app_instance' | 'project' | 'tenant' | 'several_tenants' | 'global';

export interface BlastRadius {
  class: BlastRadiusClass;
  /** One sentence with the numbers behind the verdict. */
  reason: string;
  violations: number;
  unattributed_violations: number;
  tenants_affected: number;
  tenants_in_exports: number;
  projects_affected: number;
  violations_without_project: number;
  app_instances_affected: number;
  violations_without_app_instance: number;
  users_affected: number;
  open_usage_rows: number;
  lagging_open_usage_rows: number;
  lagging_tenants: number;
  thresholds: typeof BLAST_RADIUS_THRESHOLDS;
}

export interface FollowUpTask {
  invariant_id: string;
  title: string;
  entity_type: string;
  violations: number;
  /** Entity ids to hand over (at most FOLLOW_UP_ID_LIMIT), then how many more. */
  ids: string[];
  more_ids: number;
  correlation_ids: string[];
}

export interface FollowUpGroup {
  layer: OwningLayer;
  description: string;
  violations: number;
  tasks: FollowUpTask[];
}
