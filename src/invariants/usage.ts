import type { Invariant } from './types.ts';

export const usageInvariants: readonly Invariant[] = [];
