import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, test, vi } from 'vitest';
import { main } from '../src/cli/main.ts';
import { runIncident, type IncidentResult } from '../src/incident/incident.ts';
import { pagePolicy } from '../src/report/page.ts';
import { fixture } from './helpers/audits.ts';
import { copyFixture, tempDir } from './helpers/exports.ts';

/**
 * fixtures/incident_one_correlation: one incident of org_c (corr-inc / trace-inc) spanning an
 * allocation, its usage, a retried debit, a replayed payment credit and events (README.md).
 */
const FIXTURE = fixture('incident_one_correlation');

let byCorrelation: IncidentResult;
let byTrace: IncidentResult;
let out: string;

beforeAll(async () => {
  out = await tempDir('recon-incident-');
  const config = path.join(out, 'recon.config.json');
  await writeFile(
    config,
    JSON.stringify({
      links: {
        grafana: 'https://grafana.example/explore?query={query}&from={from_ms}&to={to_ms}',
        tempo: 'https://tempo.example/trace/{trace_id}?start={from_iso}&end={to_iso}',
      },
    }),
  );
  [byCorrelation, byTrace] = await Promise.all([
    runIncident({ exportsDir: FIXTURE, outDir: path.join(out, 'corr'), correlationIds: ['corr-inc'], traceIds: [], configPath: config }),
    runIncident({ exportsDir: FIXTURE, outDir: path.join(out, 'trace'), correlationIds: ['corr-inc'], traceIds: ['trace-inc'], configPath: config }),
  ]);
});

describe('recon incident on one correlation id', () => {
  test('the timeline holds every row carrying the id, allocation, events, usage, ledger and payment, in time order', () => {
    const t = byCorrelation.model.timeline;
    expect(t.map((e) => `${e.at} ${e.table} ${e.id} ${e.event}`)).toEqual([
      '2026-11-20T08:50:00Z payment_sessions ps_9 payment session created',
      '2026-11-20T08:55:00Z events ev_22 payments.balance_credited',
      '2026-11-20T08:55:00Z ledger_entries le_11 ledger payment_credit',
      '2026-11-20T08:55:00Z payment_sessions ps_9 payment session completed',
      '2026-11-20T08:56:00Z ledger_entries le_12 ledger payment_credit',
      '2026-11-20T09:00:00Z allocations alloc_9 allocation created',
      '2026-11-20T09:05:00Z allocations alloc_9 allocation activated',
      '2026-11-20T09:05:00Z events ev_20 provisioning.active',
      '2026-11-20T09:05:00Z usage_records ur_9 usage started',
      '2026-11-20T10:05:00Z allocations alloc_9 allocation released',
      '2026-11-20T10:05:00Z allocations alloc_9 allocation updated (status released)',
      '2026-11-20T10:05:00Z events ev_21 provisioning.releasing.completed',
      '2026-11-20T10:05:00Z usage_records ur_9 usage billed through',
      '2026-11-20T10:05:00Z usage_records ur_9 usage ended',
      '2026-11-20T10:06:00Z ledger_entries le_9 ledger usage_debit',
    ]);
    expect(t.find((e) => e.id === 'ur_9')!.fields).toContainEqual({ name: 'accrued cost', value: 'USD 60.00' });
    // With the trace id too, the retried debit (another correlation id, same trace) joins it.
    expect(byTrace.model.timeline.map((e) => e.id)).toContain('le_10');
    expect(byTrace.model.timeline).toHaveLength(16);
  });

  test('its violations, including the retried debit reached through its usage record; nothing of other tenants', () => {
    const ids = byCorrelation.model.violations.map((v) => `${v.invariant_id} ${v.entity_id} ${v.owning_layer}`);
    expect(ids).toEqual([
      'ledger.duplicate_credit ps_9 payments_webhook',
      'ledger.duplicate_debit ur_9 billing_worker',
      'ledger.duplicate_idempotency_key le_10 billing_worker',
      'ledger.duplicate_idempotency_key le_9 billing_worker',
      'usage.debit_mismatch ur_9 billing_worker',
    ]);
    expect(byCorrelation.exitCode).toBe(1);
    expect(byCorrelation.findings.scope).toMatchObject({ correlation_ids: ['corr-inc'] });
  });

  test('blast radius, money each movement once, follow-ups and what to tell the customer', () => {
    const m = byCorrelation.model;
    expect(m.blast).toMatchObject({ class: 'tenant', tenants_affected: 1, violations: 5 });
    // ur_9 is priced by three checks at USD 60.00 and ps_9 at USD 200.00: USD 260.00, not 440.00.
    expect(m.money).toEqual({ error: { USD: 26000n }, warn: {} });
    expect(m.followUps.map((g) => [g.layer, g.tasks.flatMap((t) => t.ids)])).toEqual([
      ['billing_worker', ['ur_9', 'ur_9', 'le_10', 'le_9']],
      ['payments_webhook', ['ps_9']],
    ]);
    expect(m.customers).toEqual([
      {
        org: 'org_c',
        more: 0,
        lines: [
          { direction: 'credit', text: 'A payment on 2026-11-20 08:50:00 UTC was credited to your balance twice. Extra credit: USD 200.00.' },
          {
            direction: 'overcharged',
            text: 'Usage of GPU allocation alloc_9 from 2026-11-20 09:05:00 UTC to 2026-11-20 10:05:00 UTC was charged twice. Extra charge: USD 60.00.',
          },
        ],
      },
    ]);
  });

  test('LogQL, logcli and links carry the incident time range (15 minutes either side)', () => {
    const m = byTrace.model;
    expect(m.range).toEqual({ from: '2026-11-20T08:35:00Z', to: '2026-11-20T10:22:00Z' });
    const corr = m.logs.find((l) => l.kind === 'correlation_id')!;
    expect(corr.logql).toBe('{service=~"gpuaas-(api|billing-worker|app-runtime-worker|webhook-worker)"} | json | correlation_id="corr-inc"');
    expect(corr.logcli).toBe(`logcli query --from=2026-11-20T08:35:00Z --to=2026-11-20T10:22:00Z '${corr.logql}'`);
    expect(corr.links.map((l) => l.label)).toEqual(['Grafana']);
    expect(corr.links[0]!.href).toBe(
      `https://grafana.example/explore?query=${encodeURIComponent(corr.logql)}&from=${Date.parse('2026-11-20T08:35:00Z')}&to=${Date.parse('2026-11-20T10:22:00Z')}`,
    );
    const trace = m.logs.find((l) => l.kind === 'trace_id')!;
    expect(trace.links).toContainEqual({ label: 'Tempo', href: 'https://tempo.example/trace/trace-inc?start=2026-11-20T08%3A35%3A00Z&end=2026-11-20T10%3A22%3A00Z' });
  });

  test('writes a self-contained page under the reports\' CSP, its Markdown twin and the narrowed audit outputs', async () => {
    const dir = path.join(out, 'corr');
    expect((await readdir(dir)).sort()).toEqual(
      ['customers', 'findings.json', 'incident.html', 'incident.md', 'summary.md', 'violations.csv', 'violations.parquet'].sort(),
    );
    const html = await readFile(path.join(dir, 'incident.html'), 'utf8');
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="${pagePolicy(false).replaceAll("'", '&#39;')}">`);
    expect(html).not.toMatch(/<script|<link|src=/);
    const md = await readFile(path.join(dir, 'incident.md'), 'utf8');
    expect(md.split('\n').slice(0, 5)).toEqual([
      '# Incident correlation corr-inc',
      '',
      'Audit as of 2026-11-20 11:50:00 UTC; rows from 2026-11-20 08:50:00 UTC to 2026-11-20 10:06:00 UTC (logs searched 2026-11-20 08:35:00 UTC – 2026-11-20 10:21:00 UTC).',
      '',
      '**Blast radius: one tenant** (tenant): one tenant; 1 violation(s) are tenant-wide (no project: payments, balances, credits).',
    ]);
    for (const heading of ['## Money at stake', '## Timeline (15 entries)', '## Violations (5)', '## Logs and traces', '## Follow-up tasks by owning layer', '## What to tell the customer']) {
      expect(md).toContain(`\n${heading}\n`);
    }
    expect(md).toContain('- errors: USD 260.00');
  });

  test('an id in the data is escaped on the page; an id found nowhere is exit 2 with did you mean', async () => {
    const hostile = 'corr-<img src=x onerror=alert(1)>';
    const dir = await copyFixture(FIXTURE);
    for (const f of await readdir(dir)) {
      if (f.endsWith('.csv')) await writeFile(path.join(dir, f), (await readFile(path.join(dir, f), 'utf8')).replaceAll('corr-inc', hostile));
    }
    const page = path.join(out, 'hostile');
    await runIncident({ exportsDir: dir, outDir: page, correlationIds: [hostile], traceIds: [] });
    const html = await readFile(path.join(page, 'incident.html'), 'utf8');
    expect(html).not.toContain('<img');
    expect(html).toContain('corr-&lt;img src=x onerror=alert(1)&gt;');

    const errors: string[] = [];
    const err = vi.spyOn(console, 'error').mockImplementation((m: string) => void errors.push(m));
    try {
      expect(await main(['incident', '--correlation-id', 'corr-INC', '--exports', FIXTURE, '--out', path.join(out, 'typo')])).toBe(2);
      expect(await main(['incident', '--exports', FIXTURE, '--out', path.join(out, 'none')])).toBe(2);
    } finally {
      err.mockRestore();
    }
    expect(errors).toEqual([
      'recon: recon incident: --correlation-id "corr-INC" matches nothing in the exports; did you mean "corr-inc"?',
      'recon: recon incident: give --correlation-id ID and/or --trace-id ID (see recon incident --help)',
    ]);
  });
});
