import type { Invariant } from './types.ts';

export const eventsInvariants: readonly Invariant[] = [];
