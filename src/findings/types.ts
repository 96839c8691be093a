import type { InputFile } from '../contract/inputs.ts';
import type { EntityType, OwningLayer, Severity } from '../contract/violations.ts';
import type { Family } from '../catalog/types.ts';
import type { ScopeKey } from '../scope.ts';

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
  /** How far the open violations spread, with the numbers behind the verdict (src/findings/triage.ts). */
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
    /** Money at stake, each money movement counted once (CONTRACT.md §3; src/findings/money.ts). */
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

/** The blast-radius rules' thresholds (src/findings/triage.ts applies them; the verdict carries them). */
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
