import { barChart, type BarDatum, type Chart } from './charts.ts';
import * as data from './data.ts';
import { moneyAsNumber, truncate } from '../findings/format.ts';

/** The charts of the report pages, drawn from the report queries' rows. */

/** Bars per chart. */
const CHART_BARS = 15;
export const SEVERITY_LEGEND = [
  { cls: 'error', label: 'error' },
  { cls: 'warn', label: 'warning' },
  { cls: 'waived', label: 'waived' },
];
export const AGING_LEGEND = [
  { cls: 'usage', label: 'open usage' },
  { cls: 'payment', label: 'open payment session' },
];

export interface FigureView {
  chart: Chart;
  caption: string;
  legend?: Array<{ cls: string; label: string }>;
}

export async function severityChart(totals: data.InvariantTotals[], alt: string, bars = CHART_BARS, byCount = true): Promise<Chart | null> {
  const rows: BarDatum[] = [];
  const ranked = (byCount ? totals.slice().sort((a, b) => b.open + b.waived - (a.open + a.waived)) : totals).slice(0, bars);
  for (const t of ranked) {
    if (t.open > 0) rows.push({ label: t.invariant_id, value: t.open, group: t.severity === 'error' ? 'error' : 'warn' });
    if (t.waived > 0) rows.push({ label: t.invariant_id, value: t.waived, group: 'waived' });
  }
  if (ranked.length < 2) return null; // one bar says nothing the table does not
  return barChart('severity', rows, { xTitle: 'violations', yTitle: 'invariant', alt, sortByValue: byCount });
}

/** One chart per currency (never mixing currencies), top projects by money at stake. */
export async function moneyByKeyCharts(rows: data.ImpactRow[], what: string): Promise<FigureView[]> {
  const perCurrency = new Map<string, Array<{ label: string; amount: bigint }>>();
  for (const r of rows) {
    for (const m of r.money) {
      if (m.currency === null || m.amount <= 0n) continue;
      const list = perCurrency.get(m.currency) ?? [];
      list.push({ label: r.key ?? `(no ${what})`, amount: m.amount });
      perCurrency.set(m.currency, list);
    }
  }
  const out: FigureView[] = [];
  for (const [currency, list] of [...perCurrency.entries()].sort(([a], [b]) => a.localeCompare(b)).slice(0, 6)) {
    if (list.length < 2) continue;
    const top = list.sort((a, b) => (b.amount > a.amount ? 1 : b.amount < a.amount ? -1 : 0)).slice(0, CHART_BARS);
    const chart = await barChart(
      'money',
      top.map((x) => ({ label: truncate(x.label, 60), value: moneyAsNumber(x.amount, currency) })),
      { xTitle: `money at stake (${currency})`, yTitle: what, alt: `Money at stake by ${what} in ${currency}, ${top.length} largest.` },
    );
    out.push({ chart, caption: `Money at stake by ${what}, ${currency}${list.length > top.length ? ` (top ${top.length})` : ''}.` });
  }
  return out;
}

export async function agingChart(rows: data.AgingRow[], id: string): Promise<Chart | null> {
  const counts = new Map<string, BarDatum>();
  for (const r of rows.slice().sort((a, b) => a.bucket - b.bucket)) {
    const label = data.AGING_BUCKETS[r.bucket] ?? '?';
    const key = `${r.item}\u0000${label}`;
    const d = counts.get(key) ?? { label, value: 0, group: r.item };
    d.value += r.n;
    counts.set(key, d);
  }
  if (counts.size < 2) return null;
  return barChart('aging', [...counts.values()], { xTitle: 'open items', yTitle: 'age', alt: `Open items of tenant ${id} by age.`, sortByValue: false });
}
