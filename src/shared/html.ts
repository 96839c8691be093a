import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ejs from 'ejs';
import { PACKAGE_ROOT } from '../package-root.ts';

/** A CSP source that allows exactly this inline text. */
function sha256Source(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

const policies = new Map<string, Map<string | null, string>>();

/**
 * The Content-Security-Policy of every page recon writes (reports, incident, diff): nothing may
 * load from anywhere (`default-src 'none'`); the one inline stylesheet and, where present, the
 * one inline script are allowed by their hash.
 */
export function contentSecurityPolicy(inline: { css: string; script?: string | null }): string {
  // Every page of a run shares its stylesheet and script: hashing them once per page was a
  // twentieth of the reports stage on 10,000 tenants.
  const byScript = policies.get(inline.css) ?? new Map<string | null, string>();
  policies.set(inline.css, byScript);
  let policy = byScript.get(inline.script ?? null);
  if (policy === undefined) {
    policy = buildPolicy(inline);
    byScript.set(inline.script ?? null, policy);
  }
  return policy;
}

function buildPolicy(inline: { css: string; script?: string | null }): string {
  return [
    `default-src 'none'`,
    `style-src ${sha256Source(inline.css)}`,
    `script-src ${inline.script ? sha256Source(inline.script) : `'none'`}`,
    `img-src 'none'`,
    `font-src 'none'`,
    `connect-src 'none'`,
    `base-uri 'none'`,
    `form-action 'none'`,
  ].join('; ');
}

export type Template = (locals: Record<string, unknown>) => string;

/**
 * Compiles a page template. strict + no `with`: a template can only read what it is given, as
 * `it.*`, so a missing value is an error instead of a silently empty cell.
 *
 * Templates include partials by a path from `root` (`include('/partials/money', …)`): ejs looks
 * a relative include up on disk at every call, which was a fifth of the reports stage's CPU on
 * 10,000 tenants.
 */
export function compileTemplate(filename: string, root = path.dirname(filename)): Template {
  const fn = ejs.compile(readFileSync(filename, 'utf8'), {
    filename,
    root,
    strict: true,
    _with: false,
    localsName: 'it',
    cache: true,
    async: false,
  });
  return (locals) => fn(locals);
}

const SHELL_DIR = path.join(PACKAGE_ROOT, 'src', 'shared', 'templates');

/** The stylesheet every page shares (reports, incident, diff); a page family may add rules after it. */
export const PAGE_CSS = readFileSync(path.join(SHELL_DIR, 'style.css'), 'utf8').trim();

export interface Crumb {
  label: string;
  href?: string;
}

/** What one page puts into the shared frame. */
export interface PageShell {
  title: string;
  heading: string;
  /** The breadcrumb trail above the heading; a page that stands alone (the diff) has none. */
  crumbs: Crumb[];
  /** An id shown in full under the heading, when the heading had to shorten it. */
  fullId: string | null;
  /** The line under the heading: what the page was built from, as of when. */
  meta: string;
  /** `name version` of the tool that wrote the page. */
  tool: string;
  css: string;
  script: string | null;
  /** HTML: the page template's output. */
  body: string;
  /** HTML: the page family's footer template's output. */
  footer: string;
}

let shell: Template | undefined;

/** The HTML document around a page: head with the hashed CSP, header, main, footer, script. */
export function renderPage(page: PageShell): string {
  shell ??= compileTemplate(path.join(SHELL_DIR, 'page.ejs'));
  return shell({ ...page, csp: contentSecurityPolicy({ css: page.css, script: page.script }) });
}
