import { describe, expect, inject, test } from 'vitest';
import { CATALOG } from '../../src/invariants/index.ts';
import type { Family, Findings } from '../../src/invariants/types.ts';
import { parseFindings } from '../../src/outputs.ts';
import './matcher.ts';

function providedFindings(): Findings {
  return parseFindings(inject('reconFindings'));
}

/**
 * One Vitest test per invariant of a family, asserting the audit's result for it. A skipped
 * invariant (its table is not in the export) is reported as skipped with the reason; a waived
 * one passes with an annotation naming how many violations the waivers cover.
 */
export function describeFamily(family: Family): void {
  const findings = providedFindings();
  describe(family, () => {
    for (const inv of CATALOG.filter((i) => i.family === family)) {
      test(inv.id, async (ctx) => {
        const result = findings.invariants.find((r) => r.id === inv.id);
        if (!result) throw new Error(`${inv.id}: no result in the findings`);
        if (result.status === 'skipped') {
          ctx.skip(result.skipped_reason ?? 'skipped');
          return;
        }
        if (result.waived_violations > 0) await ctx.annotate(`${result.waived_violations} violation(s) waived by config`);
        expect(result).toHoldInvariant();
      });
    }
  });
}
