import { truncate } from '../../findings/format.ts';
import * as data from '../data.ts';
import { attributionView, backingView, usageView } from '../entity-views.ts';
import { SEVERITY_LEGEND, severityChart, type FigureView } from '../figures.ts';
import { displayId, helpers, reportPage, template } from '../page.ts';
import { safeFileName } from '../paths.ts';
import { cards, DETAIL_CHARS, groupBy, IMPACT_LIMIT, impactView, linksFrom, sections } from '../views.ts';
import type { Limits, RenderInput, Writer } from './context.ts';

/** The app-instance pages of one batch of app instances, built from one round of queries. */
export async function renderAppBatch(input: RenderInput, env: data.Environment, w: Writer, batch: number, o: Limits): Promise<void> {
  const { findings, config } = input;
  const { db } = input.engine;
  const links = linksFrom('../');
  const ids = await data.batchIds(db, 'app', batch);
  const totals = groupBy(await data.invariantTotals(db, 'app', batch), (r) => r.entity);
  const rows = groupBy(await data.violationRows(db, 'app', batch, o.maxRows, DETAIL_CHARS), (r) => r.entity);
  const split = groupBy(await data.moneySplit(db, 'app', batch), (r) => r.entity);
  const orgs = await data.impact(db, 'app', batch, 'org_id', IMPACT_LIMIT);
  const orgRows = groupBy(orgs.rows, (r) => r.entity);
  const attribution = await data.appAttribution(db, env, batch);
  const attributionBy = groupBy(attribution, (r) => r.app_instance_id);
  const orgPages = await data.withPages(db, 'org', [...new Set(attribution.map((a) => a.org_id).filter((x): x is string => x !== null))]);
  const usage = groupBy(await data.usageSplit(db, env, batch), (r) => r.app_instance_id);
  const backing = await data.ledgerBacking(db, env, batch, o.maxRows);
  const backingRows = groupBy(backing.rows, (r) => r.app_instance_id);
  const backingSummary = new Map(backing.summary.map((s) => [s.app_instance_id, s]));

  await Promise.all(
    ids.map(async (id) => {
      const t = totals.get(id) ?? [];
      const attr = attributionBy.get(id) ?? [];
      const charts: FigureView[] = [];
      const sev = await severityChart(t, `Violations per invariant for app instance ${id}.`);
      if (sev) charts.push({ chart: sev, caption: 'Violations per invariant.', legend: SEVERITY_LEGEND });
      const summary = backingSummary.get(id) ?? { app_instance_id: id, rows: 0, open: 0, backed: 0, unbacked: 0 };
      const body = template('app-instance')({
        h: helpers,
        id,
        root: '../',
        cards: cards(t, split.get(id) ?? []),
        hasAppInstances: env.engine.tables.has('app_instances'),
        hasUsage: env.engine.tables.has('usage_records'),
        copies: attr[0]?.copies ?? 0,
        attribution: attributionView(attr, orgPages, links, config.links),
        orgs: impactView(orgRows.get(id) ?? [], orgs.keys.get(id), 'tenant', links.org),
        usage: usageView(usage.get(id) ?? []),
        charts,
        backing: backingView(summary, backingRows.get(id) ?? []),
        sections: sections(t, rows.get(id) ?? [], links, config.links, 'app_instance_id', env.asOf),
      });
      await w.write(
        ['app-instances', `${safeFileName(id)}.html`],
        reportPage({
          title: `App instance ${truncate(displayId(id), 80)} — billing drift`,
          heading: `App instance ${displayId(id)}`,
          fullId: id,
          crumbs: [{ label: 'Drift report', href: '../index.html' }, { label: 'App instance' }],
          root: '../',
          body,
          script: false,
          findings,
        }),
      );
    }),
  );
}
