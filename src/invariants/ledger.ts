import type { Invariant } from './types.ts';

export const ledgerInvariants: readonly Invariant[] = [];
