import type { Invariant } from './types.ts';

export const appRuntimeInvariants: readonly Invariant[] = [];
