import { expect } from 'vitest';
import type { InvariantResult } from '../../src/findings/types.ts';
import { detailText, verdictOf } from '../../src/findings/verdict.ts';

expect.extend({
  /**
   * Passes unless the invariant's verdict is an error (error-severity violations beyond any
   * threshold, or a check that could not run). The message is plain text, the violating rows in
   * full: it ends up in terminals and CI logs, where colour codes are noise.
   */
  toHoldInvariant(received: InvariantResult) {
    const pass = verdictOf(received) !== 'error';
    return { pass, message: () => (pass ? `${received.id} holds` : detailText(received)) };
  },
});

declare module 'vitest' {
  interface Matchers<T = any> {
    /** Passes when the invariant's check ran and found no error-severity violation beyond its thresholds. */
    toHoldInvariant(): T;
  }
}
