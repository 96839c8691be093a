import { mkdir, writeFile } from 'node:fs/promises';
import { LosslessNumber, stringify } from 'lossless-json';
import { auditExports, exitCodeFor } from '../audit.ts';
import { toViolation } from '../findings/io.ts';
import { customerItems, customerSentence } from '../outputs/customer.ts';
import type { BlastRadius, Findings, FollowUpGroup, Violation } from '../findings/types.ts';
import { writeAuditOutputs } from '../outputs/files.ts';
import { fillLinkTemplate, logqlFor, type IdKind, type LinkTemplates, type ObservabilityLink } from '../report/format.ts';
import { detailLine, formatInstant, formatMoney, truncate } from '../findings/format.ts';
import { resolveInside } from '../report/paths.ts';
import { renderStandalonePage } from '../report/page.ts';
import type { IncidentIds } from '../scope.ts';
import { buildTimeline, TIMELINE_LIMIT } from '../snapshot/timeline.ts';
import { BLAST_RADIUS_LABEL, blastRadiusMarkdown, followUpsMarkdown } from '../findings/triage.ts';

/** Logs are searched this far either side of the first and last row of the incident. */
export const LOG_RANGE_PADDING_MINUTES = 15;
/** Violations listed on the page (violations.csv beside it has all of them). */
export const INCIDENT_VIOLATION_LIMIT = 500;
const DETAIL_CHARS = 400;

export interface IncidentOptions {
  exportsDir: string;
  outDir: string;
  correlationIds: readonly string[];
  traceIds: readonly string[];
  configPath?: string;
  asOf?: string;
}

interface TimelineRow {
  at: string;
  event: string;
  table: string;
  id: string | null;
  correlation_id: string | null;
  trace_id: string | null;
  source: string;
  fields: Array<{ name: string; value: string }>;
}

interface LogView {
  kind: IdKind;
  id: string;
  logql: string;
  /** The same query for logcli, with the incident's time range. */
  logcli: string | null;
  links: ObservabilityLink[];
}

export interface IncidentModel {
  correlationIds: string[];
  traceIds: string[];
  asOf: string;
  firstAt: string | null;
  lastAt: string | null;
  range: { from: string; to: string } | null;
  timeline: TimelineRow[];
  timelineTotal: number;
  timelineTruncated: boolean;
  violations: Array<Violation & { detailText: string; money: string }>;
  violationsTotal: number;
  unreadableRows: number;
  blast: BlastRadius & { label: string };
  /** Each money movement once (CONTRACT.md §3), error and warning money apart: the findings' totals. */
  money: { error: Record<string, bigint>; warn: Record<string, bigint> };
  followUps: FollowUpGroup[];
  logs: LogView[];
  customers: Array<{ org: string; lines: Array<{ direction: string; text: string }>; more: number }>;
}

export interface IncidentResult {
  files: string[];
  findings: Findings;
  model: IncidentModel;
  exitCode: 0 | 1 | 2;
}

const MONEY_FIELDS: Record<string, string> = { amount_minor: 'amount', accrued_cost_minor: 'accrued cost' };

function fieldText(value: unknown): string {
  if (value instanceof LosslessNumber) return value.toString();
  if (typeof value === 'string') return value;
  return stringify(value) ?? String(value);
}

/** A timeline entry's fields for a person: money in money format, nulls left out. */
function timelineFields(fields: Record<string, unknown>): TimelineRow['fields'] {
  const currency = typeof fields['currency'] === 'string' ? fields['currency'] : null;
  const out: TimelineRow['fields'] = [];
  for (const [name, value] of Object.entries(fields)) {
    if (value === null || value === undefined || name === 'currency') continue;
    if (MONEY_FIELDS[name] && value instanceof LosslessNumber && /^-?\d+$/.test(value.toString())) {
      out.push({ name: MONEY_FIELDS[name]!, value: formatMoney(BigInt(value.toString()), currency) });
    } else out.push({ name, value: fieldText(value) });
  }
  return out;
}

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

function padded(iso: string, minutes: number): string {
  return new Date(Date.parse(iso) + minutes * 60_000).toISOString().replace('.000Z', 'Z');
}

function logViews(ids: IncidentIds, range: IncidentModel['range'], templates: LinkTemplates): LogView[] {
  const out: LogView[] = [];
  const names: Array<[keyof LinkTemplates, string]> = [['grafana', 'Grafana'], ['loki', 'Loki'], ['tempo', 'Tempo']];
  for (const [kind, list] of [['correlation_id', ids.correlationIds], ['trace_id', ids.traceIds]] as const) {
    for (const id of list) {
      const logql = logqlFor(kind, id);
      const values = { [kind]: id, query: logql };
      const links: ObservabilityLink[] = [];
      for (const [name, label] of names) {
        const template = templates[name];
        if (!template || !(template.includes('{query}') || template.includes(`{${kind}}`))) continue;
        const href = fillLinkTemplate(template, values, range);
        if (href !== null) links.push({ label, href });
      }
      out.push({ kind, id, logql, logcli: range ? `logcli query --from=${range.from} --to=${range.to} ${shellQuote(logql)}` : null, links });
    }
  }
  return out;
}

/**
 * `recon incident`: audits the exports, keeps the violations of one incident (its correlation
 * and trace ids), and writes, beside the usual findings of that narrowed audit, one
 * self-contained page `incident.html` and its Markdown twin `incident.md` for the ticket:
 * timeline, violations, blast radius, money at stake (each movement once), logs to search
 * and follow-up tasks, and what to tell each customer.
 */
export async function runIncident(opts: IncidentOptions): Promise<IncidentResult> {
  const ids: IncidentIds = { correlationIds: opts.correlationIds, traceIds: opts.traceIds };
  const run = await auditExports({
    exportsDir: opts.exportsDir,
    ...(opts.configPath !== undefined ? { configPath: opts.configPath } : {}),
    ...(opts.asOf !== undefined ? { asOf: opts.asOf } : {}),
    incident: ids,
    command: 'incident',
  });
  try {
    const { db, findings } = run;
    const files = await writeAuditOutputs(run, opts.outDir);
    const timeline = (await buildTimeline(run.engine, { ids, perIdEdge: TIMELINE_LIMIT })) as {
      entries: Array<Omit<TimelineRow, 'fields'> & { fields: Record<string, unknown> }>;
      entries_total: number;
      truncated: boolean;
    };
    const span = await db.one<{ first: string | null; last: string | null }>(
      `SELECT strftime(min(ts), '%Y-%m-%dT%H:%M:%SZ') AS first, strftime(max(ts), '%Y-%m-%dT%H:%M:%SZ') AS last FROM snap_timeline`,
    );
    const firstAt = span?.first ?? null;
    const lastAt = span?.last ?? null;
    const range = firstAt && lastAt ? { from: padded(firstAt, -LOG_RANGE_PADDING_MINUTES), to: padded(lastAt, LOG_RANGE_PADDING_MINUTES) } : null;

    const violations = (
      await db.all(`SELECT * FROM violations WHERE NOT waived ORDER BY severity, invariant_id, entity_id LIMIT $n`, { n: INCIDENT_VIOLATION_LIMIT })
    ).map(toViolation);
    const counts = await db.one<{ n: bigint; unreadable: bigint }>(
      `SELECT count(*) FILTER (WHERE NOT waived) AS n, count(*) FILTER (WHERE entity_type = 'source_row') AS unreadable FROM violations`,
    );
    const customers = await customerItems(db, { engine: run.engine });
    const byOrg = new Map<string, IncidentModel['customers'][number]>();
    for (const item of customers.items) {
      const c = byOrg.get(item.org_id) ?? { org: item.org_id, lines: [], more: customers.more.get(item.org_id) ?? 0 };
      const s = customerSentence(item);
      c.lines.push({ direction: s.direction, text: s.text });
      byOrg.set(item.org_id, c);
    }

    const model: IncidentModel = {
      correlationIds: [...run.scope.correlation_ids],
      traceIds: [...run.scope.trace_ids],
      asOf: findings.as_of,
      firstAt,
      lastAt,
      range,
      timeline: timeline.entries.map((e) => ({ ...e, fields: timelineFields(e.fields) })),
      timelineTotal: timeline.entries_total,
      timelineTruncated: timeline.truncated,
      violations: violations.map((v) => ({
        ...v,
        money: formatMoney(v.amount_minor, v.currency),
        detailText: truncate(detailLine(v.detail, v.currency), DETAIL_CHARS),
      })),
      violationsTotal: Number(counts?.n ?? 0n),
      unreadableRows: Number(counts?.unreadable ?? 0n),
      blast: { ...findings.blast_radius, label: BLAST_RADIUS_LABEL[findings.blast_radius.class] },
      money: { error: findings.totals.error_amount_minor_by_currency, warn: findings.totals.warn_amount_minor_by_currency },
      followUps: findings.follow_ups,
      logs: logViews(ids, range, run.config.config.links),
      customers: [...byOrg.values()],
    };

    await mkdir(opts.outDir, { recursive: true });
    const htmlFile = resolveInside(opts.outDir, 'incident.html');
    const mdFile = resolveInside(opts.outDir, 'incident.md');
    const title = incidentTitle(model);
    await writeFile(htmlFile, renderStandalonePage('incident', { m: model, instant: formatInstant }, { title, heading: title, findings }));
    await writeFile(mdFile, incidentMarkdown(model));
    return { files: [...files, htmlFile, mdFile], findings, model, exitCode: exitCodeFor(findings) };
  } finally {
    run.db.close();
  }
}

function incidentTitle(m: IncidentModel): string {
  const ids = [...m.correlationIds.map((c) => `correlation ${c}`), ...m.traceIds.map((t) => `trace ${t}`)];
  return `Incident ${truncate(ids.join(', '), 120)}`;
}

function md(text: string): string {
  return text.replace(/[\\`*[\]<>|#]/g, (c) => `\\${c}`).replaceAll('\n', ' ');
}

function mdCell(text: string): string {
  return md(text).replaceAll('|', '\\|');
}

function mdMoney(money: Record<string, bigint>): string {
  const parts = Object.entries(money).map(([c, a]) => formatMoney(a, c));
  return parts.length ? parts.join(', ') : 'none';
}

/** The Markdown twin of the incident page, for the ticket. */
export function incidentMarkdown(m: IncidentModel): string {
  const L: string[] = [`# ${md(incidentTitle(m))}`, ''];
  L.push(
    `Audit as of ${formatInstant(m.asOf)}; rows from ${formatInstant(m.firstAt)} to ${formatInstant(m.lastAt)}` +
      (m.range ? ` (logs searched ${formatInstant(m.range.from)} – ${formatInstant(m.range.to)})` : '') +
      '.',
    '',
  );
  L.push(...blastRadiusMarkdown(m.blast));
  L.push('## Money at stake', '', 'Each usage record, payment session and ledger entry counted once, at the largest amount any check gives it.', '');
  L.push(`- errors: ${mdMoney(m.money.error)}`, `- warnings: ${mdMoney(m.money.warn)}`, '');
  L.push(`## Timeline (${m.timelineTotal} entries${m.timelineTruncated ? `, first ${m.timeline.length} shown` : ''})`, '');
  if (m.timeline.length === 0) L.push('No row carries these ids.', '');
  else {
    L.push('| time | event | row | details | source |', '|---|---|---|---|---|');
    for (const e of m.timeline) {
      L.push(
        `| ${formatInstant(e.at)} | ${mdCell(e.event)} | ${mdCell(`${e.table} ${e.id ?? '—'}`)} | ${mdCell(e.fields.map((f) => `${f.name} ${f.value}`).join('; '))} | ${mdCell(e.source)} |`,
      );
    }
    L.push('');
  }
  L.push(`## Violations (${m.violationsTotal})`, '');
  if (m.unreadableRows > 0) L.push(`${m.unreadableRows} row(s) of the exports could not be read; they may belong to this incident and are listed too.`, '');
  if (m.violations.length === 0) L.push('None: every row of this incident reconciles.', '');
  else {
    L.push('| invariant | severity | entity | money at stake | owning layer | detail |', '|---|---|---|---|---|---|');
    for (const v of m.violations) {
      L.push(`| \`${v.invariant_id}\` | ${v.severity} | ${mdCell(`${v.entity_type} ${v.entity_id}`)} | ${v.money} | ${v.owning_layer ?? '—'} | ${mdCell(v.detailText)} |`);
    }
    if (m.violationsTotal > m.violations.length) L.push('', `…${m.violationsTotal - m.violations.length} more in violations.csv.`);
    L.push('');
  }
  L.push('## Logs and traces', '');
  for (const l of m.logs) {
    L.push(`${l.kind.replace('_', ' ')} \`${l.id.replaceAll('`', "'")}\`:`, '', '```logql', l.logql, '```', '');
    if (l.logcli) L.push('```sh', l.logcli, '```', '');
    for (const link of l.links) L.push(`- [${link.label}](${link.href})`);
    if (l.links.length) L.push('');
  }
  L.push(...followUpsMarkdown(m.followUps));
  L.push('## What to tell the customer', '');
  if (m.customers.length === 0) L.push('Nothing was charged or credited wrongly.', '');
  for (const c of m.customers) {
    L.push(`### ${md(c.org)}`, '', ...c.lines.map((l) => `- ${md(l.text)}`));
    if (c.more) L.push(`- …and ${c.more} more item(s)`);
    L.push('');
  }
  return L.join('\n');
}

