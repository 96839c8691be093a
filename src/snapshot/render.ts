import { readFile } from 'node:fs/promises';
import path from 'node:path';
import ejs from 'ejs';
import { PACKAGE_ROOT } from '../package-root.ts';
import { detailLine, formatInstant, formatMoney, truncate } from '../findings/format.ts';
import type { DiffDocument, MoneyByCurrency } from './diff-document.ts';
import { describeScope } from './manifest.ts';
import { contentSecurityPolicy } from '../shared/html.ts';

/** Rows shown per section of diff.html; diff.json always has every one. */
export const HTML_ROW_LIMIT = 200;

const TEMPLATE = path.join(PACKAGE_ROOT, 'src', 'snapshot', 'templates', 'diff.ejs');
const OWN_CSS = path.join(PACKAGE_ROOT, 'src', 'snapshot', 'templates', 'diff.css');
/** The drift reports' stylesheet: the diff looks like them when it is there. */
const REPORT_CSS = path.join(PACKAGE_ROOT, 'src', 'report', 'templates', 'style.css');

async function stylesheet(): Promise<string> {
  const own = await readFile(OWN_CSS, 'utf8');
  const report = await readFile(REPORT_CSS, 'utf8').catch(() => null);
  return report === null ? own : `${report}\n${own.split('/* diff-specific */')[1] ?? ''}`;
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

/** `listLimit`: how many violations per section diff.json lists (the page says so when it is reached). */
export async function renderDiffHtml(diff: DiffDocument, listLimit: number): Promise<string> {
  const css = await stylesheet();
  const template = await readFile(TEMPLATE, 'utf8');
  const side = (s: DiffDocument['before']) => s.label ?? s.dir;
  return ejs.render(
    template,
    {
      d: diff,
      css,
      csp: contentSecurityPolicy({ css }),
      title: `recon diff: ${side(diff.before)} → ${side(diff.after)}`,
      scope:
        describeScope(diff.scope) +
        (Object.keys(diff.narrowed_to).length ? `; this diff narrowed to ${describeScope(diff.narrowed_to)}` : ''),
      moneyRows: moneyRows(diff),
      limit: HTML_ROW_LIMIT,
      listLimit,
      h: {
        money: (amount: bigint | null, currency: string | null) => formatMoney(amount, currency),
        instant: formatInstant,
        detail: (detail: unknown, currency: string | null) => truncate(detailLine(detail, currency), 400),
      },
    },
    { async: false, strict: false, rmWhitespace: false },
  );
}
