import { existsSync } from 'node:fs';
import sparticuz from '@sparticuz/chromium';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's browser when the machine has it (CI installs nothing for it, but uses it if there). */
const SYSTEM_CHROMIUM = '/usr/bin/chromium';

/**
 * Without these Chromium keeps calling Google's hosts, which this machine's closed network
 * refuses many times a second; it must never download or phone anything.
 */
const QUIET = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/**
 * A headless Chromium from `npm ci` alone: the system one when present, otherwise the binary
 * that `@sparticuz/chromium` ships inside its npm package (unpacked to the temp dir once).
 * Not the package's own `args`: they are for serverless functions and include
 * `--single-process` (the browser dies with its first closed page) and
 * `--disable-web-security`, which would hide the very CSP refusals the tests look for.
 */
export async function launchBrowser(): Promise<Browser> {
  const executablePath = existsSync(SYSTEM_CHROMIUM) ? SYSTEM_CHROMIUM : await sparticuz.executablePath();
  return chromium.launch({ executablePath, args: QUIET });
}

/** Everything a page asks for, and every console error (a CSP refusal shows up there). */
export function watch(page: Page): { requests: string[]; errors: string[] } {
  const seen = { requests: [] as string[], errors: [] as string[] };
  page.on('request', (r) => seen.requests.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') seen.errors.push(m.text());
  });
  page.on('pageerror', (e) => seen.errors.push(e.message));
  return seen;
}
