import { readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runIncident } from '../src/incident/incident.ts';
import { fixture } from './helpers/audits.ts';
import { launchBrowser, watch } from './helpers/browser.ts';
import { tempDir } from './helpers/exports.ts';

/** The incident page in a real headless Chromium: under its CSP, on a phone, and through axe-core. */

const require = createRequire(import.meta.url);
let browser: Browser;
let out: string;
const url = () => pathToFileURL(path.join(out, 'incident.html')).href;

beforeAll(async () => {
  out = await tempDir('recon-incident-browser-');
  [browser] = await Promise.all([
    launchBrowser(),
    runIncident({ exportsDir: fixture('incident_one_correlation'), outDir: out, correlationIds: ['corr-inc'], traceIds: ['trace-inc'] }),
  ]);
});

afterAll(async () => {
  await browser?.close();
  if (out) await rm(out, { recursive: true, force: true });
});

describe('the incident page in headless Chromium', () => {
  test('renders on a 390 px phone without sideways scrolling, loads nothing, blast radius first', async () => {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, deviceScaleFactor: 2 });
    const seen = watch(page);
    await page.goto(url());
    expect(await page.locator('h1').textContent()).toBe('Incident correlation corr-inc, trace trace-inc');
    expect(await page.locator('main h2').first().textContent()).toBe('Blast radius: one tenant');
    expect(await page.locator('#timeline ~ .table-wrap tbody tr, section[aria-labelledby="timeline"] tbody tr').count()).toBe(16);
    expect(await page.locator('section[aria-labelledby="customers"] li').allTextContents()).toHaveLength(2);
    const width = await page.evaluate(() => {
      const d = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document;
      return { scroll: d.documentElement.scrollWidth, client: d.documentElement.clientWidth };
    });
    expect(width.client).toBe(390);
    expect(width.scroll).toBeLessThanOrEqual(width.client);
    expect(seen.requests).toEqual([url()]);
    expect(seen.errors).toEqual([]);
    await page.close();
  });

  test('axe-core finds no serious or critical accessibility problem', async () => {
    const axeSource = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
    // Only this step bypasses the CSP, to inject axe itself; the test above ran under it.
    const context = await browser.newContext({ bypassCSP: true, viewport: { width: 390, height: 844 } });
    try {
      const page = await context.newPage();
      await page.goto(url());
      await page.addScriptTag({ content: axeSource });
      const result = await page.evaluate(async () => {
        const axe = (globalThis as unknown as { axe: { run: (ctx: unknown, opts: unknown) => Promise<{ violations: Array<{ id: string; impact: string | null; help: string; nodes: unknown[] }> }> } }).axe;
        const r = await axe.run((globalThis as unknown as { document: unknown }).document, { resultTypes: ['violations'] });
        return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length }));
      });
      const severe = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
      expect(severe, JSON.stringify(result)).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
