import type { Violation } from '../findings/types.ts';
import type { SnapshotScope } from './manifest.ts';

/**
 * What \`recon diff\` writes (diff.json) and the diff page reads: the document alone, so the page
 * and the diff that builds it depend on it rather than on each other.
 */

type SideKind = 'snapshot' | 'audit';

/** What the diff knows about one of its two inputs. */
export interface DiffSide {
  dir: string;
  kind: SideKind;
  label: string | null;
  created_at: string | null;
  as_of: string;
  tool: { name: string; version: string };
  findings_schema_version: number;
  config_sha256: string;
  scope: SnapshotScope;
  /**
   * Snapshots are verified against their manifest before they are compared; a folder without a
   * manifest (an audit output folder, or a snapshot whose manifest was removed) is unverified.
   */
  integrity: 'verified' | 'UNVERIFIED (no manifest.json)';
  manifest_sha256: string | null;
  violations: number;
}

export interface CheckResult {
  passed: boolean;
  details: string;
  /** The violations that made the check fail (at most CHECK_ENTITY_LIMIT). */
  entities: Array<{ invariant_id: string; entity_id: string }>;
}

const CHECK_NAMES = ['no_duplicates_introduced', 'no_unresolved_drift', 'no_new_drift', 'every_check_comparable'] as const;
export type CheckName = (typeof CHECK_NAMES)[number];

/** Violations listed per category in diff.json; counts and money are always complete. */
export const LIST_LIMIT = 10_000;

export interface PersistingViolation {
  invariant_id: string;
  entity_id: string;
  before: Violation;
  after: Violation;
}

export interface CorrectiveEntry {
  ledger_entry_id: string;
  entry_type: string;
  direction: string | null;
  amount_minor: bigint | null;
  currency: string | null;
  org_id: string | null;
  requested_by_user_id: string | null;
  usage_record_id: string | null;
  payment_session_id: string | null;
  reverses_ledger_entry_id: string | null;
  actor: string | null;
  correlation_id: string | null;
  trace_id: string | null;
  created_at: string | null;
  source: string;
  /** `actor` and/or `correlation_id` when missing: such an entry cannot be traced to a person or an incident. */
  missing: string[];
}

export type MoneyByCurrency = Record<string, bigint>;

export interface DiffMoneyItem {
  item: string;
  currency: string;
  amount_minor: bigint;
  severity: 'error' | 'warn';
  invariant_ids: string[];
}

export interface Reconciliation {
  available: boolean;
  /** Per currency: resolved money (each movement once), corrective entries' amounts, and the difference. */
  by_currency: Array<{ currency: string; resolved_minor: bigint; corrective_minor: bigint; difference_minor: bigint }>;
  /** Why resolved money and corrective entries differ, item by item. */
  explanations: Array<{ item: string; currency: string; amount_minor: bigint; reason: string }>;
}

export interface DiffDocument {
  schema_version: 1;
  tool: { name: string; version: string };
  strict: boolean;
  before: DiffSide;
  after: DiffSide;
  scope: SnapshotScope;
  /** The diff's own narrowing (its scope flags), applied to both sides after they were taken. */
  narrowed_to: Partial<SnapshotScope>;
  warnings: string[];
  summary: {
    resolved: number;
    persisting: number;
    introduced: number;
    /** Violations of checks that did not run on one side: neither resolved nor introduced. */
    not_comparable: number;
    /** The checks skipped (or failed) on either side, with what each side said. */
    not_comparable_invariants: Array<{ invariant_id: string; before: string; after: string }>;
    /** True when a list below holds fewer than its count (LIST_LIMIT); diff.parquet has every row. */
    lists_truncated: boolean;
    by_invariant: Array<{ invariant_id: string; severity: string; resolved: number; persisting: number; introduced: number }>;
  };
  /**
   * Money at stake, each money movement counted once (CONTRACT.md §3, src/findings/money.ts): a money item
   * is resolved when no violation prices it any more, introduced when nothing priced it before,
   * persisting otherwise. In a tenant-scoped diff, violations without a tenant are left out
   * (see `without_tenant`).
   */
  money: {
    before: MoneyByCurrency;
    after: MoneyByCurrency;
    resolved: MoneyByCurrency;
    persisting_before: MoneyByCurrency;
    persisting_after: MoneyByCurrency;
    introduced: MoneyByCurrency;
  };
  /** The same, error-priced and warning-only money apart. */
  money_by_severity: Record<'error' | 'warn', DiffDocument['money']>;
  /** The per-violation sums (overlapping: one movement priced by several invariants counts several times). */
  money_overlapping: DiffDocument['money'];
  /** The money items resolved and introduced, largest first (capped at LIST_LIMIT). */
  money_items: { resolved: DiffMoneyItem[]; introduced: DiffMoneyItem[] };
  /** Resolved money against the corrective ledger entries, per currency, with every difference explained. */
  reconciliation: Reconciliation;
  /**
   * In a diff scoped to tenants (--org), the violations that name no tenant: they stay in every
   * scoped audit, but cannot belong to the tenants in scope, so they are listed here and neither
   * fail a recovery check nor the exit code.
   */
  without_tenant: { applies: boolean; resolved: number; persisting: number; introduced: number; violations: Array<{ invariant_id: string; entity_id: string; status: string; severity: string }> };
  checks: Record<CheckName, CheckResult>;
  corrective_entries: {
    available: boolean;
    reason?: string;
    entries: CorrectiveEntry[];
    unaudited: number;
  };
  resolved: Violation[];
  persisting: PersistingViolation[];
  introduced: Violation[];
  exit_code: 0 | 1;
  exit_reason: string;
}
