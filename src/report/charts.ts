import ejs from 'ejs';

/**
 * Charts are drawn as plain SVG at build time, so every report is one self-contained file: no
 * script, font or data is ever fetched by the page. A chart here is one kind only (horizontal
 * bars, one per label, on a linear axis from zero), so it is drawn directly: a general grammar
 * (vega) cost a millisecond or more per chart and most of the reports stage on 10,000 tenants.
 * Every label and title is escaped; `assertSafeSvg` checks the result anyway before it is inlined.
 */

export interface BarDatum {
  label: string;
  value: number;
  /** Colour group (e.g. severity, item kind); a fixed domain keeps colours stable across pages. */
  group?: string;
}

export interface Chart {
  /** Inline SVG markup, safe to embed (checked by `assertSafeSvg`). */
  svg: string;
  /** A one-sentence text alternative. */
  alt: string;
}

type ChartKind = 'severity' | 'money' | 'aging';

/** Colours that stay readable in print and meet contrast on white. */
const GROUP_COLOURS: Readonly<Record<ChartKind, Readonly<Record<string, string>>>> = {
  severity: { error: '#b3261e', warn: '#a05a00', waived: '#6b6b6b' },
  aging: { 'open usage': '#1f5f99', 'open payment session': '#7a4fa3' },
  money: {},
};
const DEFAULT_COLOUR = '#1f5f99';

const PLOT_WIDTH = 360;
const BAR_STEP = 18;
const BAR_FILL = 0.9;
const FONT = 11;
const INK = '#333';
/** Node has no font metrics: a generous estimate of a character's width at 11 px. */
const CHAR_WIDTH = 6.6;
const LABEL_LIMIT = 400;
/** Characters of a label that fit in LABEL_LIMIT; a longer label is cut with an ellipsis. */
const LABEL_CHARS = Math.floor(LABEL_LIMIT / CHAR_WIDTH);

/** Ticks at 1, 2 or 5 times a power of ten, about four of them, whole numbers for counts. */
function ticks(max: number, whole: boolean): number[] {
  if (max <= 0) return [0];
  const rough = max / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  let step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough) ?? 10 * power;
  if (whole) step = Math.max(1, Math.round(step));
  const out: number[] = [];
  for (let t = 0; t <= max + step * 1e-9; t += step) out.push(Number(t.toFixed(10)));
  return out;
}

const MONEY_FORMAT = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
const COUNT_FORMAT = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

const px = (n: number) => String(Math.round(n * 100) / 100);

const SVG_ELEMENTS = new Set(['svg', 'g', 'path', 'rect', 'line', 'text', 'tspan', 'defs', 'clippath', 'title', 'desc', 'circle', 'ellipse', 'polyline', 'polygon']);

/**
 * Rejects SVG that could run or fetch anything. Text in the drawn output is entity-escaped,
 * so every `<` starts a real tag: each tag must be a known drawing element, and each attribute a
 * plain one (no `on*` handlers, no `href`, no `style`, no `url()` other than a local `#id`).
 * What `draw` writes always passes; a data label that somehow produced markup makes this
 * throw instead of reaching a report.
 */
export function assertSafeSvg(svg: string): void {
  const problems: string[] = [];
  if (!/^<svg[\s>]/.test(svg) || !svg.endsWith('</svg>')) problems.push('not a single <svg> element');
  if (/<[!?]/.test(svg)) problems.push('comment, CDATA, doctype or processing instruction');
  for (const m of svg.matchAll(/<(\/?)([^\s/>]*)([^>]*)>/g)) {
    const name = (m[2] ?? '').toLowerCase();
    if (!SVG_ELEMENTS.has(name)) {
      problems.push(`element <${name}>`);
      continue;
    }
    if (m[1]) continue;
    const attrs = (m[3] ?? '').replace(/\/$/, '');
    const rest = attrs.replace(/\s+([a-zA-Z][-a-zA-Z0-9_:.]*)="([^"<]*)"/g, (_, attr: string, value: string) => {
      const a = attr.toLowerCase();
      if (a.startsWith('on') || a === 'style' || a.endsWith('href') || a === 'src') problems.push(`attribute ${a}`);
      if (/url\(\s*['"]?(?!#)/i.test(value) || /javascript:/i.test(value)) problems.push(`value of ${a}`);
      return '';
    });
    if (rest.trim() !== '') problems.push(`unparsed attributes in <${name}>`);
  }
  if (/<(?![a-zA-Z/])/.test(svg.replace(/<[!?]/g, ''))) problems.push('stray <');
  if (problems.length > 0) throw new Error(`unsafe chart SVG: ${[...new Set(problems)].join(', ')}`);
}

/**
 * Renders a horizontal bar chart to inline SVG, with `alt` as its text alternative. It has no
 * element ids, so any number of charts can share a page.
 */
export async function barChart(
  kind: ChartKind,
  rows: readonly BarDatum[],
  opts: { xTitle: string; yTitle: string; alt: string; sortByValue?: boolean },
): Promise<Chart> {
  const svg = draw(kind, rows, opts.xTitle, opts.yTitle, opts.sortByValue ?? true)
    // The root carries a text alternative; the drawn marks are decoration for it.
    .replace(/^<svg /, `<svg role="img" aria-label="${escapeAttr(opts.alt)}" `);
  assertSafeSvg(svg);
  return { svg, alt: opts.alt };
}

/**
 * One bar per datum, longest first when `sortByValue` (ties by label), else in the given order;
 * the axis starts at zero and ends at the last tick at or above the largest value.
 */
function draw(kind: ChartKind, rows: readonly BarDatum[], xTitle: string, yTitle: string, sortByValue: boolean): string {
  const bars = sortByValue ? [...rows].sort((a, b) => b.value - a.value || (a.label < b.label ? -1 : a.label > b.label ? 1 : 0)) : [...rows];
  const ticksAt = ticks(Math.max(0, ...bars.map((b) => b.value)), kind !== 'money');
  const top = ticksAt.at(-1)! || 1;
  const format = kind === 'money' ? MONEY_FORMAT : COUNT_FORMAT;
  const labelWidth = Math.min(LABEL_LIMIT, Math.max(0, ...bars.map((b) => b.label.length)) * CHAR_WIDTH);
  const left = FONT + 8 + labelWidth + 8;
  const plotHeight = bars.length * BAR_STEP;
  const width = Math.ceil(left + PLOT_WIDTH + 4 * CHAR_WIDTH);
  const height = Math.ceil(plotHeight + 8 + FONT + 6 + FONT + 8);
  const x = (v: number) => left + (Math.max(0, v) / top) * PLOT_WIDTH;
  const colours = GROUP_COLOURS[kind];
  const text = (tx: number, ty: number, anchor: string, content: string, extra = '') =>
    `<text x="${px(tx)}" y="${px(ty)}" text-anchor="${anchor}" font-size="${FONT}" fill="${INK}"${extra}>${ejs.escapeXML(content)}</text>`;
  const parts: string[] = [`<rect width="${width}" height="${height}" fill="white"/>`];
  bars.forEach((b, i) => {
    const y = i * BAR_STEP;
    const fill = colours[b.group ?? ''] ?? DEFAULT_COLOUR;
    const w = x(b.value) - left;
    if (w > 0) parts.push(`<rect x="${px(left)}" y="${px(y + (BAR_STEP * (1 - BAR_FILL)) / 2)}" width="${px(w)}" height="${px(BAR_STEP * BAR_FILL)}" fill="${fill}"/>`);
    const label = b.label.length > LABEL_CHARS ? `${b.label.slice(0, LABEL_CHARS - 1)}…` : b.label;
    parts.push(text(left - 6, y + BAR_STEP / 2 + FONT / 3, 'end', label));
  });
  const axisY = plotHeight + 0.5;
  parts.push(`<line x1="${px(left)}" y1="${px(axisY)}" x2="${px(left + PLOT_WIDTH)}" y2="${px(axisY)}" stroke="#888"/>`);
  parts.push(`<line x1="${px(left - 0.5)}" y1="0" x2="${px(left - 0.5)}" y2="${px(plotHeight)}" stroke="#888"/>`);
  for (const t of ticksAt) {
    parts.push(`<line x1="${px(x(t))}" y1="${px(axisY)}" x2="${px(x(t))}" y2="${px(axisY + 5)}" stroke="#888"/>`);
    parts.push(text(x(t), axisY + 6 + FONT, 'middle', format.format(t)));
  }
  parts.push(text(left + PLOT_WIDTH / 2, height - 6, 'middle', xTitle, ' font-weight="bold"'));
  parts.push(text(FONT, plotHeight / 2, 'middle', yTitle, ` font-weight="bold" transform="rotate(-90 ${FONT} ${px(plotHeight / 2)})"`));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${parts.join('')}</svg>`;
}

function escapeAttr(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
