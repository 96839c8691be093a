import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Db } from '../db.ts';
import type { Engine } from '../engine/engine.ts';
import { parseExact } from '../json.ts';
import { formatInstant, formatMoney } from '../findings/format.ts';
import { resolveInside, safeFileName } from '../report/paths.ts';
import { isNarrowed, type Scope } from '../scope.ts';
import { isoSql, sqlString } from '../sql.ts';
import { MONEY_ITEM_SQL } from '../findings/money.ts';

/**
 * Customer-facing summaries: what a support engineer can send a tenant. One line per money
 * movement (usage interval, payment, ledger entry), however many checks saw it, in plain
 * language, with amounts in money format, and no internal ids beyond the customer's own
 * (tenant, project, user, allocation, app instance): no usage record, ledger entry, payment
 * session, correlation id or check name.
 *
 * Only checks with something to tell the customer have a sentence; the others (export
 * quality, events, lag, attribution details) are the operator's follow-ups, not the customer's.
 * When one movement trips several checks, the first of CUSTOMER_PRIORITY describes it.
 */
const CUSTOMER_PRIORITY = [
  'ledger.duplicate_debit',
  'ledger.duplicate_credit',
  'ledger.duplicate_idempotency_key',
  'usage.debit_mismatch',
  'ledger.debit_wrong_account',
  'payments.completed_without_credit',
  'payments.failed_reconcile',
  'usage.unbilled_closed',
  'ledger.balance_projection',
  'app_runtime.anchor_mismatch',
  'usage.orphan_open',
  'app_runtime.orphan_open',
] as const;

/** Items listed per customer; the rest are counted. */
export const CUSTOMER_ITEM_LIMIT = 200;

export type CustomerItemStatus = 'open' | 'corrected';

export interface CustomerItem {
  org_id: string;
  project_id: string | null;
  requested_by_user_id: string | null;
  allocation_id: string | null;
  app_instance_id: string | null;
  invariant_id: string;
  amount_minor: bigint | null;
  currency: string | null;
  start_at: string | null;
  end_at: string | null;
  at: string | null;
  detail: Record<string, unknown>;
  status: CustomerItemStatus;
}

export interface CustomerItemsOptions {
  /** A violations-shaped table. */
  table?: string;
  /** SQL giving each row's CustomerItemStatus (a diff's resolved rows are 'corrected'). */
  statusSql?: string;
  /** Where the export tables are read, for when each movement happened. */
  engine: Engine;
}

/** The customer items of every tenant (at most CUSTOMER_ITEM_LIMIT per tenant and status), from DuckDB. */
export async function customerItems(db: Db, opts: CustomerItemsOptions): Promise<{ items: CustomerItem[]; more: Map<string, number> }> {
  const table = opts.table ?? 'violations';
  const status = opts.statusSql ?? `'open'`;
  const priority = `CASE invariant_id ${CUSTOMER_PRIORITY.map((id, i) => `WHEN ${sqlString(id)} THEN ${i}`).join(' ')} END`;
  const times = { usage: 'customer_usage_times', sessions: 'customer_session_times', ledger: 'customer_ledger_times' };
  await opts.engine.materialiseMovementTimes(table, times);
  const joins = [
    `LEFT JOIN ${times.usage} u ON u.usage_record_id = p.usage_record_id`,
    `LEFT JOIN ${times.sessions} s ON s.payment_session_id = p.payment_session_id`,
    `LEFT JOIN ${times.ledger} l ON l.ledger_entry_id = p.ledger_entry_id`,
  ];
  await db.run(`CREATE OR REPLACE TEMP TABLE customer_items AS
    WITH c0 AS (
      SELECT * EXCLUDE (currency), ${status} AS item_status, ${MONEY_ITEM_SQL} AS item, ${priority} AS prio, currency AS own_currency
      FROM ${table}
      WHERE NOT waived AND org_id IS NOT NULL AND ${priority} IS NOT NULL),
    -- a check that prices nothing (the first entry of a repeated key) still names its movement's currency
    c AS (SELECT *, coalesce(own_currency, max(own_currency) OVER (PARTITION BY org_id, item_status, item)) AS currency FROM c0),
    -- one line per movement and currency: described by its most telling check, priced at the
    -- largest amount any of its checks gives it
    p AS (
      SELECT *, max(amount_minor) OVER (PARTITION BY org_id, item_status, item, currency) AS item_amount
      FROM c
      QUALIFY row_number() OVER (PARTITION BY org_id, item_status, item, currency ORDER BY prio, amount_minor DESC NULLS LAST, entity_id) = 1)
    SELECT p.org_id, p.project_id, p.requested_by_user_id, p.allocation_id, p.app_instance_id, p.invariant_id,
           p.item_amount AS amount_minor, p.currency, p.detail::VARCHAR AS detail, p.item_status AS status,
           ${isoSql('u.start_time')} AS start_at, ${isoSql('u.end_time')} AS end_at,
           ${isoSql('coalesce(l.created_at, s.created_at)')} AS at,
           coalesce(u.start_time, l.created_at, s.created_at) AS sort_at,
           row_number() OVER (PARTITION BY p.org_id, p.item_status ORDER BY coalesce(u.start_time, l.created_at, s.created_at) NULLS LAST, p.prio, p.item) AS rn
    FROM p ${joins.join(' ')}`);
  const rows = await db.all<Omit<CustomerItem, 'detail'> & { detail: string }>(
    `SELECT * EXCLUDE (rn, sort_at) FROM customer_items WHERE rn <= $n ORDER BY org_id, status DESC, rn`,
    { n: CUSTOMER_ITEM_LIMIT },
  );
  const more = await db.all<{ org_id: string; n: bigint }>(
    `SELECT org_id, count(*) FILTER (WHERE rn > $n) AS n FROM customer_items GROUP BY org_id`,
    { n: CUSTOMER_ITEM_LIMIT },
  );
  await db.run(`DROP TABLE customer_items`);
  for (const t of Object.values(times)) await db.run(`DROP TABLE ${t}`);
  return {
    items: rows.map((r) => ({ ...r, detail: (typeof r.detail === 'string' ? parseExact(r.detail) : {}) as Record<string, unknown> })),
    more: new Map(more.map((m) => [m.org_id, Number(m.n)])),
  };
}

function num(v: unknown): bigint | null {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  return null;
}

function what(i: CustomerItem): string {
  if (i.app_instance_id !== null) return `app instance ${i.app_instance_id}`;
  if (i.allocation_id !== null) return `GPU allocation ${i.allocation_id}`;
  return i.project_id !== null ? `project ${i.project_id}` : 'your account';
}

function period(i: CustomerItem): string {
  if (i.start_at && i.end_at) return `from ${formatInstant(i.start_at)} to ${formatInstant(i.end_at)}`;
  if (i.start_at) return `since ${formatInstant(i.start_at)}`;
  return i.at ? `on ${formatInstant(i.at)}` : '(date in the audit evidence)';
}

const on = (i: CustomerItem) => (i.at ? `on ${formatInstant(i.at)}` : i.start_at ? `for usage from ${formatInstant(i.start_at)}` : '');
const money = (i: CustomerItem, amount: bigint | null = i.amount_minor) => formatMoney(amount, i.currency);

/** One plain-language sentence per item: what went wrong, when, and how much. */
export function customerSentence(i: CustomerItem): { text: string; direction: 'overcharged' | 'undercharged' | 'credit' | 'other' } {
  const d = i.detail;
  switch (i.invariant_id) {
    case 'ledger.duplicate_debit':
      return { text: `Usage of ${what(i)} ${period(i)} was charged twice. Extra charge: ${money(i)}.`, direction: 'overcharged' };
    case 'ledger.duplicate_idempotency_key':
      return d['entry_type'] === 'payment_credit'
        ? { text: `A payment ${on(i)} was credited to your balance twice. Extra credit: ${money(i)}.`, direction: 'credit' }
        : { text: `A usage charge for ${what(i)} ${on(i)} was posted twice. Extra charge: ${money(i)}.`, direction: 'overcharged' };
    case 'usage.debit_mismatch': {
      const accrued = num(d['accrued_cost_minor']);
      const debited = num(d['debited_minor']);
      const over = accrued !== null && debited !== null && debited > accrued;
      const amounts = accrued !== null && debited !== null ? ` ${money(i, debited)} was charged for usage that cost ${money(i, accrued)}.` : '';
      return {
        text: `Usage of ${what(i)} ${period(i)} was charged the wrong amount.${amounts} ${over ? 'Overcharged' : 'Difference'}: ${money(i)}.`,
        direction: over ? 'overcharged' : 'undercharged',
      };
    }
    case 'ledger.debit_wrong_account':
      return { text: `A usage charge of ${money(i)} ${on(i)} was posted to your account for usage of another account.`, direction: 'overcharged' };
    case 'ledger.duplicate_credit':
      return { text: `A payment ${on(i)} was credited to your balance twice. Extra credit: ${money(i)}.`, direction: 'credit' };
    case 'payments.completed_without_credit':
      return { text: `Your payment of ${money(i)} ${on(i)} went through but was not credited to your balance.`, direction: 'credit' };
    case 'payments.failed_reconcile':
      return { text: `Your payment of ${money(i)} ${on(i)} was received but could not yet be applied to your balance.`, direction: 'credit' };
    case 'usage.unbilled_closed':
      return { text: `Usage of ${what(i)} ${period(i)} has not been charged yet: ${money(i)}.`, direction: 'undercharged' };
    case 'ledger.balance_projection': {
      const asOf = typeof d['as_of'] === 'string' ? ` on ${formatInstant(d['as_of'])}` : '';
      return { text: `The ${i.currency ?? ''} balance shown${asOf} was off by ${money(i)}.`.replace('The  ', 'The '), direction: 'other' };
    }
    case 'app_runtime.anchor_mismatch':
      return { text: `Usage of ${what(i)} ${period(i)} (${money(i)}) was recorded against the wrong project or runtime settings.`, direction: 'other' };
    default:
      return { text: `${what(i).replace(/^./, (c) => c.toUpperCase())} was still being metered after it was released (open ${period(i)}).`, direction: 'other' };
  }
}

function mdEscape(text: string): string {
  return text.replace(/[\\`*[\]<>|#]/g, (c) => `\\${c}`).replaceAll('\n', ' ');
}

const SECTION_TITLES: Record<string, string> = {
  overcharged: 'Charged too much',
  credit: 'Payments and credits',
  undercharged: 'Charged too little (not yet billed)',
  other: 'Other billing corrections',
};

/** The Markdown a support engineer can send one tenant. */
export function customerMarkdown(org: string, items: readonly CustomerItem[], opts: { asOf: string; scope?: Scope; more?: number }): string {
  const scoped = opts.scope && isNarrowed(opts.scope) ? opts.scope : undefined;
  const who = scoped && (scoped.projects.length || scoped.users.length)
    ? ` (${[...scoped.projects.map((p) => `project ${p}`), ...scoped.users.map((u) => `user ${u}`)].join(', ')})`
    : '';
  const lines = [`# Billing review for ${mdEscape(org)}${mdEscape(who)}`, '', `Reviewed up to ${formatInstant(opts.asOf)}.`, ''];
  const open = items.filter((i) => i.status === 'open');
  const corrected = items.filter((i) => i.status === 'corrected');
  if (open.length === 0 && corrected.length === 0) {
    lines.push('We found nothing charged or credited wrongly.', '');
    return lines.join('\n');
  }
  const list = (xs: readonly CustomerItem[]) => {
    const by = new Map<string, string[]>();
    for (const i of xs) {
      const s = customerSentence(i);
      by.set(s.direction, [...(by.get(s.direction) ?? []), `- ${mdEscape(s.text)}`]);
    }
    for (const dir of Object.keys(SECTION_TITLES)) {
      const ls = by.get(dir);
      if (ls) lines.push(`### ${SECTION_TITLES[dir]}`, '', ...ls, '');
    }
  };
  if (open.length) {
    lines.push(`## What we found${corrected.length ? ' and have not yet corrected' : ''}`, '');
    list(open);
  }
  if (corrected.length) {
    lines.push('## Already corrected', '');
    list(corrected);
  }
  if (opts.more) lines.push(`…and ${opts.more} more item(s); your account team has the full list.`, '');
  lines.push('Amounts are exact, in the currency charged. We will follow up once every item is corrected.', '');
  return lines.join('\n');
}

/** Writes `customers/<org>.md` for every tenant with something to tell; returns the files written. */
export async function writeCustomerSummaries(
  db: Db,
  outDir: string,
  opts: { asOf: string; scope?: Scope; engine: Engine; table?: string; statusSql?: string },
): Promise<string[]> {
  const { items, more } = await customerItems(db, {
    ...(opts.table ? { table: opts.table } : {}),
    ...(opts.statusSql ? { statusSql: opts.statusSql } : {}),
    engine: opts.engine,
  });
  const byOrg = new Map<string, CustomerItem[]>();
  for (const i of items) byOrg.set(i.org_id, [...(byOrg.get(i.org_id) ?? []), i]);
  const files: string[] = [];
  if (byOrg.size === 0) return files;
  await mkdir(resolveInside(outDir, 'customers'), { recursive: true });
  for (const [org, list] of byOrg) {
    const file = resolveInside(outDir, 'customers', `${safeFileName(org)}.md`);
    await writeFile(file, customerMarkdown(org, list, { asOf: opts.asOf, ...(opts.scope ? { scope: opts.scope } : {}), more: more.get(org) ?? 0 }));
    files.push(file);
  }
  return files.sort((a, b) => path.basename(a).localeCompare(path.basename(b)));
}
