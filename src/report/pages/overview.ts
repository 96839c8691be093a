import { formatInstant, formatMoney } from '../../findings/format.ts';
import { BLAST_RADIUS_LABEL } from '../../findings/triage.ts';
import type { InvariantResult } from '../../findings/types.ts';
import * as data from '../data.ts';
import { SEVERITY_LEGEND, severityChart } from '../figures.ts';
import { helpers, reportPage, template } from '../page.ts';
import { safeFileName } from '../paths.ts';
import { anchorFor, entityRows, filterText, groupBy, linksFrom, rankInvariants } from '../views.ts';
import type { Limits, RenderInput, Writer } from './context.ts';

/** The overview pages: the index and the ranked lists of every tenant and app instance beyond it. */

/** Bars of the index chart; beyond this the chart says "top N of M". */
const INDEX_CHART_BARS = 40;
/** Tenants listed per invariant page. */
const INVARIANT_PAGE_TENANTS = 1000;

/** What the index found that the pages linked from it are built from. */
export interface Overview {
  /** Invariants with violations, most money at stake first. */
  failing: InvariantResult[];
  /** The tenants each invariant affects (at most INVARIANT_PAGE_TENANTS). */
  affected: Map<string, data.InvariantTenant[]>;
  unattributed: data.Unattributed[];
  totals: { org: number; app: number };
}

export async function renderIndex(input: RenderInput, env: data.Environment, w: Writer, o: Limits): Promise<Overview> {
  const { findings } = input;
  const { db } = input.engine;
  const links = linksFrom('');
  const [orgTotal, appTotal] = [await data.countEntities(db, 'org'), await data.countEntities(db, 'app')];
  const orgs = await data.rankedEntities(db, 'org', 1, o.indexRows);
  const apps = await data.rankedEntities(db, 'app', 1, o.indexRows);
  const unattributed = await data.unattributed(db);
  const currencies = await data.currencies(db);
  const affected = groupBy(await data.invariantTenants(db, INVARIANT_PAGE_TENANTS), (r) => r.invariant_id);

  const ranked = rankInvariants(findings.invariants, currencies);
  const failing = ranked.filter((r) => r.violations + r.waived_violations > 0);
  const charted = failing.slice(0, INDEX_CHART_BARS);
  const chartTitle =
    charted.length === failing.length
      ? `Violations per invariant, all ${failing.length} invariants with violations, most money at stake first.`
      : `Violations per invariant: top ${charted.length} of ${failing.length} invariants with violations, by money at stake; the table lists all.`;
  const chart = await severityChart(
    charted.map((r) => ({ entity: '', invariant_id: r.id, severity: r.severity, open: r.violations, waived: r.waived_violations, money: [] })),
    chartTitle,
    INDEX_CHART_BARS,
    false,
  );
  const t = findings.totals;
  const totalMoney = Object.entries(t.amount_minor_by_currency)
    .sort(([a], [b]) => (currencies.indexOf(a) + 1 || 1e9) - (currencies.indexOf(b) + 1 || 1e9) || a.localeCompare(b))
    .map(([currency, amount]) => ({
      currency,
      amount,
      error: t.error_amount_minor_by_currency[currency] ?? 0n,
      warn: t.warn_amount_minor_by_currency[currency] ?? 0n,
      overlapping: t.overlapping_amount_minor_by_currency[currency] ?? 0n,
    }));
  const invariantRows = ranked.map((r) => {
    const money = Object.entries(r.amount_minor_by_currency).map(([currency, amount]) => ({ currency, amount }));
    const tenants = affected.get(r.id) ?? [];
    return {
      ...r,
      href: `invariants/${safeFileName(r.id)}.html`,
      anchor: anchorFor(r.id),
      money,
      tenants: tenants[0]?.tenants ?? 0,
      filterText: filterText([r.id, r.title, r.severity, r.status, ...money.map((m) => formatMoney(m.amount, m.currency))]),
    };
  });
  const body = template('index')({
    h: helpers,
    totals: t,
    blast: { ...findings.blast_radius, label: BLAST_RADIUS_LABEL[findings.blast_radius.class] },
    followUps: findings.follow_ups,
    totalMoney: totalMoney.slice(0, 12),
    totalMoneyMore: Math.max(0, totalMoney.length - 12),
    chart,
    chartCaption: chartTitle,
    severityLegend: SEVERITY_LEGEND,
    invariants: invariantRows,
    tenants: { total: orgTotal, rows: entityRows(orgs, links.org, ''), more: orgTotal - orgs.length, allHref: 'lists/tenants-1.html' },
    apps: { total: appTotal, rows: entityRows(apps, links.app, ''), more: appTotal - apps.length, allHref: 'lists/app-instances-1.html' },
    unattributed,
    inputs: findings.inputs.slice(0, 100),
    inputsMore: Math.max(0, findings.inputs.length - 100),
    asOf: formatInstant(env.asOf),
  });
  await w.write(
    ['index.html'],
    reportPage({ title: 'Billing drift report', heading: 'Billing drift report', crumbs: [{ label: 'Drift report' }], root: '', body, script: true, findings }),
  );
  return { failing, affected, unattributed, totals: { org: orgTotal, app: appTotal } };
}

/**
 * Every tenant and app instance is reachable from the index: the ones beyond its cap through
 * ranked list pages.
 */
export async function renderListPages(input: RenderInput, w: Writer, o: Limits, totals: Overview['totals']): Promise<void> {
  const { findings } = input;
  const { db } = input.engine;
  const sub = linksFrom('../');
  for (const kind of ['org', 'app'] as const) {
    const total = totals[kind];
    if (total <= o.indexRows) continue;
    const pages = Math.ceil(total / o.listPageSize);
    const base = kind === 'org' ? 'tenants' : 'app-instances';
    const noun = kind === 'org' ? 'tenant' : 'app instance';
    for (let p = 1; p <= pages; p++) {
      const from = (p - 1) * o.listPageSize + 1;
      const to = Math.min(total, p * o.listPageSize);
      const rows = await data.rankedEntities(db, kind, from, to);
      const listBody = template('list')({
        h: helpers,
        from,
        to,
        total,
        noun,
        idHeading: kind === 'org' ? 'Tenant (org_id)' : 'App instance',
        caption: `${kind === 'org' ? 'Tenants' : 'App instances'} ranked ${from}–${to} of ${total}`,
        rows: entityRows(rows, kind === 'org' ? sub.org : sub.app, '../'),
        pages: Array.from({ length: pages }, (_, i) => ({ label: String(i + 1), href: `${base}-${i + 1}.html`, current: i + 1 === p })),
      });
      const heading = `${kind === 'org' ? 'Tenants' : 'App instances'} with violations, page ${p} of ${pages}`;
      await w.write(
        ['lists', `${base}-${p}.html`],
        reportPage({ title: heading, heading, crumbs: [{ label: 'Drift report', href: '../index.html' }, { label: `All ${noun}s` }], root: '../', body: listBody, script: true, findings }),
      );
    }
  }
}
