import { CATALOG } from '../catalog/index.ts';
import type { InvariantResult } from '../findings/types.ts';
import { parseExact } from '../json.ts';
import type * as data from './data.ts';
import type { Money } from './data.ts';
import { detailFields, formatMoney, truncate, type DetailField } from '../findings/format.ts';
import { logQueries, violationTimeRange, type LinkTemplates, type LogQuery } from './format.ts';
import { safeFileName } from './paths.ts';

/**
 * View models: the report queries' rows (src/report/data.ts) and the findings turned into the
 * plain objects the page templates render.
 */

/** Characters of a violation's detail JSON shown in a cell (violations.csv has all of it). */
export const DETAIL_CHARS = 600;

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

export interface Links {
  /** Relative path from the page to the output root (`''` or `'../'`). */
  root: string;
  org(id: string): string;
  app(id: string): string;
}

export function linksFrom(root: string): Links {
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

/** One section per invariant, in catalog order, with the violations shown of it. */
export function sections(totals: data.InvariantTotals[], rows: data.ViolationRow[], links: Links, tpl: LinkTemplates, omit: 'org_id' | 'app_instance_id', asOf: string): SectionView[] {
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

export function cards(totals: data.InvariantTotals[], split: data.MoneySplit[]): Cards {
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

/** Projects / app instances / tenants per impact table. */
export const IMPACT_LIMIT = 50;

export function impactView(rows: data.ImpactRow[], keys: number | undefined, what: string, href?: (key: string) => string) {
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

export function groupBy<T>(rows: readonly T[], key: (r: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const r of rows) {
    const k = key(r);
    const list = out.get(k);
    if (list) list.push(r);
    else out.set(k, [r]);
  }
  return out;
}

/** The text a filter box matches: ids, invariants and every amount as shown (with and without grouping). */
export function filterText(parts: Array<string | null | undefined>): string {
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

/** Rows of a ranked tenant or app-instance table (the index and the list pages). */
export function entityRows(list: data.RankedEntity[], href: (id: string) => string, root: string) {
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

/**
 * Invariants ranked by their (overlapping) money at stake, currency by currency in the audit's
 * currency order, never converted; then by violations.
 */
export function rankInvariants(invariants: readonly InvariantResult[], currencies: readonly string[]): InvariantResult[] {
  return invariants
    .map((r, i) => ({ r, i, key: moneyKey(r.amount_minor_by_currency, currencies) }))
    .sort((a, b) => compareKeysDesc(a.key, b.key) || b.r.violations + b.r.waived_violations - (a.r.violations + a.r.waived_violations) || a.i - b.i)
    .map((x) => x.r);
}
