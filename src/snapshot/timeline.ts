import { writeFile } from 'node:fs/promises';
import { parse, stringify } from 'lossless-json';
import type { Engine } from '../engine/engine.ts';
import type { IncidentIds } from '../scope.ts';
import { isoSql } from '../sql.ts';

/**
 * Bounds, so a snapshot of a huge export stays readable: per correlation/trace id the first and
 * the last TIMELINE_PER_ID_EDGE entries are kept (how an incident started and where it stands),
 * at most TIMELINE_LIMIT entries in all and TIMELINE_ID_LIMIT ids per list; totals say what
 * was left out.
 */
export const TIMELINE_LIMIT = 10_000;
export const TIMELINE_PER_ID_EDGE = 10;
export const TIMELINE_ID_LIMIT = 1000;

/**
 * The incident timeline: every correlation and trace id carried by a violation in scope, and
 * the rows and events that carry one of them, one entry per timestamp of the row, ordered by
 * time. Bounded: at most TIMELINE_LIMIT entries and TIMELINE_ID_LIMIT ids, with totals.
 */
export async function buildTimeline(
  engine: Engine,
  opts: { ids?: IncidentIds; perIdEdge?: number } = {},
): Promise<Record<string, unknown>> {
  const { db } = engine;
  const edge = opts.perIdEdge ?? TIMELINE_PER_ID_EDGE;
  if (opts.ids) {
    // An incident names its ids: rows carrying them belong on the timeline with or without a violation.
    await db.run(
      `CREATE OR REPLACE TEMP TABLE snap_corr AS
       SELECT g.id, count(v.invariant_id) AS violations,
              coalesce(list(DISTINCT v.invariant_id ORDER BY v.invariant_id) FILTER (WHERE v.invariant_id IS NOT NULL), []) AS invariants
       FROM (SELECT DISTINCT unnest($ids::JSON::VARCHAR[]) AS id) g LEFT JOIN violations v ON v.correlation_id = g.id GROUP BY g.id`,
      { ids: JSON.stringify(opts.ids.correlationIds) },
    );
    await db.run(
      `CREATE OR REPLACE TEMP TABLE snap_trace AS
       SELECT g.id, count(v.invariant_id) AS violations
       FROM (SELECT DISTINCT unnest($ids::JSON::VARCHAR[]) AS id) g LEFT JOIN violations v ON v.trace_id = g.id GROUP BY g.id`,
      { ids: JSON.stringify(opts.ids.traceIds) },
    );
  } else {
    await db.run(`CREATE OR REPLACE TEMP TABLE snap_corr AS
      SELECT correlation_id AS id, count(*) AS violations, list(DISTINCT invariant_id ORDER BY invariant_id) AS invariants
      FROM violations WHERE correlation_id IS NOT NULL GROUP BY correlation_id`);
    await db.run(`CREATE OR REPLACE TEMP TABLE snap_trace AS
      SELECT trace_id AS id, count(*) AS violations FROM violations WHERE trace_id IS NOT NULL GROUP BY trace_id`);
  }

  await engine.materialiseTimeline();

  const total = await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM snap_timeline`);
  const order = `ts, tbl, id NULLS LAST, event, file, line`;
  const entries = await db.all<{ j: string }>(
    `SELECT to_json({'at': ${isoSql('ts')}, 'event': event, 'table': tbl, 'id': id, 'correlation_id': correlation_id,
                     'trace_id': trace_id, 'source': file || ':' || line, 'fields': fields}) AS j
     FROM (SELECT *,
             row_number() OVER (PARTITION BY correlation_id, trace_id ORDER BY ${order}) AS first_n,
             row_number() OVER (PARTITION BY correlation_id, trace_id ORDER BY ${order.split(', ').map((c) => `${c.replace(' NULLS LAST', '')} DESC`).join(', ')}) AS last_n
           FROM snap_timeline)
     WHERE first_n <= $edge OR last_n <= $edge
     ORDER BY ${order} LIMIT $limit`,
    { limit: TIMELINE_LIMIT, edge },
  );
  const corr = await db.all<{ j: string }>(
    `SELECT to_json({'correlation_id': c.id, 'violations': c.violations, 'invariants': c.invariants,
                     'entries': count(t.ts), 'first_at': ${isoSql('min(t.ts)')}, 'last_at': ${isoSql('max(t.ts)')}}) AS j
     FROM snap_corr c LEFT JOIN snap_timeline t ON t.correlation_id = c.id
     GROUP BY c.id, c.violations, c.invariants ORDER BY c.id LIMIT $limit`,
    { limit: TIMELINE_ID_LIMIT },
  );
  const traces = await db.all<{ j: string }>(
    `SELECT to_json({'trace_id': c.id, 'violations': c.violations, 'entries': count(t.ts)}) AS j
     FROM snap_trace c LEFT JOIN snap_timeline t ON t.trace_id = c.id
     GROUP BY c.id, c.violations ORDER BY c.id LIMIT $limit`,
    { limit: TIMELINE_ID_LIMIT },
  );
  const counts = await db.one<{ c: bigint; t: bigint }>(`SELECT (SELECT count(*) FROM snap_corr) AS c, (SELECT count(*) FROM snap_trace) AS t`);
  const totalEntries = Number(total?.n ?? 0n);
  const totalCorr = Number(counts?.c ?? 0n);
  const totalTrace = Number(counts?.t ?? 0n);
  return {
    description:
      'Rows and events carrying a correlation or trace id of a violation in scope, one entry per timestamp, ordered by time; ' +
      `per (correlation_id, trace_id) the first and last ${edge} entries, at most ${TIMELINE_LIMIT} in all.`,
    limit: TIMELINE_LIMIT,
    per_id_edge: edge,
    entries_total: totalEntries,
    entries_kept: entries.length,
    truncated: totalEntries > entries.length || totalCorr > corr.length || totalTrace > traces.length,
    correlation_ids_total: totalCorr,
    trace_ids_total: totalTrace,
    correlation_ids: corr.map((r) => parse(r.j)),
    trace_ids: traces.map((r) => parse(r.j)),
    entries: entries.map((r) => parse(r.j)),
  };
}

/** Pretty JSON, except one line per timeline entry: long timelines stay compact and greppable. */
function timelineText(timeline: Record<string, unknown>): string {
  const { entries, ...head } = timeline as { entries: unknown[] };
  const top = stringify(head, null, 2)!;
  const lines = entries.map((e) => `    ${stringify(e)}`);
  return `${top.slice(0, -2)},\n  "entries": [${lines.length ? `\n${lines.join(',\n')}\n  ` : ''}]\n}\n`;
}

export async function writeTimeline(engine: Engine, file: string): Promise<void> {
  const timeline = await buildTimeline(engine);
  await writeFile(file, timelineText(timeline));
}
