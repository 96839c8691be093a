import { stringify } from 'lossless-json';
import { expect } from 'vitest';
import type { InvariantResult, Violation } from '../../src/invariants/types.ts';
import { detailLine, formatMoney, formatMoneyByCurrency } from '../../src/report/format.ts';

const SHOWN = 10;

function cell(value: unknown, width: number): string {
  const text = value === null || value === undefined || value === '' ? '-' : typeof value === 'string' ? value : (stringify(value) ?? '');
  return (text.length > width ? text.slice(0, width - 1) + '…' : text).padEnd(width);
}

/** Plain text only: this message ends up in junit.xml, where colour codes are noise. */
export function violationTable(result: InvariantResult): string {
  const head = `${result.id} (${result.severity}): ${result.violations} violation${result.violations === 1 ? '' : 's'}` +
    (Object.keys(result.amount_minor_by_currency).length ? `, money at stake ${formatMoneyByCurrency(result.amount_minor_by_currency)}` : '');
  const columns: Array<[string, number, (v: Violation) => unknown]> = [
    ['entity_id', 28, (v) => v.entity_id],
    ['org', 12, (v) => v.org_id],
    ['project', 12, (v) => v.project_id],
    ['app instance', 14, (v) => v.app_instance_id],
    ['money', 16, (v) => (v.amount_minor === null ? null : formatMoney(v.amount_minor, v.currency))],
    ['correlation', 16, (v) => v.correlation_id],
    ['what is wrong', 80, (v) => detailLine(v.detail, v.currency)],
  ];
  const rows = result.sample.filter((v) => !v.waived).slice(0, SHOWN);
  const lines = [
    head,
    columns.map(([name, w]) => cell(name, w)).join(' | ').trimEnd(),
    ...rows.map((v) => columns.map(([, w, get]) => cell(get(v), w)).join(' | ').trimEnd()),
  ];
  if (result.violations > rows.length) lines.push(`… and ${result.violations - rows.length} more (see violations.csv)`);
  return lines.join('\n');
}

expect.extend({
  toHoldInvariant(received: InvariantResult) {
    if (received.error !== undefined) {
      return { pass: false, message: () => `${received.id}: the check could not run: ${received.error}` };
    }
    return {
      pass: received.violations === 0,
      message: () => (received.violations === 0 ? `${received.id} holds` : violationTable(received)),
    };
  },
});

declare module 'vitest' {
  interface Matchers<T = any> {
    /** Passes when the invariant's check ran and found no unwaived violation. */
    toHoldInvariant(): T;
  }
}
