import { appRuntimeInvariants } from './app-runtime.ts';
import { contractInvariants } from './contract.ts';
import { eventsInvariants } from './events.ts';
import { ledgerInvariants } from './ledger.ts';
import { paymentsInvariants } from './payments.ts';
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

export function findInvariant(id: string): Invariant | undefined {
  return CATALOG.find((i) => i.id === id);
}
