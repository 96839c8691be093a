/**
 * Observability links for the reports and the incident page: LogQL for a correlation or trace
 * id, and the configured Grafana/Loki/Tempo link templates filled with a violation's time range.
 */

// --- LogQL -------------------------------------------------------------------------------------

/** The services the runbooks search for a correlation or trace id. */
export const LOGQL_SELECTOR = '{service=~"gpuaas-(api|billing-worker|app-runtime-worker|webhook-worker)"}';

/**
 * Escapes a value for a double-quoted LogQL string (Go string-literal rules: backslash, quote
 * and control characters escaped), so a hostile id cannot end the string or the query.
 */
export function logqlString(value: string): string {
  let out = '"';
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === '"') out += '\\"';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f || (code >= 0x80 && code < 0xa0) || code === 0x2028 || code === 0x2029) {
      out += `\\u${code.toString(16).padStart(4, '0')}`;
    } else out += ch;
  }
  return `${out}"`;
}

export type IdKind = 'correlation_id' | 'trace_id';

/** The runbook's ready-to-paste query for one correlation or trace id. */
export function logqlFor(kind: IdKind, id: string): string {
  return `${LOGQL_SELECTOR} | json | ${kind}=${logqlString(id)}`;
}

export interface LinkTemplates {
  grafana?: string | undefined;
  loki?: string | undefined;
  tempo?: string | undefined;
}

export interface ObservabilityLink {
  label: string;
  href: string;
}

export interface LogQuery {
  kind: IdKind;
  id: string;
  logql: string;
  links: ObservabilityLink[];
  /** The window to search: around the violation's own timestamps (see violationTimeRange). */
  range: TimeRange | null;
}

/** A search window, ISO-8601 UTC instants. */
export interface TimeRange {
  from: string;
  to: string;
}

const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?Z$/;
const HOUR_MS = 3_600_000;

/**
 * The time range a violation's logs are searched in: from an hour before its earliest timestamp
 * to an hour after its latest (start/end of a usage row, creation of an entry, ... as its detail
 * gives them); without any, the 24 hours before the audit time. Log stores search a bounded
 * window, and a query without one searches only the last hour or so.
 */
export function violationTimeRange(detail: unknown, asOf: string): TimeRange {
  const times: number[] = [];
  const visit = (v: unknown): void => {
    if (typeof v === 'string' && ISO_INSTANT.test(v)) {
      const t = Date.parse(v);
      if (Number.isFinite(t)) times.push(t);
    } else if (Array.isArray(v)) v.forEach(visit);
    else if (v !== null && typeof v === 'object') Object.values(v).forEach(visit);
  };
  visit(detail);
  const end = Date.parse(asOf);
  const [from, to] = times.length > 0 ? [Math.min(...times) - HOUR_MS, Math.max(...times) + HOUR_MS] : [end - 24 * HOUR_MS, end];
  return { from: new Date(from).toISOString().replace('.000Z', 'Z'), to: new Date(to).toISOString().replace('.000Z', 'Z') };
}

const LINK_LABELS: ReadonlyArray<[keyof LinkTemplates, string]> = [
  ['grafana', 'Grafana'],
  ['loki', 'Loki'],
  ['tempo', 'Tempo'],
];

/**
 * Fills a URL template. Every `{correlation_id}`, `{trace_id}` and `{query}` is replaced by the
 * URL-encoded value; a template that needs a value this violation lacks gives no link, and
 * only http(s) URLs are ever produced (a template is config, but a link is still a link).
 */
export function fillLinkTemplate(
  template: string,
  values: Partial<Record<'correlation_id' | 'trace_id' | 'query', string | null>>,
  range?: TimeRange | null,
): string | null {
  let missing = false;
  const ms = range ? { from: String(Date.parse(range.from)), to: String(Date.parse(range.to)) } : null;
  // {from}/{to} and {from_ms}/{to_ms} are epoch milliseconds (Grafana, Loki); {from_iso}/{to_iso} ISO-8601 (Tempo).
  const withRange = template.replace(/\{(from|to)(_ms|_iso)?\}/g, (_, name: 'from' | 'to', unit: string | undefined) => {
    if (!ms || !range) {
      missing = true;
      return '';
    }
    return unit === '_iso' ? encodeURIComponent(range[name]) : ms[name];
  });
  const href = withRange.replace(/\{(correlation_id|trace_id|query)\}/g, (_, name: 'correlation_id' | 'trace_id' | 'query') => {
    const v = values[name];
    if (v === null || v === undefined || v === '') {
      missing = true;
      return '';
    }
    return encodeURIComponent(v);
  });
  if (missing) return null;
  try {
    const url = new URL(href);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
    // A template without {from}/{to} still gets the range, as the from/to (epoch ms) parameters
    // Grafana reads.
    if (ms && !/\{(from|to)(_ms|_iso)?\}/.test(template)) {
      // Appended as text: re-serialising searchParams would re-encode the query the template built.
      const [base, hash] = [url.href.split('#')[0]!, url.hash];
      return `${base}${url.search ? '&' : '?'}from=${ms.from}&to=${ms.to}${hash}`;
    }
    return url.href;
  } catch {
    return null;
  }
}

/** The LogQL queries (and configured links) for a violation's correlation and trace ids. */
export function logQueries(
  ids: { correlation_id: string | null; trace_id: string | null },
  templates: LinkTemplates,
  range: TimeRange | null = null,
): LogQuery[] {
  const out: LogQuery[] = [];
  const seen = new Set<string>();
  for (const kind of ['correlation_id', 'trace_id'] as const) {
    const id = ids[kind];
    if (id === null || id === '') continue;
    const logql = logqlFor(kind, id);
    const links: ObservabilityLink[] = [];
    for (const [name, label] of LINK_LABELS) {
      const template = templates[name];
      if (!template) continue;
      // A template naming the *other* id still works when the violation has it; the query is
      // always the one for this id, so each id gets its own link.
      const href = fillLinkTemplate(template, { correlation_id: ids.correlation_id, trace_id: ids.trace_id, query: logql }, range);
      if (href === null || seen.has(href)) continue;
      if (!template.includes('{query}') && !template.includes(`{${kind}}`)) continue;
      seen.add(href);
      links.push({ label, href });
    }
    out.push({ kind, id, logql, links, range });
  }
  return out;
}
