import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Findings } from '../findings/types.ts';
import { formatInstant, formatInt, formatMoney } from '../findings/format.ts';
import { PACKAGE_ROOT } from '../package-root.ts';
import { describeScope, isNarrowed, normaliseScope } from '../scope.ts';
import { compileTemplate, contentSecurityPolicy, PAGE_CSS, renderPage, type Crumb, type Template } from '../shared/html.ts';
import { resolveInside } from './paths.ts';

/**
 * The report pages' part of the shared page shell (src/shared/html.ts): their templates, the
 * helpers every template gets, and the frame filled from the audit's findings.
 */

const TEMPLATE_DIR = path.join(PACKAGE_ROOT, 'src', 'report', 'templates');

const templates = new Map<string, Template>();

/** A report template by name (e.g. `org`, `partials/footer`), compiled once. */
export function template(name: string): Template {
  let t = templates.get(name);
  if (!t) {
    t = compileTemplate(resolveInside(TEMPLATE_DIR, `${name}.ejs`), TEMPLATE_DIR);
    templates.set(name, t);
  }
  return t;
}

const FILTER_SCRIPT = readFileSync(resolveInside(TEMPLATE_DIR, 'filter.js'), 'utf8').trim();

/** The policy of a report page: the shared stylesheet and, on pages that filter, the filter script. */
export function pagePolicy(withScript: boolean): string {
  return contentSecurityPolicy({ css: PAGE_CSS, script: withScript ? FILTER_SCRIPT : null });
}

const ID_DISPLAY_MAX = 160;

/** An id as shown in tables: never invisible (empty), never a wall of text (the page heading has it in full). */
export function displayId(id: string | null | undefined): string {
  if (id === null || id === undefined) return '—';
  if (id === '') return '(empty id)';
  return id.length > ID_DISPLAY_MAX ? `${id.slice(0, 120)}… (${id.length} characters)` : id;
}

export const helpers = {
  money: formatMoney,
  int: formatInt,
  id: displayId,
};

/** A report page in the shared shell: breadcrumbs, the audit's as-of and scope, a footer linking its outputs. */
export function reportPage(opts: {
  title: string;
  heading: string;
  crumbs: Crumb[];
  /** Relative path from the page to the output root (`''` or `'../'`). */
  root: string;
  body: string;
  script: boolean;
  findings: Findings;
  /** The entity's id, shown in full under the heading when the heading had to shorten it. */
  fullId?: string;
}): string {
  const f = opts.findings;
  const tool = `${f.tool.name} ${f.tool.version}`;
  const scope = isNarrowed(normaliseScope(f.scope)) ? describeScope(f.scope) : '';
  return renderPage({
    title: opts.title,
    heading: opts.heading,
    crumbs: opts.crumbs,
    fullId: opts.fullId !== undefined && displayId(opts.fullId) !== opts.fullId && opts.fullId !== '' ? opts.fullId : null,
    meta: `Audit as of ${formatInstant(f.as_of)} · ${tool}${scope ? ` · scope: ${scope}` : ''}`,
    tool,
    css: PAGE_CSS,
    script: opts.script ? FILTER_SCRIPT : null,
    body: opts.body,
    footer: template('partials/footer')({ tool, root: opts.root }),
  });
}

/**
 * A page outside the drift report set (the incident page) in the same shell: the shared CSS,
 * hashed CSP, escaping helpers, and a footer linking the findings written beside it.
 */
export function renderStandalonePage(name: string, locals: Record<string, unknown>, opts: { title: string; heading: string; findings: Findings }): string {
  return reportPage({
    title: opts.title,
    heading: opts.heading,
    crumbs: [{ label: opts.heading }],
    root: '',
    body: template(name)({ h: helpers, ...locals }),
    script: false,
    findings: opts.findings,
  });
}
