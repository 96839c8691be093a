import { formatInstant, truncate } from '../../findings/format.ts';
import * as data from '../data.ts';
import { agingView } from '../entity-views.ts';
import { AGING_LEGEND, agingChart, moneyByKeyCharts, SEVERITY_LEGEND, severityChart, type FigureView } from '../figures.ts';
import { displayId, helpers, reportPage, template } from '../page.ts';
import { safeFileName } from '../paths.ts';
import { cards, DETAIL_CHARS, groupBy, IMPACT_LIMIT, impactView, linksFrom, sections } from '../views.ts';
import type { Limits, RenderInput, Writer } from './context.ts';

/** The tenant pages of one batch of tenants, built from one round of queries. */
export async function renderOrgBatch(input: RenderInput, env: data.Environment, w: Writer, batch: number, o: Limits): Promise<void> {
  const { findings, config } = input;
  const { db } = input.engine;
  const links = linksFrom('../');
  const ids = await data.batchIds(db, 'org', batch);
  const totals = groupBy(await data.invariantTotals(db, 'org', batch), (r) => r.entity);
  const rows = groupBy(await data.violationRows(db, 'org', batch, o.maxRows, DETAIL_CHARS), (r) => r.entity);
  const split = groupBy(await data.moneySplit(db, 'org', batch), (r) => r.entity);
  const projects = await data.impact(db, 'org', batch, 'project_id', IMPACT_LIMIT);
  const projectRows = groupBy(projects.rows, (r) => r.entity);
  const apps = await data.impact(db, 'org', batch, 'app_instance_id', IMPACT_LIMIT);
  const appRows = groupBy(apps.rows, (r) => r.entity);
  const aging = groupBy(await data.aging(db, batch), (r) => r.org_id);

  await Promise.all(
    ids.map(async (id) => {
      const t = totals.get(id) ?? [];
      const agingRows = agingView(aging.get(id) ?? []);
      const charts: FigureView[] = [];
      const sev = await severityChart(t, `Violations per invariant for tenant ${id}.`);
      if (sev) charts.push({ chart: sev, caption: 'Violations per invariant.', legend: SEVERITY_LEGEND });
      charts.push(...(await moneyByKeyCharts(projectRows.get(id) ?? [], 'project')));
      const ag = await agingChart(aging.get(id) ?? [], id);
      if (ag) charts.push({ chart: ag, caption: 'Open items by age (count).', legend: AGING_LEGEND });
      const body = template('org')({
        h: helpers,
        id,
        root: '../',
        asOf: formatInstant(env.asOf),
        cards: cards(t, split.get(id) ?? []),
        charts,
        sections: sections(t, rows.get(id) ?? [], links, config.links, 'org_id', env.asOf),
        projects: impactView(projectRows.get(id) ?? [], projects.keys.get(id), 'project'),
        apps: impactView(appRows.get(id) ?? [], apps.keys.get(id), 'app instance', links.app),
        aging: agingRows,
      });
      await w.write(
        ['orgs', `${safeFileName(id)}.html`],
        reportPage({
          title: `Tenant ${truncate(displayId(id), 80)} — billing drift`,
          heading: `Tenant ${displayId(id)}`,
          fullId: id,
          crumbs: [{ label: 'Drift report', href: '../index.html' }, { label: 'Tenant' }],
          root: '../',
          body,
          script: false,
          findings,
        }),
      );
    }),
  );
}
