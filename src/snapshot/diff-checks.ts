import type { Db } from '../db.ts';
import type { CheckName, CheckResult, DiffDocument } from './diff-document.ts';
import type { LoadedSide } from './diff-sides.ts';
import type { MatchCounts } from './diff-match.ts';

/** The runbooks' recovery criteria as named checks over table `d`, and the exit code they give. */

const CHECK_ENTITY_LIMIT = 50;

type Failing = { count: number; sample: ReadonlyArray<{ invariant_id: string; entity_id: string }> };

function listEntities(failing: Failing): string {
  const shown = failing.sample.slice(0, 10).map((v) => `${v.invariant_id} ${v.entity_id}`);
  return shown.join(', ') + (failing.count > shown.length ? ` and ${failing.count - shown.length} more` : '');
}

function check(failing: Failing, pass: string, fail: (n: number) => string): CheckResult {
  return failing.count === 0
    ? { passed: true, details: pass, entities: [] }
    : { passed: false, details: `${fail(failing.count)}: ${listEntities(failing)}`, entities: [...failing.sample] };
}

/** `*.duplicate_*` (CONTRACT.md §5): ledger.duplicate_debit, usage.duplicate_open, contract.duplicate_key, ... */
const DUPLICATE_INVARIANT = String.raw`^[^.]+\.duplicate_`;

/**
 * `notComparable`: the checks that did not run on one side or both; `unjudged`: those of them
 * that ran on one side only, or failed, so nothing can be said about them.
 */
export async function recoveryChecks(
  db: Db,
  sides: { before: LoadedSide; after: LoadedSide },
  inScope: string,
  notComparable: readonly string[],
  unjudged: readonly string[],
): Promise<Record<CheckName, CheckResult>> {
  const { before, after } = sides;
  const failing = async (where: string): Promise<Failing> => {
    const n = await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM d WHERE ${where} AND ${inScope}`);
    const sample = await db.all<{ invariant_id: string; entity_id: string }>(
      `SELECT invariant_id, entity_id FROM d WHERE ${where} AND ${inScope} ORDER BY invariant_id, entity_id LIMIT ${CHECK_ENTITY_LIMIT}`,
    );
    return { count: Number(n?.n ?? 0n), sample };
  };
  const notComparableViolations = await failing(`status = 'not_comparable'`);
  return {
    no_duplicates_introduced: check(
      await failing(`status = 'introduced' AND open AND regexp_matches(invariant_id, '${DUPLICATE_INVARIANT}')`),
      'no *.duplicate_* violation appeared that was not there before',
      (n) => `${n} duplicate violation(s) introduced`,
    ),
    no_unresolved_drift: check(
      await failing(`status = 'persisting' AND open`),
      before.side.violations === 0 ? 'nothing to resolve: BEFORE had no violations in scope' : 'every violation in scope before is resolved',
      (n) => `${n} violation(s) persist`,
    ),
    no_new_drift: check(await failing(`status = 'introduced' AND open`), 'no violation was introduced', (n) => `${n} violation(s) introduced`),
    every_check_comparable:
      unjudged.length === 0
        ? {
            passed: true,
            details: notComparable.length === 0 ? 'every check ran on both sides' : `every check ran on both sides, or on neither (${notComparable.join(', ')})`,
            entities: [],
          }
        : {
            passed: false,
            details:
              `${unjudged.length} check(s) did not run on both sides, so recovery cannot be shown for them ` +
              `(${notComparableViolations.count} violation(s) not comparable): ` +
              unjudged.map((id) => `${id} (${[before, after].map((s, i) => `${i ? 'AFTER' : 'BEFORE'} ${s.notRun.get(id) ?? 'ran'}`).join('; ')})`).join(', '),
            entities: [...notComparableViolations.sample],
          },
  };
}

/** Exit 1 when an error-severity violation was introduced, a check is unjudged, or (`strict`) one persists. */
export function exitVerdict(counts: MatchCounts, unjudged: readonly string[], strict: boolean): Pick<DiffDocument, 'exit_code' | 'exit_reason'> {
  const errorIntroduced = counts.open_error_introduced;
  const errorPersisting = counts.open_error_persisting;
  if (errorIntroduced > 0) return { exit_code: 1, exit_reason: `${errorIntroduced} error-severity violation(s) introduced` };
  if (unjudged.length > 0) {
    return { exit_code: 1, exit_reason: `${unjudged.length} check(s) skipped or failed on one side, so nothing can be said about them: ${unjudged.join(', ')}` };
  }
  if (strict && errorPersisting > 0) return { exit_code: 1, exit_reason: `${errorPersisting} error-severity violation(s) persist (--strict)` };
  return { exit_code: 0, exit_reason: strict ? 'no error-severity violation introduced or persisting' : 'no error-severity violation introduced' };
}
