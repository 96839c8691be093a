import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { auditExports, type AuditRun } from '../src/audit.ts';
import { writeAuditOutputs } from '../src/outputs/files.ts';
import { renderReports } from '../src/report/render.ts';
import { diffSnapshots } from '../src/snapshot/diff.ts';
import { launchBrowser } from './helpers/browser.ts';

/**
 * The demo's reports as a finance lead and a phone user meet them, in headless Chromium: every
 * page kind (index, tenant, app instance, invariant, violations without a tenant, diff) at 390 px
 * and 1400 px is axe-clean (no serious or critical finding) and screenshotted (kept in
 * scratch/finance-*.png); the filter finds formatted amounts, ids and invariants; columns sort;
 * on a phone tables are cards with the money first and chart text is never under 11 px.
 */

const DEMO = join(import.meta.dirname, '..', 'fixtures', 'demo');
const REMEDIATION = join(import.meta.dirname, '..', 'fixtures', 'remediation');
const SCRATCH = join(import.meta.dirname, '..', 'scratch');
const require = createRequire(import.meta.url);
const WIDTHS = [390, 1400] as const;

let browser: Browser;
let run: AuditRun;
let out: string;
let pages: Record<string, string>;

beforeAll(async () => {
  browser = await launchBrowser();
  run = await auditExports({ exportsDir: DEMO });
  out = await mkdtemp(join(tmpdir(), 'recon-finance-browser-'));
  await renderReports({ engine: run.engine, findings: run.findings, config: run.config.config }, join(out, 'report'));
  // A diff page from two audit output folders of the remediation fixtures.
  for (const side of ['before', 'after-partial']) {
    const a = await auditExports({ exportsDir: join(REMEDIATION, side) });
    try {
      await writeAuditOutputs(a, join(out, side));
    } finally {
      a.db.close();
    }
  }
  await diffSnapshots({ beforeDir: join(out, 'before'), afterDir: join(out, 'after-partial'), outDir: join(out, 'diff') });
  const url = (...p: string[]) => pathToFileURL(join(out, ...p)).href;
  pages = {
    index: url('report', 'index.html'),
    tenant: url('report', 'orgs', 'org_8.html'),
    app: url('report', 'app-instances', 'app_27.html'),
    invariant: url('report', 'invariants', 'ledger.duplicate_idempotency_key.html'),
    'no-tenant': url('report', 'no-tenant.html'),
    diff: url('diff', 'diff.html'),
  };
  await mkdir(SCRATCH, { recursive: true });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  run?.db.close();
  if (out) await rm(out, { recursive: true, force: true });
});

async function open(context: BrowserContext, url: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(url);
  return page;
}

describe('every page kind at 390 px and 1400 px', () => {
  test.each(WIDTHS)('%i px: axe finds no serious or critical problem; screenshots kept', async (width) => {
    const axeSource = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
    // Only axe's injection bypasses the CSP; the other tests run the pages under it.
    const context = await browser.newContext({ bypassCSP: true, viewport: { width, height: 900 } });
    try {
      for (const [kind, url] of Object.entries(pages)) {
        const page = await open(context, url);
        // The first screen of each page, for a person to look at; a full-page capture of the longest
        // pages fails intermittently in Chromium on a loaded 2-core machine.
        await page.screenshot({ path: join(SCRATCH, `finance-${kind}-${width}.png`) });
        await page.addScriptTag({ content: axeSource });
        const found = await page.evaluate(async () => {
          const axe = (globalThis as unknown as { axe: { run: (ctx: unknown, opts: unknown) => Promise<{ violations: Array<{ id: string; impact: string | null; nodes: unknown[] }> }> } }).axe;
          const r = await axe.run((globalThis as unknown as { document: unknown }).document, { resultTypes: ['violations'] });
          return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
        });
        expect(found.filter((v) => v.impact === 'serious' || v.impact === 'critical'), `${kind} at ${width}px: ${JSON.stringify(found)}`).toEqual([]);
        // nothing hides off-screen: the page itself never scrolls sideways
        const overflow = await page.evaluate(() => {
          const d = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document.documentElement;
          return d.scrollWidth - d.clientWidth;
        });
        expect(overflow, `${kind} at ${width}px scrolls sideways`).toBeLessThanOrEqual(1);
        await page.close();
      }
    } finally {
      await context.close();
    }
  });
});

describe('the index for a finance lead (1400 px)', () => {
  let context: BrowserContext;
  let page: Page;
  beforeAll(async () => {
    context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    page = await open(context, pages.index!);
  });
  afterAll(async () => context?.close());

  const visibleTenants = () =>
    page.locator('#tenant-table tbody tr:not([hidden]) td:nth-child(2)').allTextContents().then((xs) => xs.map((x) => x.trim()));

  test('tenants ranked by de-duplicated money, with their largest issue', async () => {
    expect((await visibleTenants())[0]).toBe('org_1');
    const org8 = page.locator('#tenant-table tbody tr', { hasText: 'org_8' });
    await expect.poll(() => org8.locator('td').nth(2).textContent()).toContain('EUR 474.00');
    expect(await org8.locator('td').nth(2).textContent()).toContain('EUR 483.60 per invariant, overlapping');
    expect(await org8.locator('td').nth(3).textContent()).toMatch(/EUR 468\.00\s*payment session ps_116\s*ledger\.duplicate_credit/);
  });

  test('the filter finds formatted amounts, ids and invariants', async () => {
    const box = page.locator('#tenant-table-q');
    const status = page.locator('#tenant-table-status');
    for (const [q, expected] of [
      ['483.60', ['org_8']],
      ['474.00', ['org_8']],
      ['1,353.39', []],
      ['ps_116', ['org_8']],
      ['ledger.duplicate_credit', ['org_8']],
      ['GBP 25.34', ['org_3']],
      ['2534', []],
    ] as const) {
      await box.fill(q);
      expect(await visibleTenants(), q).toEqual(expected);
      expect(await status.textContent(), q).toBe(`${expected.length} of 7 rows match`);
    }
    await box.fill('');
    expect(await visibleTenants()).toHaveLength(7);
  });

  test('columns sort, and say so (aria-sort)', async () => {
    const header = (name: string) => page.locator('#tenant-table thead th', { hasText: new RegExp(`^${name.replace(/[()]/g, '\\$&')}$`) });
    await header('Tenant (org_id)').locator('button').click();
    expect(await header('Tenant (org_id)').getAttribute('aria-sort')).toBe('ascending');
    expect(await visibleTenants()).toEqual(['org_1', 'org_3', 'org_4', 'org_5', 'org_6', 'org_7', 'org_8']);
    await header('Tenant (org_id)').locator('button').click();
    expect(await visibleTenants()).toEqual(['org_8', 'org_7', 'org_6', 'org_5', 'org_4', 'org_3', 'org_1']);
    await header('Open violations').locator('button').click();
    expect(await header('Open violations').getAttribute('aria-sort')).toBe('descending');
    expect(await header('Tenant (org_id)').getAttribute('aria-sort')).toBeNull();
    const open = (await page.locator('#tenant-table tbody tr td:nth-child(5)').allTextContents()).map(Number);
    expect(open).toEqual([...open].sort((a, b) => b - a));
    // back to the money ranking
    await header('Rank').locator('button').click();
    await header('Rank').locator('button').click();
    expect(await header('Rank').getAttribute('aria-sort')).toBe('ascending');
    expect((await visibleTenants())[0]).toBe('org_1');
  });

  test('every failing invariant is in the chart, and links to a page of the tenants it affects', async () => {
    const failing = run.findings.invariants.filter((r) => r.violations > 0);
    const caption = await page.locator('figure figcaption').first().textContent();
    expect(caption).toContain(`all ${failing.length} invariants with violations`);
    const labels = await page.locator('figure svg text').allTextContents();
    for (const r of failing) expect(labels, r.id).toContain(r.id);
    await page.locator('#invariant-table a', { hasText: 'ledger.duplicate_credit' }).click();
    await expect.poll(() => page.locator('h1').textContent()).toBe('Invariant ledger.duplicate_credit');
    expect(await page.locator('#affected-table tbody tr').allTextContents()).toEqual([expect.stringContaining('org_8')]);
    await page.goBack();
  });
});

describe('on a phone (390 px)', () => {
  test('tables are cards with the money first; chart text is never under 11 px', async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
    try {
      for (const kind of ['index', 'tenant', 'diff'] as const) {
        const page = await open(context, pages[kind]!);
        // In every card, the money cell is drawn above the row's other cells.
        const order = await page.evaluate(() => {
          const doc = (globalThis as unknown as { document: { querySelectorAll: (s: string) => ArrayLike<{ getBoundingClientRect(): { top: number }; parentElement: { children: ArrayLike<{ getBoundingClientRect(): { top: number } }> } }> } }).document;
          const cells = Array.from(doc.querySelectorAll('table.cards-on-phone tbody td.money-col'));
          return cells.map((c) => Array.from(c.parentElement.children).every((o) => o === c || o.getBoundingClientRect().top >= c.getBoundingClientRect().top));
        });
        expect(order.length, kind).toBeGreaterThan(0);
        expect(order.every(Boolean), kind).toBe(true);
        const smallest = await page.evaluate(() => {
          const doc = (globalThis as unknown as { document: { querySelectorAll: (s: string) => ArrayLike<{ getAttribute(n: string): string | null; getBoundingClientRect(): { width: number }; querySelectorAll: (s: string) => ArrayLike<unknown> }> } }).document;
          const gcs = (globalThis as unknown as { getComputedStyle: (e: unknown) => { fontSize: string } }).getComputedStyle;
          let min = Infinity;
          for (const svg of Array.from(doc.querySelectorAll('figure svg'))) {
            const scale = svg.getBoundingClientRect().width / Number(svg.getAttribute('width'));
            for (const t of Array.from(svg.querySelectorAll('text'))) min = Math.min(min, parseFloat(gcs(t).fontSize) * scale);
          }
          return min;
        });
        if (kind !== 'diff') expect(smallest, kind).toBeGreaterThanOrEqual(11);
        await page.close();
      }
    } finally {
      await context.close();
    }
  });
});
