import { appRuntimeInvariants } from './app-runtime.ts';
import { contractInvariants } from './contract.ts';
import { eventsInvariants } from './events.ts';
import { ledgerInvariants } from './ledger.ts';
import { paymentsInvariants } from './payments.ts';
import { RUN_CHECKS } from './run-checks.ts';
import type { Invariant } from './types.ts';
import { usageInvariants } from './usage.ts';

/** Every invariant of CONTRACT.md §3, in the contract's order. */
export const CATALOG: readonly Invariant[] = [
  ...contractInvariants,
  ...usageInvariants,
  ...ledgerInvariants,
  ...paymentsInvariants,
  ...appRuntimeInvariants,
  ...eventsInvariants,
];

/** The catalog plus the checks of the audit itself (RUN_CHECKS): everything an audit reports. */
export const ALL_CHECKS: readonly Invariant[] = [...CATALOG, ...RUN_CHECKS];

/** An invariant of the catalog or a check of the audit itself, by id. */
export function findCheck(id: string): Invariant | undefined {
  return ALL_CHECKS.find((i) => i.id === id);
}
