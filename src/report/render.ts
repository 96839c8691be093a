import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import ejs from 'ejs';
import type { Config } from '../config.ts';
import type { BackingRow, Engine } from '../engine/engine.ts';
import { CATALOG } from '../catalog/index.ts';
import type { Findings } from '../findings/types.ts';
import { parseExact } from '../json.ts';
import { barChart, type BarDatum, type Chart } from './charts.ts';
import * as data from './data.ts';
import type { Money } from './data.ts';
import { detailFields, formatInstant, formatInt, formatMoney, moneyAsNumber, truncate, type DetailField } from '../findings/format.ts';
import { logQueries, violationTimeRange, type LinkTemplates, type LogQuery } from './format.ts';
import { resolveInside, safeFileName } from './paths.ts';
import { PACKAGE_ROOT } from '../package-root.ts';
import { describeScope, isNarrowed, normaliseScope } from '../scope.ts';
import { contentSecurityPolicy } from '../shared/html.ts';
import { BLAST_RADIUS_LABEL } from '../findings/triage.ts';

export { safeFileName } from './paths.ts';

export interface RenderInput {
  engine: Engine;
  findings: Findings;
  config: Config;
}

export interface RenderOptions {
  /** Violating rows listed per invariant on a tenant or app-instance page (default 50). */
  maxRows?: number;
  /** Tenants and app instances listed on the index (default 100); the rest are on list pages. */
  indexRows?: number;
  /** Rows per list page (default 500). */
  listPageSize?: number;
  /** Entities whose pages are built from one round of queries (default 1000: each round scans the violations once, and 100 made 10,000 tenants cost 100 scans). */
  batchSize?: number;
}

const DEFAULTS = { maxRows: 50, indexRows: 100, listPageSize: 500, batchSize: 1000 } as const;
/** Projects / app instances / tenants per impact table. */
const IMPACT_LIMIT = 50;
/** Characters of a violation's detail JSON shown in a cell (violations.csv has all of it). */
const DETAIL_CHARS = 600;
/** Bars per chart. */
const CHART_BARS = 15;
const SEVERITY_LEGEND = [
  { cls: 'error', label: 'error' },
  { cls: 'warn', label: 'warning' },
  { cls: 'waived', label: 'waived' },
];
const AGING_LEGEND = [
  { cls: 'usage', label: 'open usage' },
  { cls: 'payment', label: 'open payment session' },
];

interface FigureView {
  chart: Chart;
  caption: string;
  legend?: Array<{ cls: string; label: string }>;
}

// --- templates and assets -----------------------------------------------------------------------

const TEMPLATE_DIR = path.join(PACKAGE_ROOT, 'src', 'report', 'templates');

function readAsset(name: string): string {
  return readFileSync(resolveInside(TEMPLATE_DIR, name), 'utf8');
}

type Template = (locals: Record<string, unknown>) => string;

const templates = new Map<string, Template>();

function template(name: string): Template {
  let t = templates.get(name);
  if (!t) {
    const filename = resolveInside(TEMPLATE_DIR, `${name}.ejs`);
    // strict + no `with`: a template can only read what it is given, as `it.*`.
    const fn = ejs.compile(readFileSync(filename, 'utf8'), {
      filename,
      strict: true,
      _with: false,
      localsName: 'it',
      cache: true,
      async: false,
    });
    t = (locals) => fn(locals);
    templates.set(name, t);
  }
  return t;
}

const CSS = readAsset('style.css').trim();
const FILTER_SCRIPT = readAsset('filter.js').trim();

/** The policy of a report page: its stylesheet and, on pages that filter, the filter script. */
export function pagePolicy(withScript: boolean): string {
  return contentSecurityPolicy({ css: CSS, script: withScript ? FILTER_SCRIPT : null });
}

const ID_DISPLAY_MAX = 160;

/** An id as shown in tables: never invisible (empty), never a wall of text (the page heading has it in full). */
export function displayId(id: string | null | undefined): string {
  if (id === null || id === undefined) return '—';
  if (id === '') return '(empty id)';
  return id.length > ID_DISPLAY_MAX ? `${id.slice(0, 120)}… (${id.length} characters)` : id;
}

const helpers = {
  money: formatMoney,
  int: formatInt,
  id: displayId,
};

interface Crumb {
  label: string;
  href?: string;
}

function page(opts: {
  title: string;
  heading: string;
  crumbs: Crumb[];
  root: string;
  body: string;
  script: boolean;
  findings: Findings;
  /** The entity's id, shown in full under the heading when the heading had to shorten it. */
  fullId?: string;
}): string {
  const f = opts.findings;
  const scope = isNarrowed(normaliseScope(f.scope)) ? describeScope(f.scope) : '';
  return template('layout')({
    title: opts.title,
    heading: opts.heading,
    crumbs: opts.crumbs,
    root: opts.root,
    body: opts.body,
    script: opts.script ? FILTER_SCRIPT : null,
    css: CSS,
    csp: pagePolicy(opts.script),
    tool: `${f.tool.name} ${f.tool.version}`,
    asOf: formatInstant(f.as_of),
    scope: scope || null,
    fullId: opts.fullId !== undefined && displayId(opts.fullId) !== opts.fullId && opts.fullId !== '' ? opts.fullId : null,
  });
}

/**
 * A page outside the drift report set (the incident page) in the same shell: the reports' CSS,
 * hashed CSP, escaping helpers, and a footer linking the findings written beside it.
 */
export function renderStandalonePage(name: string, locals: Record<string, unknown>, opts: { title: string; heading: string; findings: Findings }): string {
  return page({
    title: opts.title,
    heading: opts.heading,
    crumbs: [{ label: opts.heading }],
    root: '',
    body: template(name)({ h: helpers, ...locals }),
    script: false,
    findings: opts.findings,
  });
}

// --- shared view models -------------------------------------------------------------------------

const CATALOG_ORDER = new Map(CATALOG.map((inv, i) => [inv.id, i]));

interface ScopeField {
  label: string;
  value: string;
  href?: string;
}

interface ViolationView {
  entity_type: string;
  entity_id: string;
  amount_minor: bigint | null;
  currency: string | null;
  detail: DetailField[];
  waived: boolean;
  waiver_reason: string | null;
  scope: ScopeField[];
  logs: LogQuery[];
}

interface SectionView {
  id: string;
  anchor: string;
  title: string;
  severity: string;
  explanation: string;
  runbook: string;
  open: number;
  waived: number;
  money: Money[];
  rows: ViolationView[];
  more: number;
}

/** Labelled values of a violation's detail (money formatted); a cut-off detail is shown as its text. */
function detailView(detail: string | null, truncated: boolean, currency: string | null): DetailField[] {
  if (detail === null) return [];
  if (!truncated) {
    try {
      return detailFields(parseExact(detail), currency).map((f) => ({ label: f.label, value: truncate(f.value, DETAIL_CHARS) }));
    } catch {
      // not JSON: shown as text
    }
  }
  return [{ label: 'detail', value: truncated ? `${detail}… (cut; violations.csv has all of it)` : detail }];
}

interface Links {
  /** Relative path from the page to the output root (`''` or `'../'`). */
  root: string;
  org(id: string): string;
  app(id: string): string;
}

function linksFrom(root: string): Links {
  return {
    root,
    org: (id) => `${root}orgs/${safeFileName(id)}.html`,
    app: (id) => `${root}app-instances/${safeFileName(id)}.html`,
  };
}

function violationView(r: data.ViolationRow, links: Links, templates: LinkTemplates, omit: 'org_id' | 'app_instance_id', asOf: string): ViolationView {
  const scope: ScopeField[] = [];
  const add = (label: string, value: string | null, href?: string) => {
    if (value === null || value === '') return;
    scope.push(href === undefined ? { label, value } : { label, value, href });
  };
  // Every violation with an org or app instance has a page for it (the pages are built from the
  // same violations table), so those ids link.
  if (omit !== 'org_id' && r.org_id !== null) add('org', r.org_id, links.org(r.org_id));
  add('project', r.project_id);
  add('user', r.requested_by_user_id);
  add('allocation', r.allocation_id);
  if (omit !== 'app_instance_id' && r.app_instance_id !== null) add('app instance', r.app_instance_id, links.app(r.app_instance_id));
  add('usage record', r.usage_record_id);
  add('ledger entry', r.ledger_entry_id);
  add('payment session', r.payment_session_id);
  add('usage source', r.usage_source);
  return {
    entity_type: r.entity_type,
    entity_id: r.entity_id,
    amount_minor: r.amount_minor,
    currency: r.currency,
    detail: detailView(r.detail, r.detail_truncated, r.currency),
    waived: r.waived,
    waiver_reason: r.waiver_reason,
    scope,
    logs: logQueries({ correlation_id: r.correlation_id, trace_id: r.trace_id }, templates, violationTimeRange(parsedDetail(r), asOf)),
  };
}

function parsedDetail(r: data.ViolationRow): unknown {
  if (r.detail === null || r.detail_truncated) return null;
  try {
    return parseExact(r.detail);
  } catch {
    return null;
  }
}

/** An invariant's anchor on a page, e.g. `inv-ledger-duplicate_debit` (no dot, so it is also a plain CSS id selector). */
export function anchorFor(invariantId: string): string {
  return `inv-${safeFileName(invariantId).replaceAll('.', '-')}`;
}

function sections(totals: data.InvariantTotals[], rows: data.ViolationRow[], links: Links, tpl: LinkTemplates, omit: 'org_id' | 'app_instance_id', asOf: string): SectionView[] {
  const byInvariant = new Map<string, data.ViolationRow[]>();
  for (const r of rows) {
    const list = byInvariant.get(r.invariant_id) ?? [];
    list.push(r);
    byInvariant.set(r.invariant_id, list);
  }
  return totals
    .slice()
    .sort((a, b) => (CATALOG_ORDER.get(a.invariant_id) ?? 1e9) - (CATALOG_ORDER.get(b.invariant_id) ?? 1e9) || a.invariant_id.localeCompare(b.invariant_id))
    .map((t) => {
      const inv = CATALOG.find((i) => i.id === t.invariant_id);
      const shown = (byInvariant.get(t.invariant_id) ?? []).map((r) => violationView(r, links, tpl, omit, asOf));
      return {
        id: t.invariant_id,
        anchor: anchorFor(t.invariant_id),
        title: inv?.title ?? '(not in this version of the catalog)',
        severity: t.severity,
        explanation: inv?.explanation ?? '',
        runbook: inv?.runbook ?? '',
        open: t.open,
        waived: t.waived,
        money: t.money,
        rows: shown,
        more: t.open + t.waived - shown.length,
      };
    });
}

const SPLIT_LABELS: ReadonlyArray<[keyof Omit<data.MoneySplit, 'entity' | 'currency' | 'total' | 'deduplicated' | 'error' | 'warn' | 'items'>, string]> = [
  ['unbilled', 'Unbilled'],
  ['over', 'Over-charged'],
  ['under', 'Under-charged'],
  ['currency_mismatch', 'Debited in another currency'],
  ['mismatch', 'Debit mismatch (direction unknown)'],
  ['duplicate_credit', 'Duplicated credit'],
];

interface Cards {
  errors: number;
  warns: number;
  waived: number;
  invariants: number;
  money: Array<{
    currency: string;
    /** Each money movement once. */
    total: bigint;
    items: number;
    counted: Array<{ label: string; amount: bigint }>;
    /** The per-invariant amounts (overlapping) by kind; they add up to `overlapping`. */
    overlapping: bigint;
    parts: Array<{ label: string; amount: bigint }>;
  }>;
}

function cards(totals: data.InvariantTotals[], split: data.MoneySplit[]): Cards {
  let errors = 0;
  let warns = 0;
  let waived = 0;
  for (const t of totals) {
    if (t.severity === 'error') errors += t.open;
    else warns += t.open;
    waived += t.waived;
  }
  return {
    errors,
    warns,
    waived,
    invariants: totals.filter((t) => t.open > 0).length,
    money: split.map((s) => {
      // Unbilled, over/under-charge and duplicated credit are always shown, even at 0; the
      // rarer kinds only when they occur; the rest of the per-invariant sum (other invariants)
      // last, so the split adds up to the overlapping sum it splits.
      const parts = SPLIT_LABELS.filter(([k]) => s[k] !== 0n || ['unbilled', 'over', 'under', 'duplicate_credit'].includes(k)).map(([k, label]) => ({
        label,
        amount: s[k],
      }));
      const other = s.total - SPLIT_LABELS.reduce((acc, [k]) => acc + s[k], 0n);
      if (other !== 0n) parts.push({ label: 'Other findings', amount: other });
      return {
        currency: s.currency,
        total: s.deduplicated,
        items: Number(s.items),
        counted: [
          { label: 'Errors', amount: s.error },
          { label: 'Warnings only', amount: s.warn },
        ],
        overlapping: s.total,
        parts,
      };
    }),
  };
}

async function severityChart(totals: data.InvariantTotals[], alt: string, bars = CHART_BARS, byCount = true): Promise<Chart | null> {
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
async function moneyByKeyCharts(rows: data.ImpactRow[], what: string): Promise<FigureView[]> {
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

function impactView(rows: data.ImpactRow[], keys: number | undefined, what: string, href?: (key: string) => string) {
  return {
    rows: rows.map((r) => ({
      label: r.key ?? `(no ${what})`,
      n: r.n,
      money: r.money,
      ...(href && r.key !== null ? { href: href(r.key) } : {}),
    })),
    more: Math.max(0, (keys ?? rows.length) - rows.length),
  };
}

function groupBy<T>(rows: readonly T[], key: (r: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const r of rows) {
    const k = key(r);
    const list = out.get(k);
    if (list) list.push(r);
    else out.set(k, [r]);
  }
  return out;
}

// --- writing ------------------------------------------------------------------------------------

class Writer {
  readonly files: string[] = [];
  readonly dirs = new Set<string>();
  constructor(readonly outDir: string) {}

  async write(rel: string[], html: string): Promise<void> {
    const path = resolveInside(this.outDir, ...rel);
    if (rel.length > 1) {
      const dir = resolveInside(this.outDir, ...rel.slice(0, -1));
      if (!this.dirs.has(dir)) {
        await mkdir(dir, { recursive: true });
        this.dirs.add(dir);
      }
    }
    await writeFile(path, html, 'utf8');
    this.files.push(path);
  }
}

// --- pages --------------------------------------------------------------------------------------

/** The text a filter box matches: ids, invariants and every amount as shown (with and without grouping). */
function filterText(parts: Array<string | null | undefined>): string {
  const text = parts.filter((p): p is string => !!p).join(' ').toLowerCase();
  return `${text} ${text.replaceAll(',', '')}`;
}

function largestView(l: data.LargestIssue | null, root: string) {
  if (l === null) return null;
  const [type, ...rest] = l.item.split(':');
  const id = rest.join(':');
  const what = type === 'usage_record' ? 'usage record' : type === 'payment_session' ? 'payment session' : type === 'ledger_entry' ? 'ledger entry' : 'violation';
  return {
    money: formatMoney(l.amount, l.currency),
    what: type === 'usage_record' || type === 'payment_session' || type === 'ledger_entry' ? `${what} ${id}` : l.item,
    invariants: l.invariant_ids.map((inv) => ({ id: inv, href: `${root}invariants/${safeFileName(inv)}.html` })),
  };
}

function entityRows(list: data.RankedEntity[], href: (id: string) => string, root: string) {
  return list.map((e) => {
    const largest = largestView(e.largest, root);
    return {
      ...e,
      href: href(e.id),
      largest,
      filterText: filterText([
        e.id,
        ...e.invariant_ids,
        ...e.money.flatMap((m) => [m.currency, formatMoney(m.amount, m.currency), formatMoney(m.overlapping, m.currency ?? '')]),
        largest?.what,
        largest?.money,
      ]),
    };
  });
}

/** Money per currency as a bigint list in the audit's currency order, for ranking without FX. */
function moneyKey(byCurrency: Record<string, bigint>, currencies: readonly string[]): bigint[] {
  const extra = Object.keys(byCurrency).filter((c) => !currencies.includes(c)).sort();
  return [...currencies, ...extra].map((c) => byCurrency[c] ?? 0n);
}

function compareKeysDesc(a: bigint[], b: bigint[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0n;
    const y = b[i] ?? 0n;
    if (x !== y) return x > y ? -1 : 1;
  }
  return 0;
}

/** Bars of the index chart; beyond this the chart says "top N of M". */
const INDEX_CHART_BARS = 40;
/** Tenants listed per invariant page. */
const INVARIANT_PAGE_TENANTS = 1000;
/** Violations listed on the page of violations without a tenant. */
const NO_TENANT_ROWS = 500;

async function renderIndex(input: RenderInput, env: data.Environment, w: Writer, o: Required<RenderOptions>): Promise<void> {
  const { findings, config } = input;
  const { db } = input.engine;
  const links = linksFrom('');
  const [orgTotal, appTotal] = [await data.countEntities(db, 'org'), await data.countEntities(db, 'app')];
  const orgs = await data.rankedEntities(db, 'org', 1, o.indexRows);
  const apps = await data.rankedEntities(db, 'app', 1, o.indexRows);
  const unattributed = await data.unattributed(db);
  const currencies = await data.currencies(db);
  const affected = groupBy(await data.invariantTenants(db, INVARIANT_PAGE_TENANTS), (r) => r.invariant_id);

  // Invariants ranked by their (overlapping) money at stake, currency by currency in the audit's
  // currency order, never converted; then by violations.
  const ranked = findings.invariants
    .map((r, i) => ({ r, i, key: moneyKey(r.amount_minor_by_currency, currencies) }))
    .sort((a, b) => compareKeysDesc(a.key, b.key) || b.r.violations + b.r.waived_violations - (a.r.violations + a.r.waived_violations) || a.i - b.i)
    .map((x) => x.r);
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
    page({ title: 'Billing drift report', heading: 'Billing drift report', crumbs: [{ label: 'Drift report' }], root: '', body, script: true, findings }),
  );

  // One page per invariant with violations: every tenant it affects.
  const sub = linksFrom('../');
  for (const r of failing) {
    const inv = CATALOG.find((i) => i.id === r.id);
    const tenants = affected.get(r.id) ?? [];
    const rows = tenants.map((x) => ({
      org: x.org_id,
      href: x.org_id === null ? '../no-tenant.html' : `${sub.org(x.org_id)}#${anchorFor(r.id)}`,
      open: x.open,
      waived: x.waived,
      money: x.money,
      filterText: filterText([x.org_id ?? 'no tenant', ...x.money.map((m) => formatMoney(m.amount, m.currency))]),
    }));
    const invBody = template('invariant')({
      h: helpers,
      r,
      explanation: inv?.explanation ?? '',
      runbook: inv?.runbook ?? '',
      money: Object.entries(r.amount_minor_by_currency).map(([currency, amount]) => ({ currency, amount })),
      rows,
      total: tenants[0]?.tenants ?? 0,
    });
    await w.write(
      ['invariants', `${safeFileName(r.id)}.html`],
      page({
        title: `${r.id} — billing drift`,
        heading: `Invariant ${r.id}`,
        crumbs: [{ label: 'Drift report', href: '../index.html' }, { label: 'Invariant' }],
        root: '../',
        body: invBody,
        script: true,
        findings,
      }),
    );
  }

  // The violations that name no tenant, which no tenant page shows.
  if (unattributed.length > 0) {
    const { rows, total } = await data.unattributedRows(db, NO_TENANT_ROWS, DETAIL_CHARS);
    const totals: data.InvariantTotals[] = unattributed.map((u) => ({
      entity: '',
      invariant_id: u.invariant_id,
      severity: findings.invariants.find((x) => x.id === u.invariant_id)?.severity ?? 'error',
      open: u.n,
      waived: 0,
      money: u.money,
    }));
    const noTenantBody = template('no-tenant')({
      h: helpers,
      total,
      shown: rows.length,
      sections: sections(totals, rows, linksFrom(''), config.links, 'org_id', env.asOf),
    });
    await w.write(
      ['no-tenant.html'],
      page({
        title: 'Violations without a tenant — billing drift',
        heading: 'Violations without a tenant',
        crumbs: [{ label: 'Drift report', href: 'index.html' }, { label: 'Without a tenant' }],
        root: '',
        body: noTenantBody,
        script: false,
        findings,
      }),
    );
  }

  // Every tenant and app instance is reachable from the index: the ones beyond its cap through
  // ranked list pages.
  for (const kind of ['org', 'app'] as const) {
    const total = kind === 'org' ? orgTotal : appTotal;
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
        page({ title: heading, heading, crumbs: [{ label: 'Drift report', href: '../index.html' }, { label: `All ${noun}s` }], root: '../', body: listBody, script: true, findings }),
      );
    }
  }
}

async function renderOrgBatch(input: RenderInput, env: data.Environment, w: Writer, batch: number, o: Required<RenderOptions>): Promise<void> {
  const { findings, config } = input;
  const { db } = input.engine;
  const links = linksFrom('../');
  const ids = await data.batchIds(db, 'org', batch);
  const totals = groupBy(await data.invariantTotals(db, 'org', batch), (r) => r.entity);
  const rows = groupBy(await data.violationRows(db, 'org', batch, o.maxRows, DETAIL_CHARS), (r) => r.entity);
  const split = groupBy(await data.moneySplit(db, 'org', batch), (r) => r.entity);
  const projects = await data.impact(db, 'org', batch, 'project_id', IMPACT_LIMIT);
  const projectRows = groupBy(projects.rows, (r) => r.entity);
  const apps = await data.impact(db, 'org', batch, 'app_instance_id', IMPACT_LIMIT);
  const appRows = groupBy(apps.rows, (r) => r.entity);
  const aging = groupBy(await data.aging(db, batch), (r) => r.org_id);

  await Promise.all(
    ids.map(async (id) => {
      const t = totals.get(id) ?? [];
      const agingRows = agingView(aging.get(id) ?? []);
      const charts: FigureView[] = [];
      const sev = await severityChart(t, `Violations per invariant for tenant ${id}.`);
      if (sev) charts.push({ chart: sev, caption: 'Violations per invariant.', legend: SEVERITY_LEGEND });
      charts.push(...(await moneyByKeyCharts(projectRows.get(id) ?? [], 'project')));
      const ag = await agingChart(aging.get(id) ?? [], id);
      if (ag) charts.push({ chart: ag, caption: 'Open items by age (count).', legend: AGING_LEGEND });
      const body = template('org')({
        h: helpers,
        id,
        root: '../',
        asOf: formatInstant(env.asOf),
        cards: cards(t, split.get(id) ?? []),
        charts,
        sections: sections(t, rows.get(id) ?? [], links, config.links, 'org_id', env.asOf),
        projects: impactView(projectRows.get(id) ?? [], projects.keys.get(id), 'project'),
        apps: impactView(appRows.get(id) ?? [], apps.keys.get(id), 'app instance', links.app),
        aging: agingRows,
      });
      await w.write(
        ['orgs', `${safeFileName(id)}.html`],
        page({
          title: `Tenant ${truncate(displayId(id), 80)} — billing drift`,
          heading: `Tenant ${displayId(id)}`,
          fullId: id,
          crumbs: [{ label: 'Drift report', href: '../index.html' }, { label: 'Tenant' }],
          root: '../',
          body,
          script: false,
          findings,
        }),
      );
    }),
  );
}

function agingView(rows: data.AgingRow[]) {
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

async function agingChart(rows: data.AgingRow[], id: string): Promise<Chart | null> {
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

function backingLabel(b: BackingRow): { backing: string; backingClass: string } {
  if (b.end_time === null) return { backing: b.debits > 0 ? 'open, has debits' : 'open', backingClass: b.debits > 0 ? 'warn' : 'skipped' };
  if (b.debits === 0) return (b.accrued_cost_minor ?? 0n) > 0n ? { backing: 'no debit', backingClass: 'error' } : { backing: 'nothing to bill', backingClass: 'pass' };
  if (b.other_currency > 0) return { backing: 'debit in another currency', backingClass: 'error' };
  if (b.debited !== b.accrued_cost_minor) return { backing: 'amount differs', backingClass: 'error' };
  return { backing: b.debits > 1 ? `backed by ${b.debits} debits` : 'backed', backingClass: b.debits > 1 ? 'warn' : 'pass' };
}

function componentKind(cp: boolean | null): string {
  return cp === true ? 'control plane' : cp === false ? 'workload' : 'unclassified';
}

async function renderAppBatch(input: RenderInput, env: data.Environment, w: Writer, batch: number, o: Required<RenderOptions>): Promise<void> {
  const { findings, config } = input;
  const { db } = input.engine;
  const links = linksFrom('../');
  const ids = await data.batchIds(db, 'app', batch);
  const totals = groupBy(await data.invariantTotals(db, 'app', batch), (r) => r.entity);
  const rows = groupBy(await data.violationRows(db, 'app', batch, o.maxRows, DETAIL_CHARS), (r) => r.entity);
  const split = groupBy(await data.moneySplit(db, 'app', batch), (r) => r.entity);
  const orgs = await data.impact(db, 'app', batch, 'org_id', IMPACT_LIMIT);
  const orgRows = groupBy(orgs.rows, (r) => r.entity);
  const attribution = await data.appAttribution(db, env, batch);
  const attributionBy = groupBy(attribution, (r) => r.app_instance_id);
  const orgPages = await data.withPages(db, 'org', [...new Set(attribution.map((a) => a.org_id).filter((x): x is string => x !== null))]);
  const usage = groupBy(await data.usageSplit(db, env, batch), (r) => r.app_instance_id);
  const backing = await data.ledgerBacking(db, env, batch, o.maxRows);
  const backingRows = groupBy(backing.rows, (r) => r.app_instance_id);
  const backingSummary = new Map(backing.summary.map((s) => [s.app_instance_id, s]));

  await Promise.all(
    ids.map(async (id) => {
      const t = totals.get(id) ?? [];
      const attr = attributionBy.get(id) ?? [];
      const charts: FigureView[] = [];
      const sev = await severityChart(t, `Violations per invariant for app instance ${id}.`);
      if (sev) charts.push({ chart: sev, caption: 'Violations per invariant.', legend: SEVERITY_LEGEND });
      const summary = backingSummary.get(id) ?? { app_instance_id: id, rows: 0, open: 0, backed: 0, unbacked: 0 };
      const shownBacking = backingRows.get(id) ?? [];
      const body = template('app-instance')({
        h: helpers,
        id,
        root: '../',
        cards: cards(t, split.get(id) ?? []),
        hasAppInstances: env.engine.tables.has('app_instances'),
        hasUsage: env.engine.tables.has('usage_records'),
        copies: attr[0]?.copies ?? 0,
        attribution: attr.map((a) => ({
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
          logs: logQueries({ correlation_id: a.correlation_id, trace_id: a.trace_id }, config.links),
        })),
        orgs: impactView(orgRows.get(id) ?? [], orgs.keys.get(id), 'tenant', links.org),
        usage: (usage.get(id) ?? []).map((u) => ({
          usage_source: u.usage_source ?? '—',
          component: componentKind(u.control_plane_component),
          currency: u.currency ?? '—',
          n: u.n,
          open: u.open,
          accrued: u.accrued,
        })),
        charts,
        backing: {
          summary,
          more: Math.max(0, summary.rows - shownBacking.length),
          rows: shownBacking.map((b) => ({
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
        },
        sections: sections(t, rows.get(id) ?? [], links, config.links, 'app_instance_id', env.asOf),
      });
      await w.write(
        ['app-instances', `${safeFileName(id)}.html`],
        page({
          title: `App instance ${truncate(displayId(id), 80)} — billing drift`,
          heading: `App instance ${displayId(id)}`,
          fullId: id,
          crumbs: [{ label: 'Drift report', href: '../index.html' }, { label: 'App instance' }],
          root: '../',
          body,
          script: false,
          findings,
        }),
      );
    }),
  );
}

/**
 * Writes the HTML drift reports (CONTRACT.md §4): `outDir/index.html`, one page per tenant with
 * violations under `outDir/orgs/`, one per app instance with violations under
 * `outDir/app-instances/`, and ranked list pages under `outDir/lists/` when there are more
 * tenants or app instances than the index shows. Reads the `violations` table and the contract
 * tables of `db`; every file is self-contained (inline CSS, SVG charts, hashed CSP).
 */
export async function renderReports(input: RenderInput, outDir: string, opts: RenderOptions = {}): Promise<{ files: string[] }> {
  const o: Required<RenderOptions> = {
    maxRows: opts.maxRows ?? DEFAULTS.maxRows,
    indexRows: opts.indexRows ?? DEFAULTS.indexRows,
    listPageSize: opts.listPageSize ?? DEFAULTS.listPageSize,
    batchSize: opts.batchSize ?? DEFAULTS.batchSize,
  };
  for (const [k, v] of Object.entries(o)) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`renderReports: ${k} must be a positive integer, got ${v}`);
  }
  await mkdir(outDir, { recursive: true });
  const w = new Writer(outDir);
  const env = await data.prepare(input.engine, input.findings.as_of, o.batchSize);
  try {
    await renderIndex(input, env, w, o);
    const orgBatches = await data.batchCount(input.engine.db, 'org');
    for (let b = 0; b < orgBatches; b++) await renderOrgBatch(input, env, w, b, o);
    const appBatches = await data.batchCount(input.engine.db, 'app');
    for (let b = 0; b < appBatches; b++) await renderAppBatch(input, env, w, b, o);
  } finally {
    await data.dropReportTables(input.engine.db);
  }
  return { files: w.files };
}
