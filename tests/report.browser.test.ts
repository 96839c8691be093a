import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { auditExports, type AuditRun } from '../src/audit.ts';
import { parseConfig } from '../src/config.ts';
import { formatInt, formatMoney } from '../src/findings/format.ts';
import { safeFileName } from '../src/report/paths.ts';
import { renderReports } from '../src/report/render.ts';
import { anchorFor } from '../src/report/views.ts';
import { launchBrowser, watch } from './helpers/browser.ts';

/**
 * The reports in a real headless Chromium (Debian's, or the one an npm package ships; never a
 * downloaded one), opened from file:// URLs as a person would open them: what they show, the
 * filter box, print styles, accessibility (axe-core) and that they load nothing from anywhere.
 */

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'app_runtime_misattributed');
const SCRATCH = join(import.meta.dirname, '..', 'scratch');
const require = createRequire(import.meta.url);

let browser: Browser;
let run: AuditRun;
let out: string;
let shots: string;
const indexUrl = () => pathToFileURL(join(out, 'index.html')).href;
const orgUrl = (id: string) => pathToFileURL(join(out, 'orgs', `${safeFileName(id)}.html`)).href;

beforeAll(async () => {
  browser = await launchBrowser();
  run = await auditExports({
    exportsDir: FIXTURE,
    config: parseConfig({ links: { grafana: 'https://grafana.example/explore?left={query}', tempo: 'https://tempo.example/trace/{trace_id}' } }, '(test)'),
  });
  out = await mkdtemp(join(tmpdir(), 'recon-report-browser-'));
  shots = join(out, '_screenshots');
  await mkdir(shots);
  await renderReports({ engine: run.engine, findings: run.findings, config: run.config.config }, out);
});

afterAll(async () => {
  await browser?.close();
  run?.db.close();
  if (out) await rm(out, { recursive: true, force: true });
});

describe('reports in headless Chromium', () => {
  test('the index shows the audit totals, every tenant, and loads nothing', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const seen = watch(page);
    await page.goto(indexUrl());
    const t = run.findings.totals;
    expect(t.violations).toBeGreaterThan(0);
    const card = (k: string) => page.locator('.card', { has: page.locator('.k', { hasText: new RegExp(`^${k}$`) }) }).locator('.v');
    await expect.poll(() => card('Error violations').textContent()).toBe(formatInt(t.error_violations));
    await expect.poll(() => card('Warnings').textContent()).toBe(formatInt(t.warn_violations));
    for (const [currency, amount] of Object.entries(t.amount_minor_by_currency)) {
      expect(await card(`Money at stake, ${currency}`).textContent()).toBe(formatMoney(amount, currency));
    }
    const orgs = await run.db.all<{ org_id: string }>(`SELECT DISTINCT org_id FROM violations WHERE org_id IS NOT NULL ORDER BY 1`);
    const rows = page.locator('#tenant-table tbody tr');
    expect(await rows.count()).toBe(orgs.length);
    for (const { org_id } of orgs) {
      await expect.poll(() => page.locator(`#tenant-table a[href="orgs/${safeFileName(org_id)}.html"]`).textContent()).toBe(org_id);
    }
    // The invariant table lists every invariant with its own count.
    for (const inv of run.findings.invariants.filter((i) => i.violations > 0)) {
      const row = page.locator('#invariant-table tbody tr', { has: page.locator('code', { hasText: new RegExp(`^${inv.id.replace('.', '\\.')}$`) }) });
      expect(await row.locator('td[data-label="Violations"]').textContent()).toBe(formatInt(inv.violations));
    }
    // The inline stylesheet was allowed by its CSP hash (a refused one leaves cards unstyled).
    const borderStyle = await page.locator('.card').first().evaluate(
      (el) => (globalThis as unknown as { getComputedStyle(e: unknown): { borderTopStyle: string } }).getComputedStyle(el).borderTopStyle,
    );
    expect(borderStyle).toBe('solid');
    await page.screenshot({ path: join(shots, 'index.png'), fullPage: true });
    await mkdir(SCRATCH, { recursive: true });
    await page.screenshot({ path: join(SCRATCH, 'report-index.png'), fullPage: true });
    expect(seen.requests).toEqual([indexUrl()]);
    expect(seen.errors).toEqual([]);
    await page.close();
  });

  test('typing in the filter box hides the tenant rows that do not match', async () => {
    const page = await browser.newPage();
    const seen = watch(page);
    await page.goto(indexUrl());
    const rows = page.locator('#tenant-table tbody tr');
    const total = await rows.count();
    expect(total).toBeGreaterThanOrEqual(2);
    await page.locator('#tenant-table-q').fill('org_b');
    await expect.poll(() => page.locator('#tenant-table tbody tr:visible').count()).toBe(1);
    expect(await page.locator('#tenant-table tbody tr:visible td:nth-child(2) a').textContent()).toBe('org_b');
    expect(await page.locator('#tenant-table-status').textContent()).toBe(`1 of ${total} rows match`);
    await page.locator('#tenant-table-q').fill('no such tenant');
    await expect.poll(() => page.locator('#tenant-table tbody tr:visible').count()).toBe(0);
    await page.locator('#tenant-table-q').fill('');
    await expect.poll(() => page.locator('#tenant-table tbody tr:visible').count()).toBe(total);
    // Printing drops the filter box.
    await page.emulateMedia({ media: 'print' });
    expect(await page.locator('.filter').first().isVisible()).toBe(false);
    expect(seen.requests).toEqual([indexUrl()]);
    expect(seen.errors).toEqual([]);
    await page.close();
  });

  test('a tenant report shows its violations and money per invariant, and loads nothing', async () => {
    const org = 'org_a';
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const seen = watch(page);
    await page.goto(orgUrl(org));
    expect(await page.locator('h1').textContent()).toBe(`Tenant ${org}`);
    const expected = await run.db.all<{ invariant_id: string; n: bigint; severity: string }>(
      `SELECT invariant_id, count(*) AS n, min(severity) AS severity FROM violations WHERE org_id = $org AND NOT waived GROUP BY 1 ORDER BY 1`,
      { org },
    );
    expect(expected.length).toBeGreaterThan(0);
    for (const e of expected) {
      const section = page.locator(`section.invariant#${anchorFor(e.invariant_id)}`);
      expect(await section.locator('h3 code').textContent()).toBe(e.invariant_id);
      expect(await section.locator('tbody td.entity').count()).toBe(Number(e.n));
    }
    const errors = expected.filter((e) => e.severity === 'error').reduce((a, e) => a + Number(e.n), 0);
    expect(await page.locator('.card', { has: page.locator('.k', { hasText: /^Error violations$/ }) }).locator('.v').textContent()).toBe(formatInt(errors));
    const money = await run.db.all<{ currency: string; amount: bigint }>(
      `SELECT currency, sum(amount_minor)::BIGINT AS amount FROM violations WHERE org_id = $org AND NOT waived AND amount_minor IS NOT NULL GROUP BY 1 ORDER BY 1`,
      { org },
    );
    for (const m of money) {
      const card = page.locator('.card', { has: page.locator('.k', { hasText: new RegExp(`^Money at stake, ${m.currency}$`) }) });
      expect(await card.locator('.v').textContent()).toBe(formatMoney(m.amount, m.currency));
    }
    // The runbook's LogQL for a violation's correlation id is there, ready to paste.
    expect(await page.locator('pre.logql').first().textContent()).toMatch(
      /^\{service=~"gpuaas-\(api\|billing-worker\|app-runtime-worker\|webhook-worker\)"\} \| json \| (correlation|trace)_id=".+"$/,
    );
    expect(await page.locator('figure svg').count()).toBeGreaterThan(0);
    await page.screenshot({ path: join(shots, 'tenant.png'), fullPage: true });
    await copyFile(join(shots, 'tenant.png'), join(SCRATCH, 'report-tenant.png'));
    expect(seen.requests).toEqual([orgUrl(org)]);
    expect(seen.errors).toEqual([]);
    await page.close();
  });

  test('axe-core finds no serious or critical accessibility problem', async () => {
    const axeSource = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
    // Only this step bypasses the CSP, to inject axe itself; the pages above ran under it.
    const context = await browser.newContext({ bypassCSP: true });
    try {
      const apps = await run.db.all<{ id: string }>(`SELECT DISTINCT app_instance_id AS id FROM violations WHERE app_instance_id IS NOT NULL ORDER BY 1 LIMIT 1`);
      const urls = [indexUrl(), orgUrl('org_a'), ...apps.map((a) => pathToFileURL(join(out, 'app-instances', `${safeFileName(a.id)}.html`)).href)];
      for (const url of urls) {
        const page = await context.newPage();
        await page.goto(url);
        await page.addScriptTag({ content: axeSource });
        const result = await page.evaluate(async () => {
          const axe = (globalThis as unknown as { axe: { run: (ctx: unknown, opts: unknown) => Promise<{ violations: Array<{ id: string; impact: string | null; help: string; nodes: unknown[] }> }> } }).axe;
          const r = await axe.run((globalThis as unknown as { document: unknown }).document, { resultTypes: ['violations'] });
          return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length }));
        });
        const severe = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
        expect(severe, `${url}: ${JSON.stringify(result)}`).toEqual([]);
        await page.close();
      }
    } finally {
      await context.close();
    }
  });
});
