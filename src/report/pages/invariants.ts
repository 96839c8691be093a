import { CATALOG } from '../../catalog/index.ts';
import { formatMoney } from '../../findings/format.ts';
import * as data from '../data.ts';
import { helpers, reportPage, template } from '../page.ts';
import { safeFileName } from '../paths.ts';
import { anchorFor, DETAIL_CHARS, filterText, linksFrom, sections } from '../views.ts';
import type { RenderInput, Writer } from './context.ts';
import type { Overview } from './overview.ts';

/** The invariant pages, and the page of the violations that name no tenant. */

/** Violations listed on the page of violations without a tenant. */
const NO_TENANT_ROWS = 500;

/** One page per invariant with violations: every tenant it affects. */
export async function renderInvariantPages(input: RenderInput, w: Writer, overview: Overview): Promise<void> {
  const { findings } = input;
  const sub = linksFrom('../');
  for (const r of overview.failing) {
    const inv = CATALOG.find((i) => i.id === r.id);
    const tenants = overview.affected.get(r.id) ?? [];
    const rows = tenants.map((x) => ({
      org: x.org_id,
      href: x.org_id === null ? '../no-tenant.html' : `${sub.org(x.org_id)}#${anchorFor(r.id)}`,
      open: x.open,
      waived: x.waived,
      money: x.money,
      filterText: filterText([x.org_id ?? 'no tenant', ...x.money.map((m) => formatMoney(m.amount, m.currency))]),
    }));
    const invBody = template('invariant')({
      h: helpers,
      r,
      explanation: inv?.explanation ?? '',
      runbook: inv?.runbook ?? '',
      money: Object.entries(r.amount_minor_by_currency).map(([currency, amount]) => ({ currency, amount })),
      rows,
      total: tenants[0]?.tenants ?? 0,
    });
    await w.write(
      ['invariants', `${safeFileName(r.id)}.html`],
      reportPage({
        title: `${r.id} — billing drift`,
        heading: `Invariant ${r.id}`,
        crumbs: [{ label: 'Drift report', href: '../index.html' }, { label: 'Invariant' }],
        root: '../',
        body: invBody,
        script: true,
        findings,
      }),
    );
  }
}

/** The violations that name no tenant, which no tenant page shows; no page when there are none. */
export async function renderNoTenantPage(input: RenderInput, env: data.Environment, w: Writer, unattributed: data.Unattributed[]): Promise<void> {
  if (unattributed.length === 0) return;
  const { findings, config } = input;
  const { db } = input.engine;
  const { rows, total } = await data.unattributedRows(db, NO_TENANT_ROWS, DETAIL_CHARS);
  const totals: data.InvariantTotals[] = unattributed.map((u) => ({
    entity: '',
    invariant_id: u.invariant_id,
    severity: findings.invariants.find((x) => x.id === u.invariant_id)?.severity ?? 'error',
    open: u.n,
    waived: 0,
    money: u.money,
  }));
  const noTenantBody = template('no-tenant')({
    h: helpers,
    total,
    shown: rows.length,
    sections: sections(totals, rows, linksFrom(''), config.links, 'org_id', env.asOf),
  });
  await w.write(
    ['no-tenant.html'],
    reportPage({
      title: 'Violations without a tenant — billing drift',
      heading: 'Violations without a tenant',
      crumbs: [{ label: 'Drift report', href: 'index.html' }, { label: 'Without a tenant' }],
      root: '',
      body: noTenantBody,
      script: false,
      findings,
    }),
  );
}
