import type * as vega from 'vega';
import type * as vl from 'vega-lite';

/**
 * Charts are rendered to SVG at build time (vega-lite → vega, renderer `none`) so that every
 * report is one self-contained file: no script, font or data is ever fetched by the page.
 *
 * Each chart kind is compiled and parsed once; a page only feeds its rows into a new view.
 * Labels come from data (project ids, tenant ids) and vega escapes them in the SVG it writes;
 * `assertSafeSvg` checks the result anyway before it is inlined.
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

const COMMON_CONFIG = {
  background: 'white',
  // The root <svg> gets role="img" and a text alternative; per-mark ARIA would only repeat it.
  aria: false,
  // Short on purpose: it is repeated on every label; the page's CSS sets the real font stack.
  font: 'sans-serif',
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 11, labelColor: '#333', titleColor: '#333', grid: false, tickCount: 4, labelOverlap: false },
  // Wide enough for every invariant id (node has no canvas, so vega estimates text widths generously).
  axisY: { labelLimit: 400, labelOverlap: false },
  legend: { labelFontSize: 11, titleFontSize: 11, orient: 'bottom' },
} as const;

/** Colours that stay readable in print and meet contrast on white. */
const SEVERITY_DOMAIN = ['error', 'warn', 'waived'];
const SEVERITY_RANGE = ['#b3261e', '#a05a00', '#6b6b6b'];
const AGING_DOMAIN = ['open usage', 'open payment session'];
const AGING_RANGE = ['#1f5f99', '#7a4fa3'];

function barSpec(kind: ChartKind, xTitle: string, yTitle: string, sortByValue: boolean): vl.TopLevelSpec {
  const color =
    kind === 'severity'
      ? { field: 'group', type: 'nominal' as const, title: 'severity', scale: { domain: SEVERITY_DOMAIN, range: SEVERITY_RANGE }, legend: null }
      : kind === 'aging'
        ? { field: 'group', type: 'nominal' as const, title: 'item', scale: { domain: AGING_DOMAIN, range: AGING_RANGE }, legend: null }
        : { value: '#1f5f99' };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { name: 'rows' },
    width: 360,
    height: { step: 18 },
    mark: { type: 'bar', tooltip: false, aria: false },
    encoding: {
      y: { field: 'label', type: 'nominal', title: yTitle, sort: sortByValue ? '-x' : null },
      x: { field: 'value', type: 'quantitative', title: xTitle, axis: { format: kind === 'money' ? ',.2~f' : ',d', tickMinStep: 1 } },
      color,
    },
    config: COMMON_CONFIG,
  } as vl.TopLevelSpec;
}

let libraries: Promise<[typeof vega, typeof vl]> | undefined;

/** Vega and vega-lite take about half a second to load: only a command that draws a chart pays. */
function chartLibraries(): Promise<[typeof vega, typeof vl]> {
  libraries ??= Promise.all([import('vega'), import('vega-lite')]);
  return libraries;
}

const runtimes = new Map<string, vega.Runtime>();

async function runtimeFor(kind: ChartKind, xTitle: string, yTitle: string, sortByValue: boolean): Promise<vega.Runtime> {
  const key = JSON.stringify([kind, xTitle, yTitle, sortByValue]);
  let rt = runtimes.get(key);
  if (!rt) {
    const [vega, vl] = await chartLibraries();
    rt = vega.parse(vl.compile(barSpec(kind, xTitle, yTitle, sortByValue)).spec);
    runtimes.set(key, rt);
  }
  return rt;
}

/** A loader that refuses everything: a chart must never reach a file or the network. */
const noLoader = {
  load: () => Promise.reject(new Error('report charts load nothing')),
  sanitize: () => Promise.reject(new Error('report charts load nothing')),
  http: () => Promise.reject(new Error('report charts load nothing')),
  file: () => Promise.reject(new Error('report charts load nothing')),
} as unknown as vega.Loader;

let chartCounter = 0;

const SVG_ELEMENTS = new Set(['svg', 'g', 'path', 'rect', 'line', 'text', 'tspan', 'defs', 'clippath', 'title', 'desc', 'circle', 'ellipse', 'polyline', 'polygon']);

/**
 * Rejects SVG that could run or fetch anything. Text in vega's output is entity-escaped, so
 * every `<` starts a real tag: each tag must be a known drawing element, and each attribute a
 * plain one (no `on*` handlers, no `href`, no `style`, no `url()` other than a local `#id`).
 * Vega's output always passes; a data label that somehow produced markup makes this throw
 * instead of reaching a report.
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
 * Renders a horizontal bar chart to inline SVG. Element ids (clip paths) get a per-chart prefix
 * so several charts on one page never share an id; the same chart asked for again (another
 * tenant's page) is drawn once.
 */
export async function barChart(
  kind: ChartKind,
  rows: readonly BarDatum[],
  opts: { xTitle: string; yTitle: string; alt: string; sortByValue?: boolean },
): Promise<Chart> {
  const sortByValue = opts.sortByValue ?? true;
  const data = rows.map((r) => ({ label: r.label, value: r.value, group: r.group ?? '' }));
  const key = JSON.stringify([kind, opts.xTitle, opts.yTitle, sortByValue, data]);
  let drawn = drawnCharts.get(key);
  if (drawn === undefined) {
    drawn = await draw(kind, data, opts.xTitle, opts.yTitle, sortByValue);
    if (drawnCharts.size >= DRAWN_CHARTS_KEPT) drawnCharts.delete(drawnCharts.keys().next().value!);
    drawnCharts.set(key, drawn);
  }
  const prefix = `c${++chartCounter}`;
  const svg = drawn
    .replace(/\sid="([^"]+)"/g, (_, id: string) => ` id="${prefix}-${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_, id: string) => `url(#${prefix}-${id})`)
    // The root carries a text alternative; the drawn marks are decoration for it.
    .replace(/^<svg /, `<svg role="img" aria-label="${escapeAttr(opts.alt)}" `);
  assertSafeSvg(svg);
  return { svg, alt: opts.alt };
}

/**
 * Charts already drawn, by everything that decides their pixels. Ten thousand tenant pages hold
 * far fewer distinct charts (one invariant with one violation looks the same for every tenant),
 * and vega takes milliseconds per chart, so each distinct one is drawn once per process.
 */
const drawnCharts = new Map<string, string>();
const DRAWN_CHARTS_KEPT = 2000;

async function draw(kind: ChartKind, data: readonly Record<string, unknown>[], xTitle: string, yTitle: string, sortByValue: boolean): Promise<string> {
  const [vega] = await chartLibraries();
  const view = new vega.View(await runtimeFor(kind, xTitle, yTitle, sortByValue), { renderer: 'none', loader: noLoader, logLevel: vega.None });
  try {
    view.data('rows', data);
    // Inside a role="img" everything is presentational: vega's own ARIA would only conflict.
    return slim(await view.toSVG()).replace(/\s(role|aria-[a-z]+)="[^"]*"/g, '');
  } finally {
    view.finalize();
  }
}

/**
 * Makes vega's SVG smaller without changing what it draws: inside tags only (never in label
 * text), drops class names, attributes at their default value and empty paths, and rounds
 * coordinates to 2 decimals.
 */
function slim(svg: string): string {
  return svg
    .replace(/<[^>]+>/g, (tag) =>
      tag
        .replace(/\s(class|pointer-events)="[^"]*"/g, '')
        .replace(/\s(opacity|fill-opacity|stroke-opacity)="1"/g, '')
        .replace(/\sstroke-miterlimit="4"/g, '')
        .replace(/(\d+\.\d\d)\d+/g, '$1'),
    )
    .replace(/<path d="(M0,0h0v0h0Z)?"( display="none")?\/>/g, '')
    .replace(/<g><\/g>/g, '');
}

function escapeAttr(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
