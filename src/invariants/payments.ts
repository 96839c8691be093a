import type { Invariant } from './types.ts';

export const paymentsInvariants: readonly Invariant[] = [];
