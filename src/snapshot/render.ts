import { readFile } from 'node:fs/promises';
import path from 'node:path';
import ejs from 'ejs';
import { PACKAGE_ROOT } from '../package-root.ts';
import { detailLine, formatInstant, formatMoney, truncate } from '../findings/format.ts';
import { LIST_LIMIT, type DiffDocument, type MoneyByCurrency } from './diff-document.ts';
import { describeScope } from './manifest.ts';
import { PAGE_CSS, renderPage } from '../shared/html.ts';

/** diff.html: the diff document (diff-document.ts) as a page in the shared page shell. */

/** Rows shown per section of diff.html; diff.json always has every one. */
const HTML_ROW_LIMIT = 200;

const TEMPLATE_DIR = path.join(PACKAGE_ROOT, 'src', 'snapshot', 'templates');

/** The shared stylesheet and the diff's own rules after it. */
async function stylesheet(): Promise<string> {
  const own = await readFile(path.join(TEMPLATE_DIR, 'diff.css'), 'utf8');
  // The two blank lines keep the stylesheet, and so the page's CSP hash, as it was before the
  // diff page moved into the shared shell.
  return `${PAGE_CSS}\n\n\n${own}`;
}

function moneyRows(diff: DiffDocument): Array<{ currency: string; kind: string; cells: string[] }> {
  const cols: Array<keyof DiffDocument['money']> = ['before', 'after', 'resolved', 'persisting_before', 'persisting_after', 'introduced'];
  const currencies = [...new Set([diff.money, diff.money_overlapping].flatMap((m) => cols.flatMap((c) => Object.keys(m[c]))))].sort();
  const row = (currency: string, kind: string, money: DiffDocument['money']) => ({
    currency,
    kind,
    cells: cols.map((c) => {
      const m: MoneyByCurrency = money[c];
      return m[currency] === undefined ? '—' : formatMoney(m[currency], currency);
    }),
  });
  return currencies.flatMap((currency) => [
    row(currency, '', diff.money),
    row(currency, 'errors', diff.money_by_severity.error),
    row(currency, 'warnings only', diff.money_by_severity.warn),
    row(currency, 'per invariant, overlapping', diff.money_overlapping),
  ]);
}

async function renderTemplate(name: string, locals: Record<string, unknown>): Promise<string> {
  const template = await readFile(path.join(TEMPLATE_DIR, `${name}.ejs`), 'utf8');
  return ejs.render(template, locals, { async: false, strict: false, rmWhitespace: false });
}

export async function renderDiffHtml(diff: DiffDocument): Promise<string> {
  const scope = describeScope(diff.scope) + (Object.keys(diff.narrowed_to).length ? `; this diff narrowed to ${describeScope(diff.narrowed_to)}` : '');
  const tool = `${diff.tool.name} ${diff.tool.version}`;
  const body = await renderTemplate('diff', {
    d: diff,
    moneyRows: moneyRows(diff),
    limit: HTML_ROW_LIMIT,
    listLimit: LIST_LIMIT,
    h: {
      money: (amount: bigint | null, currency: string | null) => formatMoney(amount, currency),
      instant: formatInstant,
      detail: (detail: unknown, currency: string | null) => truncate(detailLine(detail, currency), 400),
    },
  });
  return renderPage({
    title: `recon diff: ${diff.before.label ?? diff.before.dir} → ${diff.after.label ?? diff.after.dir}`,
    heading: `Remediation diff: ${diff.before.label || diff.before.dir} → ${diff.after.label || diff.after.dir}`,
    crumbs: [],
    fullId: null,
    meta: `Before as of ${formatInstant(diff.before.as_of)} · after as of ${formatInstant(diff.after.as_of)} · scope: ${scope}${diff.strict ? ' · --strict' : ''}`,
    tool,
    css: await stylesheet(),
    script: null,
    body,
    footer: await renderTemplate('diff-footer', { tool }),
  });
}
