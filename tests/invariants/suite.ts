import { describe, expect, inject, test } from 'vitest';
import type { Family } from '../../src/catalog/types.ts';
import type { Findings } from '../../src/findings/types.ts';
import { parseFindings } from '../../src/findings/io.ts';
import { oneLineSummary, verdictOf } from '../../src/findings/verdict.ts';
import './matcher.ts';

function providedFindings(): Findings {
  return parseFindings(inject('reconFindings'));
}

/**
 * One Vitest test per invariant of a family, asserting the audit's verdict for it: the same
 * verdict as the exit code and junit.xml. A skipped invariant is skipped with the reason; a
 * warning, a waiver or a count within thresholds passes with an annotation saying so.
 */
export function describeFamily(family: Family): void {
  const findings = providedFindings();
  describe(family, () => {
    for (const result of findings.invariants.filter((r) => r.family === family)) {
      test(result.id, async (ctx) => {
        const verdict = verdictOf(result);
        if (verdict === 'skip') {
          ctx.skip(result.skipped_reason ?? 'skipped');
          return;
        }
        if (verdict === 'warn') await ctx.annotate(`WARNING: ${oneLineSummary(result)}`, 'warning');
        else if (result.waived_violations > 0) await ctx.annotate(`${result.waived_violations} violation(s) waived by config`, 'notice');
        else if (result.threshold?.outcome === 'tolerated') await ctx.annotate(`${oneLineSummary(result)}`, 'notice');
        expect(result).toHoldInvariant();
      });
    }
  });
}
