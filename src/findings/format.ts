/**
 * How findings read to people: money, counts, instants and a violation's `detail`, the same in
 * every output (reports, diff, summary.md, JUnit and Vitest tables, customer summaries). Plain
 * text; an HTML template escapes it like any other value.
 */

import { ISO_4217_EXPONENT } from './money.ts';

/** Minor-unit exponent of an ISO-4217 code (JPY 0, USD 2, BHD 3); 2 for anything unknown. */
export function fractionDigits(currency: string): number {
  return ISO_4217_EXPONENT[currency] ?? 2;
}

function groupThousands(digits: string): string {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** An integer with thousands separators; bigint stays exact. */
export function formatInt(n: bigint | number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  const v = typeof n === 'bigint' ? n : BigInt(Math.trunc(n));
  const neg = v < 0n;
  return (neg ? '−' : '') + groupThousands((neg ? -v : v).toString());
}

/**
 * Minor units as an exact decimal string in major units: `48360n, 'EUR'` → `483.60`,
 * `-5n, 'EUR'` → `-0.05`, `1500n, 'JPY'` → `1500`. Built from the bigint's digits, so any
 * size stays exact; violations.csv's `amount_major` is the same text.
 */
export function minorToDecimal(minor: bigint, currency: string): string {
  const digits = fractionDigits(currency);
  const neg = minor < 0n;
  const abs = (neg ? -minor : minor).toString().padStart(digits + 1, '0');
  const whole = abs.slice(0, abs.length - digits);
  return `${neg ? '-' : ''}${whole}${digits > 0 ? `.${abs.slice(abs.length - digits)}` : ''}`;
}

/** A currency's formatter, and whether it prints the code itself (a valid ISO-4217 code). */
interface MoneyFormat {
  readonly format: Intl.NumberFormat;
  readonly showsCode: boolean;
}

const formatters = new Map<string, MoneyFormat>();

function formatterFor(currency: string): MoneyFormat {
  let f = formatters.get(currency);
  if (!f) {
    const digits = fractionDigits(currency);
    const options: Intl.NumberFormatOptions = { minimumFractionDigits: digits, maximumFractionDigits: digits, useGrouping: true };
    let format: Intl.NumberFormat;
    try {
      format = new Intl.NumberFormat('en', /^[A-Z]{3}$/.test(currency) ? { ...options, style: 'currency', currency, currencyDisplay: 'code' } : options);
    } catch {
      format = new Intl.NumberFormat('en', options);
    }
    // Asked once here: resolvedOptions() on every call was most of formatMoney's cost.
    f = { format, showsCode: format.resolvedOptions().style === 'currency' };
    formatters.set(currency, f);
  }
  return f;
}

/**
 * Money in minor units → `EUR 483.60`, `JPY 1,500`, `-EUR 4.80`: the one money formatter of
 * every output (reports, diff, summary.md, JUnit and Vitest tables). Exact at any size: the
 * bigint becomes a decimal string (ISO-4217 exponent) and Intl.NumberFormat formats that string,
 * which it reads as an exact decimal, never through a float. A null amount is `—`; a null
 * currency is `???`; a code that is not three capital letters is shown as given before the
 * number. Spaces are plain spaces, so the text greps and pastes the same everywhere.
 */
export function formatMoney(minor: bigint | null | undefined, currency: string | null | undefined): string {
  if (minor === null || minor === undefined) return '—';
  const code = currency ?? '???';
  const f = formatterFor(code);
  // Intl.NumberFormat v3 takes a decimal string exactly; its TypeScript type still says number.
  const text = f.format.format(minorToDecimal(minor, code) as unknown as number).replace(/\u00a0/g, ' ');
  return f.showsCode ? text : `${minor < 0n ? '-' : ''}${code} ${text.replace(/^-/, '')}`;
}

/** Money as a plain number for a chart axis (charts are approximate; tables stay exact). */
export function moneyAsNumber(minor: bigint, currency: string): number {
  return Number(minor) / 10 ** fractionDigits(currency);
}

/** `2026-11-20T11:50:00Z` → `2026-11-20 11:50:00 UTC`. */
export function formatInstant(iso: string | null | undefined): string {
  if (!iso) return '—';
  return iso.replace('T', ' ').replace(/(\.0+)?Z$/, ' UTC');
}

/** Shortens long text for a table cell (the full value stays in violations.csv). */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** Money per currency, each through formatMoney: `EUR 474.00, GBP 25.34`; empty when none. */
export function formatMoneyByCurrency(byCurrency: Readonly<Record<string, bigint>>): string {
  return Object.entries(byCurrency)
    .map(([currency, amount]) => formatMoney(amount, currency))
    .join(', ');
}

// --- a violation's detail, for people ----------------------------------------------------------

export interface DetailField {
  label: string;
  value: string;
}

function isInteger(v: unknown): v is bigint | number | string {
  return typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v)) || (typeof v === 'string' && /^-?\d+$/.test(v));
}

function currencyOf(o: Record<string, unknown>, fallback: string | null): string | null {
  for (const k of ['currency', 'entry_currency', 'usage_currency']) {
    const c = o[k];
    if (typeof c === 'string' && c !== '') return c;
  }
  return fallback;
}

/** One value of a detail as text; `*_minor` integers are money in `currency`. */
function detailValue(key: string, v: unknown, currency: string | null): string {
  if (v === null || v === undefined) return '—';
  if (key.endsWith('_minor') && isInteger(v)) return formatMoney(BigInt(v), currency);
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'bigint' || typeof v === 'number') return String(v);
  if (Array.isArray(v)) return v.length === 0 ? 'none' : v.map((x) => detailValue(key, x, currency)).join(', ');
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const c = currencyOf(o, currency);
    return `(${Object.entries(o)
      .filter(([k]) => !(k === 'currency' && Object.keys(o).some((x) => x.endsWith('_minor'))))
      .map(([k, x]) => `${labelOf(k)}: ${detailValue(k, x, c)}`)
      .join(', ')})`;
  }
  return String(v);
}

function labelOf(key: string): string {
  return key.replace(/_minor$/, '').replaceAll('_', ' ');
}

/**
 * A violation's `detail` as labelled values for people (reports, diff, Vitest/JUnit tables):
 * `accrued_cost_minor = 480` becomes `accrued cost: EUR 4.80`, money through formatMoney in the
 * detail's own currency (else the violation's). A `currency` key that only qualifies the amounts
 * is folded into them. Anything that is not a JSON object is one `detail` field.
 */
export function detailFields(detail: unknown, violationCurrency: string | null): DetailField[] {
  if (detail === null || detail === undefined) return [];
  if (typeof detail !== 'object' || Array.isArray(detail)) return [{ label: 'detail', value: detailValue('detail', detail, violationCurrency) }];
  const o = detail as Record<string, unknown>;
  const currency = currencyOf(o, violationCurrency);
  const hasMoney = Object.entries(o).some(([k, v]) => k.endsWith('_minor') && isInteger(v));
  return Object.entries(o)
    .filter(([k]) => !(hasMoney && k === 'currency'))
    .map(([k, v]) => ({ label: labelOf(k), value: detailValue(k, v, currency) }));
}

/** detailFields as one line: `accrued cost: EUR 4.80; debited: EUR 9.60`. */
export function detailLine(detail: unknown, violationCurrency: string | null): string {
  return detailFields(detail, violationCurrency)
    .map((f) => `${f.label}: ${f.value}`)
    .join('; ');
}
