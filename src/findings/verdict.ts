import { stringify } from 'lossless-json';
import type { Limit } from '../config.ts';
import type { Findings, InvariantResult, Violation } from './types.ts';
import type { Severity } from '../contract/violations.ts';
import { detailLine, formatMoney, formatMoneyByCurrency } from './format.ts';

/**
 * The one verdict of an invariant, which the exit code, junit.xml, plain Vitest and the console
 * all read: warnings pass with a visible note, errors fail.
 */
export type Verdict = 'pass' | 'warn' | 'error' | 'skip' | 'waived';

export function verdictOf(r: InvariantResult): Verdict {
  if (r.error !== undefined) return 'error';
  if (r.status === 'skipped') return 'skip';
  if (r.status === 'fail') return r.severity === 'error' ? 'error' : 'warn';
  if (r.status === 'waived') return 'waived';
  return 'pass';
}

/** CONTRACT.md §4: 2 if any check could not run, 1 if any invariant fails at error severity, else 0. */
export function exitCodeFor(findings: Findings): 0 | 1 | 2 {
  if (findings.invariants.some((r) => r.error !== undefined)) return 2;
  return findings.invariants.some((r) => verdictOf(r) === 'error') ? 1 : 0;
}

const TALLY: Array<[Verdict, string]> = [['pass', 'PASS'], ['warn', 'WARN'], ['error', 'ERROR'], ['skip', 'SKIP'], ['waived', 'WAIVED']];

/**
 * `PASS=17 WARN=2 ERROR=7 SKIP=3 WAIVED=1  errors: EUR 468.00  warnings: USD 3.00`. The money is
 * summed over failing invariants, which overlap (one defect, several angles): it is money
 * flagged, not a de-duplicated total owed (that is findings.totals).
 */
export function tallyText(findings: Findings): string {
  const counts = new Map<Verdict, number>();
  const money: Record<'error' | 'warn', Record<string, bigint>> = { error: {}, warn: {} };
  for (const r of findings.invariants) {
    const v = verdictOf(r);
    counts.set(v, (counts.get(v) ?? 0) + 1);
    if (v === 'error' || v === 'warn') {
      for (const [cur, amount] of Object.entries(r.amount_minor_by_currency)) money[v][cur] = (money[v][cur] ?? 0n) + amount;
    }
  }
  const sorted = (m: Record<string, bigint>) => Object.fromEntries(Object.entries(m).sort(([a], [b]) => a.localeCompare(b)));
  const parts = [TALLY.map(([v, name]) => `${name}=${counts.get(v) ?? 0}`).join(' ')];
  const errorMoney = formatMoneyByCurrency(sorted(money.error));
  const warnMoney = formatMoneyByCurrency(sorted(money.warn));
  if (errorMoney) parts.push(`errors: ${errorMoney}`);
  if (warnMoney) parts.push(`warnings: ${warnMoney}`);
  return parts.join('  ');
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * One line, fit for a JUnit `message` attribute and a log line:
 * `3 violations, EUR 6.00; e.g. le_1399`.
 */
export function oneLineSummary(r: InvariantResult): string {
  if (r.error !== undefined) return `the check could not run: ${r.error.replace(/\s+/g, ' ')}`;
  if (r.status === 'skipped') return `skipped: ${r.skipped_reason ?? 'not run'}`;
  const parts = [plural(r.violations, 'violation')];
  const money = formatMoneyByCurrency(r.amount_minor_by_currency);
  if (money) parts[0] += `, ${money}`;
  const first = r.sample.find((v) => !v.waived);
  if (first) parts.push(`e.g. ${first.entity_id}`);
  if (r.waived_violations > 0) parts.push(`${r.waived_violations} waived`);
  if (r.baseline && r.baseline.new > 0) parts.push(`${r.baseline.new} new`);
  if (r.threshold) parts.push(r.threshold.reason);
  return parts.join('; ').replace(/[\r\n]+/g, ' ');
}

function field(name: string, value: unknown): string | undefined {
  if (value === null || value === undefined || value === '') return undefined;
  return `${name}=${typeof value === 'string' ? value : stringify(value)}`;
}

/** A violation on one line, nothing cut: every id stays searchable in the logs. */
export function violationLine(v: Violation): string {
  return [
    field('entity', v.entity_id),
    field('org', v.org_id),
    field('project', v.project_id),
    field('user', v.requested_by_user_id),
    field('allocation', v.allocation_id),
    field('app_instance', v.app_instance_id),
    field('usage_record', v.usage_record_id),
    field('ledger_entry', v.ledger_entry_id),
    field('payment_session', v.payment_session_id),
    v.amount_minor === null ? undefined : `money=${formatMoney(v.amount_minor, v.currency)}`,
    field('correlation_id', v.correlation_id),
    field('trace_id', v.trace_id),
    v.waived ? `waived=${v.waiver_reason ?? 'yes'}` : undefined,
    v.detail === null || v.detail === undefined ? undefined : `what=${detailLine(v.detail, v.currency)}`,
  ]
    .filter((p): p is string => p !== undefined)
    .join('  ');
}

/** The body under the one-line summary: the sampled rows in full, and where the rest are. */
export function detailText(r: InvariantResult): string {
  const lines = [`${r.id} (${r.severity}): ${r.title}`, oneLineSummary(r)];
  if (r.window) lines.push(`window: ${r.window.note}`);
  for (const v of r.sample) lines.push(`  ${violationLine(v)}`);
  const shown = r.sample.length;
  const all = r.violations + r.waived_violations;
  if (all > shown) lines.push(`  … and ${all - shown} more in violations.csv`);
  return lines.join('\n');
}

/** What config thresholds make of an invariant's violations. */
export interface Judgement {
  outcome: 'tolerated' | 'warn' | 'fail';
  severity: Severity;
  reason: string;
}

function exceeded(limit: Limit, count: number, money: Record<string, bigint>, tableRows: number): string | undefined {
  if (limit.count !== undefined && count > limit.count) return `count ${count} > ${limit.count}`;
  for (const [cur, max] of Object.entries(limit.money ?? {})) {
    const at = money[cur] ?? 0n;
    if (at > BigInt(max)) return `${formatMoney(at, cur)} > ${formatMoney(BigInt(max), cur)}`;
  }
  if (limit.percent !== undefined && tableRows > 0) {
    // Compared in integers (violations × 10^6 against rows × percent × 10^4), so 1% of 300 rows is 3 exactly.
    const scaled = BigInt(Math.round(limit.percent * 10_000));
    if (BigInt(count) * 1_000_000n > BigInt(tableRows) * scaled) {
      return `${((count / tableRows) * 100).toFixed(2)}% of ${tableRows} rows > ${limit.percent}%`;
    }
  }
  return undefined;
}

/**
 * Applies `warn_above`/`fail_above` to an invariant with violations: above `fail_above` it fails
 * as an error, above `warn_above` as a warning, otherwise it is tolerated (passes, with a note).
 */
export function judge(
  rule: { warn_above?: Limit | undefined; fail_above?: Limit | undefined },
  count: number,
  money: Record<string, bigint>,
  tableRows: number,
): Judgement {
  const fail = rule.fail_above && exceeded(rule.fail_above, count, money, tableRows);
  if (fail) return { outcome: 'fail', severity: 'error', reason: `above fail threshold: ${fail}` };
  const warn = rule.warn_above && exceeded(rule.warn_above, count, money, tableRows);
  if (warn) return { outcome: 'warn', severity: 'warn', reason: `above warn threshold: ${warn}` };
  return { outcome: 'tolerated', severity: 'warn', reason: 'within thresholds' };
}

/** `--select`/`--exclude` patterns: an invariant id, a family (`ledger`), or a glob (`ledger.*`, `*.duplicate_*`). */
export function matchesPattern(pattern: string, id: string, family: string): boolean {
  if (pattern === id || pattern === family) return true;
  if (!pattern.includes('*') && !pattern.includes('?')) return false;
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.')}$`);
  return re.test(id);
}
