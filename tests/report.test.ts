import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, relative, sep } from 'node:path';
import { HtmlValidate } from 'html-validate';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { auditExports } from '../src/audit.ts';
import { assertSafeSvg, barChart } from '../src/report/charts.ts';
import { fillLinkTemplate, logQueries, violationTimeRange, logqlFor, logqlString } from '../src/report/format.ts';
import { formatMoney, minorToDecimal } from '../src/findings/format.ts';
import { resolveInside, safeFileName } from '../src/report/paths.ts';
import { renderReports } from '../src/report/render.ts';
import { BUSY_COUNT, BUSY_ORG, HOSTILE, HOSTILE_APP, HOSTILE_CORRELATION, HOSTILE_PROJECT, hostileWorld, insertViolations, type World } from './report-fixtures/world.ts';

/** Text content of HTML: tags dropped, the five entities ejs writes decoded. */
function text(html: string): string {
  return html
    .replace(/<style>[\s\S]*?<\/style>|<script>[\s\S]*?<\/script>|<svg[\s\S]*?<\/svg>/g, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&#34;/g, '"')
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ');
}

/**
 * Every start tag of a document with its attribute names (data is escaped, so every `<` left is
 * real markup and every `"` inside a value is `&#34;`). Throws on an attribute it cannot parse.
 */
function tags(html: string): Array<{ name: string; attrs: string[] }> {
  return [...html.matchAll(/<([a-zA-Z][^\s/>]*)([^>]*)>/g)].map((m) => {
    const attrs: string[] = [];
    const rest = (m[2] ?? '').replace(/\/$/, '').replace(/\s+([^\s="'<>\/]+)(="[^"]*")?/g, (_, name: string) => {
      attrs.push(name.toLowerCase());
      return '';
    });
    if (rest.trim() !== '') throw new Error(`unparsed attributes in <${m[1]}>: ${rest}`);
    return { name: m[1]!.toLowerCase(), attrs };
  });
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out.sort();
}

const sha = (s: string) => `'sha256-${createHash('sha256').update(s, 'utf8').digest('base64')}'`;

describe('safeFileName', () => {
  test('a safe, portable id is the file name itself (orgs/org_8.html)', () => {
    for (const id of ['org_8', 'org_a', 'app_113', 'org-1.eu', '0']) expect(safeFileName(id)).toBe(id);
  });

  test('any other id: an ASCII slug plus a 16-hex sha256, never a path', () => {
    expect(safeFileName('Org_A')).toBe(`org_a-${createHash('sha256').update('Org_A').digest('hex').slice(0, 16)}`);
    for (const id of Object.values(HOSTILE).filter((h) => h !== HOSTILE.caseB && h !== HOSTILE.punctA)) {
      const name = safeFileName(id);
      expect(name).toMatch(/^[a-z0-9_-]+-[0-9a-f]{16}$/);
      expect(name.length).toBeLessThanOrEqual(48 + 1 + 16);
      expect(name.startsWith('.') || name.startsWith('-')).toBe(false);
    }
    expect(safeFileName('Zürich-公司')).toMatch(/^zurich-[0-9a-f]{16}$/);
    expect(safeFileName('')).toMatch(/^id-[0-9a-f]{16}$/);
    // unsafe or unportable as they are: dot names, Windows device names, too long, hash-shaped
    for (const id of ['.', '..', '.hidden', 'a..b', 'a.', 'con', 'nul.txt', 'lpt1', 'a'.repeat(65), 'x-0123456789abcdef', 'org 8', 'org/8']) {
      expect(safeFileName(id), id).toMatch(/-[0-9a-f]{16}$/);
    }
  });

  test('ids differing only in case, punctuation or letters the slug drops never share a name', () => {
    const ids = ['Org-Case', 'org-case', 'ORG-CASE', 'org.case', 'org/case', 'org case', 'org_case', '公司', '公园', 'a'.repeat(200), `${'a'.repeat(200)}b`,
      'x', `x-${createHash('sha256').update('X').digest('hex').slice(0, 16)}`, 'X'];
    const names = ids.map(safeFileName);
    expect(new Set(names).size).toBe(ids.length);
    // also on case-insensitive file systems
    expect(new Set(names.map((n) => n.toLowerCase())).size).toBe(ids.length);
    expect(safeFileName('Org-Case')).toBe(safeFileName('Org-Case'));
  });

  test('resolveInside refuses anything that leaves the folder', () => {
    const root = join(tmpdir(), 'recon-out');
    expect(resolveInside(root, 'orgs', 'a.html')).toBe(join(root, 'orgs', 'a.html'));
    for (const bad of [['..'], ['../x.html'], ['orgs', '../../x'], ['/etc/passwd'], ['.']]) {
      expect(() => resolveInside(root, ...bad)).toThrow(/outside/);
    }
  });
});

describe('templates', () => {
  test('unescaped output (<%-) is used only for includes and the five trusted values, never for data', async () => {
    // The report pages' templates, the page shell they share with the diff, and the diff's own.
    const dirs = ['report', 'shared', 'snapshot'].map((d) => join(import.meta.dirname, '..', 'src', d, 'templates'));
    const files = (await Promise.all(dirs.map(walk))).flat().filter((f) => f.endsWith('.ejs'));
    expect(files.length).toBeGreaterThanOrEqual(12);
    const raw: string[] = [];
    for (const f of files) {
      for (const m of (await readFile(f, 'utf8')).matchAll(/<%-\s*([\s\S]*?)\s*-?%>/g)) raw.push(m[1]!);
    }
    // it.body / it.footer: a page's own template output; it.css / it.script: the static assets
    // (CSP-hashed); it.chart.svg: the drawn SVG after assertSafeSvg.
    const trusted = ['it.body', 'it.footer', 'it.css', 'it.script', 'it.chart.svg'];
    expect(raw.filter((r) => !r.startsWith('include(') && !trusted.includes(r))).toEqual([]);
    expect(raw.some((r) => r.startsWith('include('))).toBe(true);
  });
});

describe('formatting', () => {
  test('money is exact in minor units and respects the ISO-4217 exponent', () => {
    expect(formatMoney(48360n, 'EUR')).toBe('EUR 483.60');
    expect(formatMoney(2534n, 'GBP')).toBe('GBP 25.34');
    expect(formatMoney(5n, 'EUR')).toBe('EUR 0.05');
    expect(formatMoney(1500n, 'JPY')).toBe('JPY 1,500');
    expect(formatMoney(-1500n, 'JPY')).toBe('-JPY 1,500');
    expect(formatMoney(-480n, 'EUR')).toBe('-EUR 4.80');
    expect(formatMoney(-5n, 'GBP')).toBe('-GBP 0.05');
    expect(formatMoney(1500n, 'BHD')).toBe('BHD 1.500');
    expect(formatMoney(1500n, 'ISK')).toBe('ISK 1,500');
    // above 2^53 a float would already have lost the last digit
    expect(formatMoney(2n ** 53n + 1n, 'EUR')).toBe('EUR 90,071,992,547,409.93');
    expect(formatMoney(-(2n ** 63n - 1n), 'JPY')).toBe('-JPY 9,223,372,036,854,775,807');
    expect(formatMoney(123456789012345678901n, 'USD')).toBe('USD 1,234,567,890,123,456,789.01');
    expect(formatMoney(1500n, 'xx')).toBe('xx 15.00');
    expect(formatMoney(5n, null)).toBe('??? 0.05');
    expect(formatMoney(null, 'USD')).toBe('—');
    expect(minorToDecimal(-(2n ** 53n + 1n), 'EUR')).toBe('-90071992547409.93');
    expect(minorToDecimal(7n, 'JPY')).toBe('7');
  });

  test('LogQL strings are escaped so an id cannot end the string or the query', () => {
    expect(logqlString('corr-1')).toBe('"corr-1"');
    expect(logqlString('a"b\\c\nd\te\u0001')).toBe('"a\\"b\\\\c\\nd\\te\\u0001"');
    expect(logqlFor('correlation_id', 'c"} |= "x')).toBe(
      '{service=~"gpuaas-(api|billing-worker|app-runtime-worker|webhook-worker)"} | json | correlation_id="c\\"} |= \\"x"',
    );
    expect(logqlFor('trace_id', 't-1')).toBe('{service=~"gpuaas-(api|billing-worker|app-runtime-worker|webhook-worker)"} | json | trace_id="t-1"');
  });

  test('link templates are URL-encoded, need their values, and only ever give http(s)', () => {
    expect(fillLinkTemplate('https://g.example/x?c={correlation_id}', { correlation_id: 'a b&c' })).toBe('https://g.example/x?c=a%20b%26c');
    expect(fillLinkTemplate('https://t.example/{trace_id}', { correlation_id: 'x', trace_id: null })).toBeNull();
    expect(fillLinkTemplate('javascript:alert({query})', { query: 'q' })).toBeNull();
    const q = logQueries(
      { correlation_id: 'c1', trace_id: 't1' },
      { grafana: 'https://g.example/explore?left={query}', tempo: 'https://t.example/trace/{trace_id}' },
    );
    expect(q.map((x) => [x.kind, x.links.map((l) => l.label)])).toEqual([
      ['correlation_id', ['Grafana']],
      ['trace_id', ['Grafana', 'Tempo']],
    ]);
    expect(q[0]!.links[0]!.href).toBe(`https://g.example/explore?left=${encodeURIComponent(logqlFor('correlation_id', 'c1'))}`);
    expect(logQueries({ correlation_id: null, trace_id: null }, {})).toEqual([]);
  });

  test("log links carry the violation's time range: an hour around its own timestamps, else the day before the audit", () => {
    const range = violationTimeRange({ start_time: '2026-11-20T09:00:00Z', end_time: '2026-11-20T10:00:00Z', entries: [{ created_at: '2026-11-20T08:30:00Z' }] }, '2026-11-20T12:00:00Z');
    expect(range).toEqual({ from: '2026-11-20T07:30:00Z', to: '2026-11-20T11:00:00Z' });
    expect(violationTimeRange({ accrued_cost_minor: 5 }, '2026-11-20T12:00:00Z')).toEqual({ from: '2026-11-19T12:00:00Z', to: '2026-11-20T12:00:00Z' });
    const [from, to] = [Date.parse(range.from), Date.parse(range.to)];
    const q = logQueries({ correlation_id: 'c1', trace_id: null }, { grafana: 'https://g.example/explore?left={query}', loki: 'https://l.example/q?f={from}&t={to}&c={correlation_id}' }, range);
    expect(q[0]!.range).toEqual(range);
    expect(q[0]!.links.map((l) => l.href)).toEqual([
      `https://g.example/explore?left=${encodeURIComponent(logqlFor('correlation_id', 'c1'))}&from=${from}&to=${to}`,
      `https://l.example/q?f=${from}&t=${to}&c=c1`,
    ]);
  });
});

describe('charts', () => {
  test('hostile labels are escaped in the SVG and the SVG passes the safety check', async () => {
    const chart = await barChart(
      'money',
      [
        { label: HOSTILE.script, value: 3 },
        { label: HOSTILE.img, value: 2 },
        { label: '</svg><script>x()</script>', value: 1 },
      ],
      { xTitle: 'money', yTitle: 'project', alt: 'a <b>"chart"</b>' },
    );
    expect(chart.svg).not.toMatch(/<script|<img|<\/svg>./);
    expect(chart.svg).toContain('&lt;script&gt;');
    expect(chart.svg).toContain('aria-label="a &#60;b&#62;&#34;chart&#34;&#60;/b&#62;"');
    expect(tags(chart.svg).every((t) => t.attrs.every((a) => !a.startsWith('on')))).toBe(true);
    expect(() => assertSafeSvg(chart.svg)).not.toThrow();
  });

  test('the safety check rejects anything that could run or fetch', () => {
    const bad = [
      '<svg><script>alert(1)</script></svg>',
      '<svg onload="alert(1)"></svg>',
      '<svg><g><a href="https://x"><text>x</text></a></g></svg>',
      '<svg><rect style="fill:red"/></svg>',
      '<svg><rect fill="url(https://x/y)"/></svg>',
      '<svg><foreignObject><div></div></foreignObject></svg>',
      '<svg><!-- x --></svg>',
      '<div></div>',
    ];
    for (const svg of bad) expect(() => assertSafeSvg(svg), svg).toThrow(/unsafe chart SVG/);
    expect(() => assertSafeSvg('<svg role="img"><defs><clipPath id="c1-clip1"><path d="M0,0"/></clipPath></defs><g clip-path="url(#c1-clip1)"><text>&lt;b&gt;</text></g></svg>')).not.toThrow();
  });
});

describe('renderReports over hostile identifiers', () => {
  let world: World;
  let parent: string;
  let out: string;
  let files: string[];
  const pages = new Map<string, string>();
  const orgPage = (id: string) => pages.get(join(out, 'orgs', `${safeFileName(id)}.html`))!;
  const appPage = (id: string) => pages.get(join(out, 'app-instances', `${safeFileName(id)}.html`))!;

  beforeAll(async () => {
    world = await hostileWorld({ grafana: 'https://grafana.example/explore?left={query}', tempo: 'https://tempo.example/trace/{trace_id}' });
    // Two USD projects for one tenant, one of them hostile, so its page draws a money-by-project chart.
    await insertViolations(world.db, [
      { invariant_id: 'usage.unbilled_closed', severity: 'error', entity_type: 'usage_record', entity_id: 'ur_chart', org_id: HOSTILE.script, project_id: HOSTILE_PROJECT, amount_minor: 5000, currency: 'USD', detail: '{}' },
    ]);
    parent = await mkdtemp(join(tmpdir(), 'recon-report-'));
    out = join(parent, 'out');
    ({ files } = await renderReports({ engine: world.engine, findings: world.findings, config: world.config }, out, { maxRows: 50 }));
    for (const f of files) pages.set(f, await readFile(f, 'utf8'));
  });

  afterAll(async () => {
    world?.db.close();
    if (parent) await rm(parent, { recursive: true, force: true });
  });

  test('writes only inside outDir: the index, one page per tenant and per app instance, all names unique', async () => {
    expect(await readdir(parent)).toEqual(['out']);
    expect(await walk(out)).toEqual([...files].sort());
    for (const f of files) expect(relative(out, f).split(sep)[0]).toMatch(/^(index\.html|no-tenant\.html|orgs|app-instances|invariants)$/);
    // one page per failing invariant, each naming the tenants it affects
    const invariantPages = files.filter((f) => f.includes(`${sep}invariants${sep}`)).map((f) => basename(f)).sort();
    expect(invariantPages).toEqual(world.findings.invariants.filter((r) => r.violations + r.waived_violations > 0).map((r) => `${r.id}.html`).sort());
    const orgFiles = files.filter((f) => f.includes(`${sep}orgs${sep}`));
    expect(orgFiles).toHaveLength(world.orgs.length);
    expect(new Set(orgFiles.map((f) => basename(f).toLowerCase())).size).toBe(world.orgs.length);
    for (const id of world.orgs) expect(pages.has(join(out, 'orgs', `${safeFileName(id)}.html`)), id).toBe(true);
    expect(files.filter((f) => f.includes(`${sep}app-instances${sep}`))).toEqual([join(out, 'app-instances', `${safeFileName(HOSTILE_APP)}.html`)]);
  });

  test('no data value becomes markup', () => {
    for (const [file, html] of pages) {
      const t = tags(html);
      const scripts = t.filter((x) => x.name === 'script');
      // Only the one hashed filter script, on pages with a filter box.
      expect(scripts.length, file).toBeLessThanOrEqual(1);
      expect(t.filter((x) => ['img', 'iframe', 'object', 'embed', 'b', 'base', 'form'].includes(x.name)), file).toEqual([]);
      expect(t.filter((x) => x.attrs.some((a) => a.startsWith('on') || a === 'style' || a === 'src')), file).toEqual([]);
      for (const m of html.matchAll(/<svg[\s\S]*?<\/svg>/g)) expect(() => assertSafeSvg(m[0])).not.toThrow();
    }
    const index = pages.get(join(out, 'index.html'))!;
    expect(index).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(index).toContain('&#34;&gt;&lt;img src=x onerror=alert(1)&gt;'); // ejs escapes " as &#34;
    expect(index).not.toContain('<script>alert(1)');
  });

  test('names still read right, in headings, tables and links', () => {
    const index = pages.get(join(out, 'index.html'))!;
    const t = text(index);
    for (const id of [HOSTILE.script, HOSTILE.img, HOSTILE.traversal, HOSTILE.unicode, HOSTILE.caseA, HOSTILE.caseB, HOSTILE.punctA, HOSTILE.punctB, HOSTILE.absolute]) {
      expect(t, id).toContain(` ${id} `);
    }
    expect(index).toContain(`href="orgs/${safeFileName(HOSTILE.unicode)}.html">Zürich-公司</a>`);
    expect(t).toContain('(empty id)');
    expect(text(orgPage(HOSTILE.unicode))).toContain('Tenant Zürich-公司');
    expect(text(orgPage(HOSTILE.script))).toContain(`Tenant ${HOSTILE.script}`);
    expect(text(appPage(HOSTILE_APP))).toContain(`App instance ${HOSTILE_APP}`);
    // A 3,000-character id: shortened in tables and the heading, in full under the heading.
    const long = orgPage(HOSTILE.long);
    expect(text(long)).toContain(`Full id (${HOSTILE.long.length} characters): ${HOSTILE.long}`);
    expect(text(index)).toContain(`(${HOSTILE.long.length} characters)`);
    expect(text(index)).not.toContain(HOSTILE.long);
  });

  test('violation tables are bounded, with "N more — see violations.csv"', () => {
    const html = orgPage(BUSY_ORG);
    const start = html.indexOf('id="inv-ledger-duplicate_credit');
    const section = html.slice(start, html.indexOf('<section class="invariant', start));
    expect(section.match(/<td class="entity"/g)?.length).toBe(50);
    // the most money at stake first: amounts are 100 + i, so 119 … 070 are listed, 069 … 000 are not
    expect(section).toContain('>ps_busy_119<');
    expect(section).toContain('>ps_busy_070<');
    expect(section).not.toContain('>ps_busy_069<');
    expect(text(section)).toContain(`${BUSY_COUNT - 50} more — see violations.csv`);
    expect(section).toContain('href="../violations.csv"');
    expect(text(section)).toContain(`${BUSY_COUNT} open violations`);
  });

  test('a tenant page: cards by severity and money split, sections with runbook, impact, aging', () => {
    const t = text(orgPage(HOSTILE.unicode));
    expect(t).toMatch(/Error violations 2 Warnings 0 Waived 0 Failing invariants 2/);
    // debit_mismatch with debited 1300 > accrued 1000: an over-charge of EUR 3.00
    expect(t).toContain(
      'Money at stake, EUR EUR 3.00 Each money movement counted once (1 movement). Errors EUR 3.00 Warnings only EUR 0.00 ' +
        'Per invariant (overlapping): EUR 3.00 One defect is priced by every invariant that sees it, so these add up to more than the total. ' +
        'Unbilled EUR 0.00 Over-charged EUR 3.00 Under-charged EUR 0.00 Duplicated credit EUR 0.00',
    );
    expect(t).toContain('Money at stake, USD USD 10.06 Each money movement counted once (1 movement). Errors USD 10.06');
    expect(t).toContain('Runbook step:');
    expect(t).toContain('Open items by age');
    expect(t).toMatch(/open payment session 1–7d 1 EUR 25\.00/);
    expect(t).toMatch(/open usage < 1h 1 USD 0\.50/);
    expect(t).toMatch(/open usage > 7d 1 USD 70\.00/);
    const org = orgPage(HOSTILE.unicode);
    expect(org).toContain(`href="../app-instances/${safeFileName(HOSTILE_APP)}.html"`);
  });

  test('the waived violation stays visible with its reason, and counts as waived', () => {
    const t = text(orgPage('org_a'));
    expect(t).toContain('waived known <lag> during migration');
    expect(t).toMatch(/Waived 1/);
  });

  test('every correlation or trace id gets the runbook LogQL, escaped, and configured links', () => {
    const html = orgPage(HOSTILE.script);
    const t = text(html);
    expect(t).toContain(logqlFor('correlation_id', HOSTILE_CORRELATION));
    expect(t).toContain('{service=~"gpuaas-(api|billing-worker|app-runtime-worker|webhook-worker)"} | json | correlation_id="c\\"} |= \\"x\\\\"');
    expect(t).toContain(logqlFor('trace_id', 'trace-0'));
    const grafana = `https://grafana.example/explore?left=${encodeURIComponent(logqlFor('correlation_id', HOSTILE_CORRELATION))}`;
    expect(html).toContain(`href="${grafana.replace(/&/g, '&amp;')}&amp;from=`);
    expect(html).toContain('href="https://tempo.example/trace/trace-0?from=');
  });

  test('charts are inline SVG built from data, with hostile labels escaped', () => {
    const html = orgPage(HOSTILE.script);
    const svgs = [...html.matchAll(/<svg[\s\S]*?<\/svg>/g)].map((m) => m[0]);
    expect(svgs.length).toBeGreaterThanOrEqual(2);
    const money = svgs.find((s) => s.includes('Money at stake by project'))!;
    expect(money).toContain('&lt;script&gt;proj');
    // ids are unique across the page's charts
    const ids = [...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]);
    expect(new Set(ids).size).toBe(ids.length);
  });

  test('a strict CSP allows exactly the inline style and script by hash', () => {
    const index = pages.get(join(out, 'index.html'))!;
    const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/.exec(index)![1]!.replace(/&#39;/g, "'");
    const style = /<style>([\s\S]*?)<\/style>/.exec(index)![1]!;
    const script = /<script>([\s\S]*?)<\/script>/.exec(index)![1]!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain(`style-src ${sha(style)}`);
    expect(csp).toContain(`script-src ${sha(script)}`);
    expect(csp).not.toContain('unsafe');
    const tenant = orgPage(HOSTILE.unicode);
    expect(tenant).not.toContain('<script');
    expect(tenant).toContain("script-src &#39;none&#39;");
    for (const html of pages.values()) {
      expect(html).not.toMatch(/(src|href)="(https?:)?\/\/(?!grafana\.example|tempo\.example)/);
      expect(html).not.toMatch(/<link\b/);
    }
  });

  test('an app-instance page: attribution, usage by source and component kind, ledger backing', () => {
    const t = text(appPage(HOSTILE_APP));
    expect(t).toContain(`org ${HOSTILE.script} project p_x app type ray operating_mode dedicated control_plane_scope instance runtime_backend ray status running`);
    expect(t).toMatch(/app_runtime control plane EUR 1 1 EUR 1\.20/);
    expect(t).toMatch(/app_runtime workload EUR 1 0 EUR 10\.00/);
    expect(t).toContain('2 usage rows: 1 with an effective usage_debit, 0 closed with a cost and none, 1 still open.');
    expect(t).toMatch(/ur_app_x2 worker workload .* EUR 10\.00 1 EUR 13\.00 le_x1 amount differs/);
    expect(appPage(HOSTILE_APP)).toContain(`href="../orgs/${safeFileName(HOSTILE.script)}.html"`);
  });

  test('html-validate finds no error on the index, a tenant and an app-instance page', async () => {
    const hv = new HtmlValidate({ extends: ['html-validate:recommended'] });
    for (const file of [join(out, 'index.html'), join(out, 'orgs', `${safeFileName(HOSTILE.unicode)}.html`), join(out, 'orgs', `${safeFileName(BUSY_ORG)}.html`), join(out, 'app-instances', `${safeFileName(HOSTILE_APP)}.html`)]) {
      const report = await hv.validateString(pages.get(file)!, file);
      const messages = report.results.flatMap((r) => r.messages.map((m) => `${m.ruleId}: ${m.message}`));
      expect(messages, file).toEqual([]);
      expect(report.valid).toBe(true);
    }
  });

  test('with more tenants than the index shows, ranked list pages reach every tenant', async () => {
    const out2 = join(parent, 'paged');
    const r = await renderReports({ engine: world.engine, findings: world.findings, config: world.config }, out2, { indexRows: 3, listPageSize: 5 });
    const index = await readFile(join(out2, 'index.html'), 'utf8');
    expect(text(index)).toMatch(new RegExp(`${world.orgs.length - 3} more tenants — see all tenants, ranked, page by page ?; violations.csv has every violation`));
    const lists = r.files.filter((f) => f.includes(`${sep}lists${sep}tenants-`)).sort();
    expect(lists.map((f) => basename(f))).toEqual(['tenants-1.html', 'tenants-2.html', 'tenants-3.html']);
    const linked = new Set<string>();
    for (const f of lists) {
      const html = await readFile(f, 'utf8');
      for (const m of html.matchAll(/href="\.\.\/orgs\/([^"]+)"/g)) linked.add(m[1]!);
    }
    expect([...linked].sort()).toEqual(world.orgs.map((id) => `${safeFileName(id)}.html`).sort());
    const hv = new HtmlValidate({ extends: ['html-validate:recommended'] });
    expect((await hv.validateString(await readFile(lists[1]!, 'utf8'), lists[1]!)).valid).toBe(true);
  });
});

describe('renderReports over a drifted fixture audit', () => {
  test('ledger_drift: the tenant money card splits unbilled, over- and under-charged as the catalog reports them', async () => {
    const run = await auditExports({ exportsDir: join(import.meta.dirname, '..', 'fixtures', 'ledger_drift') });
    const dir = await mkdtemp(join(tmpdir(), 'recon-report-fx-'));
    try {
      await renderReports({ engine: run.engine, findings: run.findings, config: run.config.config }, dir);
      const t = text(await readFile(join(dir, 'orgs', `${safeFileName('org_c')}.html`), 'utf8'));
      // 12 money movements: ur_c1's double debit is one movement although duplicate_debit and
      // debit_mismatch both price it (USD 10.00 each), so the total is USD 10.00 below the
      // per-invariant sum; the warnings (unaudited adjustments le_c11, le_c12) are apart.
      expect(t).toContain(
        'Money at stake, USD USD 78.50 Each money movement counted once (12 movements). Errors USD 73.50 Warnings only USD 5.00 ' +
          'Per invariant (overlapping): USD 88.50',
      );
      expect(t).toContain('Unbilled USD 10.00 Over-charged USD 12.00 Under-charged USD 10.00 Duplicated credit USD 0.00 Other findings USD 56.50');
      const index = text(await readFile(join(dir, 'index.html'), 'utf8'));
      expect(index).toContain(`Error violations ${run.findings.totals.error_violations} `);
      expect(index).toContain('Money at stake, USD USD 78.50 Errors USD 73.50 Warnings only USD 5.00 Per invariant (overlapping) USD 88.50');
      expect(run.findings.totals).toMatchObject({
        amount_minor_by_currency: { USD: 7850n },
        error_amount_minor_by_currency: { USD: 7350n },
        warn_amount_minor_by_currency: { USD: 500n },
        overlapping_amount_minor_by_currency: { USD: 8850n },
        money_items: 12,
      });
    } finally {
      run.db.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
