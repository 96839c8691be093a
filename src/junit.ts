import type { Findings, InvariantResult } from './findings/types.ts';
import { detailText, oneLineSummary, verdictOf } from './findings/verdict.ts';

/** What Vitest reported for one invariant's test. */
export interface CaseOutcome {
  state: 'passed' | 'failed' | 'skipped' | 'pending';
  durationMs: number;
}

/** XML 1.0 cannot carry most control characters even escaped; they are dropped. */
function xml(text: string, attribute = false): string {
  const clean = text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '');
  const escaped = clean.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
  return attribute ? escaped.replaceAll('"', '&quot;').replaceAll('\n', ' ').replaceAll('\r', ' ').replaceAll('\t', ' ') : escaped;
}

const seconds = (ms: number) => (ms / 1000).toFixed(3);

function testcase(r: InvariantResult, outcome: CaseOutcome | undefined, suite: string): string {
  const open = `    <testcase name="${xml(r.id, true)}" classname="${xml(suite, true)}" time="${seconds(outcome?.durationMs ?? 0)}"`;
  const verdict = verdictOf(r);
  const summary = oneLineSummary(r);
  const props = [`<property name="severity" value="${r.severity}"/>`, `<property name="verdict" value="${verdict.toUpperCase()}"/>`];
  if (!outcome) {
    return `${open}>\n      <error message="the Vitest test of this invariant did not report" type="missing"/>\n    </testcase>`;
  }
  if (outcome.state === 'skipped') return `${open}>\n      <skipped message="${xml(r.skipped_reason ?? 'skipped', true)}"/>\n    </testcase>`;
  const body: string[] = [`      <properties>${props.join('')}`];
  if (verdict === 'warn') body[0] += `<property name="warning" value="${xml(summary, true)}"/>`;
  body[0] += '</properties>';
  if (outcome.state === 'failed') {
    const tag = r.error !== undefined ? 'error' : 'failure';
    body.push(`      <${tag} message="${xml(summary, true)}" type="${r.error !== undefined ? 'check_error' : r.severity}">${xml(detailText(r))}</${tag}>`);
  } else if (verdict !== 'pass' || r.violations > 0 || r.threshold) {
    // A warning, a waiver or a tolerated count passes, and says so where viewers show test output.
    const head = verdict === 'warn' ? 'WARNING (does not fail the audit)' : verdict === 'waived' ? 'WAIVED' : 'PASSED';
    body.push(`      <system-out>${xml(`${head}: ${detailText(r)}`)}</system-out>`);
  }
  return `${open}>\n${body.join('\n')}\n    </testcase>`;
}

/**
 * junit.xml from the Vitest run: one testsuite per family (`billing-recon.ledger`), one testcase
 * per invariant with Vitest's pass/fail/skip, a one-line failure message and the violating rows
 * in full in the body; warnings pass with the warning in properties and system-out. No stack
 * frames: the failure is the data, not the code that found it.
 */
export function junitXml(findings: Findings, outcomes: ReadonlyMap<string, CaseOutcome>): string {
  const families = [...new Set(findings.invariants.map((r) => r.family))];
  const suites: string[] = [];
  let tests = 0;
  let failures = 0;
  let errors = 0;
  let skipped = 0;
  let time = 0;
  for (const family of families) {
    const name = `billing-recon.${family}`;
    const results = findings.invariants.filter((r) => r.family === family);
    const stats = { tests: results.length, failures: 0, errors: 0, skipped: 0, time: 0 };
    for (const r of results) {
      const o = outcomes.get(r.id);
      stats.time += o?.durationMs ?? 0;
      if (!o || (o.state === 'failed' && r.error !== undefined)) stats.errors++;
      else if (o.state === 'failed') stats.failures++;
      else if (o.state === 'skipped') stats.skipped++;
    }
    tests += stats.tests;
    failures += stats.failures;
    errors += stats.errors;
    skipped += stats.skipped;
    time += stats.time;
    suites.push(
      `  <testsuite name="${name}" tests="${stats.tests}" failures="${stats.failures}" errors="${stats.errors}" skipped="${stats.skipped}" time="${seconds(stats.time)}" timestamp="${xml(findings.generated_at ?? findings.as_of, true)}">\n` +
        results.map((r) => testcase(r, outcomes.get(r.id), name)).join('\n') +
        '\n  </testsuite>',
    );
  }
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<testsuites name="billing-recon" tests="${tests}" failures="${failures}" errors="${errors}" skipped="${skipped}" time="${seconds(time)}">\n` +
    `${suites.join('\n')}\n</testsuites>\n`
  );
}
