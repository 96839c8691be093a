import type { Db } from '../db.ts';
import type { ExportCounts } from '../engine/engine.ts';
import { CATALOG } from '../catalog/index.ts';
import { BLAST_RADIUS_THRESHOLDS, type BlastRadius, type BlastRadiusClass, type FollowUpGroup } from './types.ts';
import { OWNING_LAYERS, type OwningLayer } from '../contract/violations.ts';
import { parseExact } from '../json.ts';

/**
 * What the runbooks ask first: how far the drift spreads. The verdict reads the open (not
 * waived) violations that name a tenant; rows that could not be read name nobody and are
 * counted apart. Rules, first match wins:
 *
 * - `none`: no open violation at all; `unattributed`: only violations naming no tenant.
 * - `global`: at least GLOBAL_MIN_TENANTS tenants and at least GLOBAL_TENANT_SHARE of the
 *   tenants in the exports; or a worker-wide pattern: `usage.billing_lag` on at least
 *   WORKER_LAG_SHARE of all open usage rows (at least WORKER_MIN_ROWS rows, at least two
 *   tenants), i.e. the billing worker itself is behind, not one tenant's meter.
 * - `several_tenants`: two or more tenants.
 * - `tenant`: one tenant, but more than one project, or a violation naming no project
 *   (payments, balances and tenant-wide ledger entries belong to the tenant, not a project).
 * - `project`: one project, but more than one app instance, or a violation naming none.
 * - `app_instance`: every violation names the same app instance.
 */


/** The blast radius of the open violations in `table` (a violations-shaped table), computed in DuckDB. */
export async function blastRadius(db: Db, exports: ExportCounts, table = 'violations'): Promise<BlastRadius> {
  const r = (await db.one<Record<string, bigint>>(
    `WITH v AS (SELECT * FROM ${table} WHERE NOT waived), a AS (SELECT * FROM v WHERE org_id IS NOT NULL)
     SELECT (SELECT count(*) FROM a) AS violations,
            (SELECT count(*) FROM v WHERE org_id IS NULL) AS unattributed_violations,
            (SELECT count(DISTINCT org_id) FROM a) AS tenants_affected,
            $tenants::BIGINT AS tenants_in_exports,
            (SELECT count(DISTINCT (org_id, project_id)) FROM a WHERE project_id IS NOT NULL) AS projects_affected,
            (SELECT count(*) FROM a WHERE project_id IS NULL) AS violations_without_project,
            (SELECT count(DISTINCT app_instance_id) FROM a WHERE app_instance_id IS NOT NULL) AS app_instances_affected,
            (SELECT count(*) FROM a WHERE app_instance_id IS NULL) AS violations_without_app_instance,
            (SELECT count(DISTINCT (org_id, requested_by_user_id)) FROM a WHERE requested_by_user_id IS NOT NULL) AS users_affected,
            $open::BIGINT AS open_usage_rows,
            (SELECT count(DISTINCT usage_record_id) FROM a WHERE invariant_id = 'usage.billing_lag') AS lagging_open_usage_rows,
            (SELECT count(DISTINCT org_id) FROM a WHERE invariant_id = 'usage.billing_lag') AS lagging_tenants`,
    { tenants: exports.tenants_in_exports, open: exports.open_usage_rows },
  ))!;
  const n = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Number(v)])) as Record<string, number>;
  const t = BLAST_RADIUS_THRESHOLDS;
  const lagShare = n.open_usage_rows! > 0 ? n.lagging_open_usage_rows! / n.open_usage_rows! : 0;
  const tenantShare = n.tenants_in_exports! > 0 ? n.tenants_affected! / n.tenants_in_exports! : 0;
  const pct = (x: number) => `${Math.round(x * 100)}%`;
  let cls: BlastRadiusClass;
  let reason: string;
  if (n.violations === 0) {
    cls = n.unattributed_violations! > 0 ? 'unattributed' : 'none';
    reason = cls === 'none' ? 'no open violation' : `${n.unattributed_violations} open violation(s), none naming a tenant (rows that could not be read or attributed)`;
  } else if (n.tenants_affected! >= t.GLOBAL_MIN_TENANTS && tenantShare >= t.GLOBAL_TENANT_SHARE) {
    cls = 'global';
    reason = `${n.tenants_affected} of ${n.tenants_in_exports} tenants (${pct(tenantShare)}) have violations`;
  } else if (n.lagging_open_usage_rows! >= t.WORKER_MIN_ROWS && lagShare >= t.WORKER_LAG_SHARE && n.lagging_tenants! >= 2) {
    cls = 'global';
    reason = `billing lags on ${n.lagging_open_usage_rows} of ${n.open_usage_rows} open usage rows (${pct(lagShare)}) across ${n.lagging_tenants} tenants: the billing worker, not one meter`;
  } else if (n.tenants_affected! >= 2) {
    cls = 'several_tenants';
    reason = `${n.tenants_affected} of ${n.tenants_in_exports} tenants have violations`;
  } else if (n.projects_affected! >= 2 || n.violations_without_project! > 0) {
    cls = 'tenant';
    reason =
      n.projects_affected! >= 2
        ? `one tenant, ${n.projects_affected} projects`
        : `one tenant; ${n.violations_without_project} violation(s) are tenant-wide (no project: payments, balances, credits)`;
  } else if (n.app_instances_affected! >= 2 || n.violations_without_app_instance! > 0) {
    cls = 'project';
    reason =
      n.app_instances_affected! >= 2
        ? `one project, ${n.app_instances_affected} app instances`
        : `one project; ${n.violations_without_app_instance} violation(s) name no app instance`;
  } else {
    cls = 'app_instance';
    reason = `every one of ${n.violations} violation(s) is on one app instance`;
  }
  return { class: cls, reason, ...(n as Omit<BlastRadius, 'class' | 'reason' | 'thresholds'>), thresholds: t };
}

export const BLAST_RADIUS_LABEL: Record<BlastRadiusClass, string> = {
  none: 'nothing affected',
  unattributed: 'unattributed rows only',
  app_instance: 'one app instance',
  project: 'one project',
  tenant: 'one tenant',
  several_tenants: 'several tenants',
  global: 'global',
};

// --- follow-up tasks --------------------------------------------------------------------------

/** Ids listed per task: enough to hand over; violations.csv (owning_layer column) has them all. */
export const FOLLOW_UP_ID_LIMIT = 20;



/** Open violations grouped by owning layer, then invariant, with the ids to hand over. */
export async function followUps(db: Db, table = 'violations'): Promise<FollowUpGroup[]> {
  const rows = await db.all<{ layer: OwningLayer; invariant_id: string; entity_type: string; n: bigint; ids: string; corr: string }>(
    `SELECT owning_layer AS layer, invariant_id, min(entity_type) AS entity_type, count(*) AS n,
            to_json(list(entity_id ORDER BY entity_id)[1:$limit])::VARCHAR AS ids,
            to_json(coalesce(list(DISTINCT correlation_id ORDER BY correlation_id) FILTER (WHERE correlation_id IS NOT NULL), [])[1:$limit])::VARCHAR AS corr
     FROM ${table} WHERE NOT waived AND owning_layer IS NOT NULL
     GROUP BY owning_layer, invariant_id`,
    { limit: FOLLOW_UP_ID_LIMIT },
  );
  const order = Object.keys(OWNING_LAYERS) as OwningLayer[];
  const titles = new Map(CATALOG.map((i) => [i.id, i.title]));
  const catalogOrder = new Map(CATALOG.map((i, k) => [i.id, k]));
  const groups: FollowUpGroup[] = [];
  for (const layer of order) {
    const mine = rows.filter((r) => r.layer === layer).sort((a, b) => (catalogOrder.get(a.invariant_id) ?? 0) - (catalogOrder.get(b.invariant_id) ?? 0));
    if (mine.length === 0) continue;
    const tasks = mine.map((r) => {
      const ids = parseExact(r.ids) as string[];
      return {
        invariant_id: r.invariant_id,
        title: titles.get(r.invariant_id) ?? r.invariant_id,
        entity_type: r.entity_type,
        violations: Number(r.n),
        ids,
        more_ids: Number(r.n) - ids.length,
        correlation_ids: parseExact(r.corr) as string[],
      };
    });
    groups.push({ layer, description: OWNING_LAYERS[layer], violations: tasks.reduce((s, t) => s + t.violations, 0), tasks });
  }
  return groups;
}

// --- Markdown (summary.md, the incident page's twin) ------------------------------------------

function mdText(text: string): string {
  return text.replace(/[\\`*_[\]<>|#]/g, (c) => `\\${c}`).replaceAll('\n', ' ');
}

function mdCode(text: string): string {
  return '`' + text.replaceAll('`', "'").replaceAll('\n', ' ') + '`';
}

/** The blast radius as the first lines of a Markdown page. */
export function blastRadiusMarkdown(b: BlastRadius): string[] {
  return [
    `**Blast radius: ${BLAST_RADIUS_LABEL[b.class]}** (${b.class}): ${mdText(b.reason)}.`,
    '',
    `Tenants ${b.tenants_affected} of ${b.tenants_in_exports} · projects ${b.projects_affected} · app instances ${b.app_instances_affected} · ` +
      `users ${b.users_affected} · open violations naming a tenant ${b.violations} (plus ${b.unattributed_violations} naming none) · ` +
      `billing lag on ${b.lagging_open_usage_rows} of ${b.open_usage_rows} open usage rows`,
    '',
  ];
}

/** Follow-up tasks per owning layer, with the ids to hand over. */
export function followUpsMarkdown(groups: readonly FollowUpGroup[], heading = '##'): string[] {
  const lines = [`${heading} Follow-up tasks by owning layer`, ''];
  if (groups.length === 0) return [...lines, 'None: no open violation.', ''];
  for (const g of groups) {
    lines.push(`${heading}# ${mdText(g.description)}`, '', `${g.violations} open violation(s); layer \`${g.layer}\`.`, '');
    for (const t of g.tasks) {
      const ids = t.ids.map(mdCode).join(', ') + (t.more_ids > 0 ? ` and ${t.more_ids} more (violations.csv, owning_layer = ${g.layer})` : '');
      const corr = t.correlation_ids.length ? `; correlation ids ${t.correlation_ids.map(mdCode).join(', ')}` : '';
      lines.push(`- [ ] ${mdText(t.title)} (\`${t.invariant_id}\`, ${t.violations} ${t.entity_type.replaceAll('_', ' ')}(s)): ${ids}${corr}`);
    }
    lines.push('');
  }
  return lines;
}
