import { logQueries, type LinkTemplates } from './format.ts';
import type { BackingRow, BackingSummary, UsageSplit } from '../engine/engine.ts';
import * as data from './data.ts';
import type { Money } from './data.ts';
import { formatInstant, formatMoney } from '../findings/format.ts';
import type { Links } from './views.ts';

/** View models of the tenant and app-instance pages' own tables (aging, attribution, usage, ledger backing). */

export function agingView(rows: data.AgingRow[]) {
  const out = new Map<string, { item: string; bucket: string; n: number; money: Money[] }>();
  for (const r of rows) {
    const key = `${r.item}\u0000${r.bucket}`;
    let v = out.get(key);
    if (!v) {
      v = { item: r.item, bucket: data.AGING_BUCKETS[r.bucket] ?? '?', n: 0, money: [] };
      out.set(key, v);
    }
    v.n += r.n;
    if (r.amount !== null) v.money.push({ currency: r.currency, amount: r.amount });
  }
  return [...out.values()];
}

function componentKind(cp: boolean | null): string {
  return cp === true ? 'control plane' : cp === false ? 'workload' : 'unclassified';
}

function backingLabel(b: BackingRow): { backing: string; backingClass: string } {
  if (b.end_time === null) return { backing: b.debits > 0 ? 'open, has debits' : 'open', backingClass: b.debits > 0 ? 'warn' : 'skipped' };
  if (b.debits === 0) return (b.accrued_cost_minor ?? 0n) > 0n ? { backing: 'no debit', backingClass: 'error' } : { backing: 'nothing to bill', backingClass: 'pass' };
  if (b.other_currency > 0) return { backing: 'debit in another currency', backingClass: 'error' };
  if (b.debited !== b.accrued_cost_minor) return { backing: 'amount differs', backingClass: 'error' };
  return { backing: b.debits > 1 ? `backed by ${b.debits} debits` : 'backed', backingClass: b.debits > 1 ? 'warn' : 'pass' };
}

/** Where an app instance is attributed (org, project, mode, ...), the org linked when it has a page. */
export function attributionView(attr: data.AppAttribution[], orgPages: ReadonlySet<string>, links: Links, templates: LinkTemplates) {
  return attr.map((a) => ({
    fields: [
      { label: 'org', value: a.org_id ?? '—', ...(a.org_id !== null && orgPages.has(a.org_id) ? { href: links.org(a.org_id) } : {}) },
      { label: 'project', value: a.project_id ?? '—' },
      { label: 'app type', value: a.app_type ?? '—' },
      { label: 'operating_mode', value: a.operating_mode ?? '—' },
      { label: 'control_plane_scope', value: a.control_plane_scope ?? '—' },
      { label: 'runtime_backend', value: a.runtime_backend ?? '—' },
      { label: 'status', value: a.status ?? '—' },
      { label: 'started', value: formatInstant(a.started_at) },
      { label: 'stopped', value: formatInstant(a.stopped_at) },
    ],
    logs: logQueries({ correlation_id: a.correlation_id, trace_id: a.trace_id }, templates),
  }));
}

export function usageView(usage: UsageSplit[]) {
  return usage.map((u) => ({
    usage_source: u.usage_source ?? '—',
    component: componentKind(u.control_plane_component),
    currency: u.currency ?? '—',
    n: u.n,
    open: u.open,
    accrued: u.accrued,
  }));
}

/** Usage rows of an app instance against the ledger debits that bill them. */
export function backingView(summary: BackingSummary, shown: BackingRow[]) {
  return {
    summary,
    more: Math.max(0, summary.rows - shown.length),
    rows: shown.map((b) => ({
      ...b,
      component: b.component ?? '—',
      kind: componentKind(b.control_plane_component),
      start: formatInstant(b.start_time),
      end: b.end_time === null ? 'open' : formatInstant(b.end_time),
      debitedText:
        (b.debited !== null ? formatMoney(b.debited, b.currency) : '') +
        (b.other_currency > 0 ? `${b.debited !== null ? ' + ' : ''}${b.other_currency} in another currency` : ''),
      ...backingLabel(b),
    })),
  };
}
