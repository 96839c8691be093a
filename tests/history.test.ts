import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { auditExports, type AuditRun } from '../src/audit.ts';
import { parseConfig } from '../src/config.ts';
import { appendHistory, compareWithHistory, newRunId } from '../src/history/history.ts';
import { summaryMarkdown, writeAuditOutputs } from '../src/outputs/files.ts';
import { renderReports } from '../src/report/render.ts';
import { fixture } from './helpers/audits.ts';
import { tempDir } from './helpers/exports.ts';

/**
 * Three nightly runs over fixtures/events_drift, whose payments.failed_reconcile drift is ps_5 and
 * ps_6 and payments.completed_without_credit drift is ps_7. Waivers stand in for the data
 * changing between nights: night 1 waives every failed_reconcile, night 2 only ps_5, night 3
 * none but ps_7's completed_without_credit (as if it had been fixed).
 */
const NIGHTS = [
  { at: '2026-11-21T02:00:00Z', waivers: [{ invariant: 'payments.failed_reconcile', reason: 'incident INC-7' }] },
  { at: '2026-11-22T02:00:00Z', waivers: [{ invariant: 'payments.failed_reconcile', entity_id: 'ps_5', reason: 'refund pending' }] },
  { at: '2026-11-23T02:00:00Z', waivers: [{ invariant: 'payments.completed_without_credit', entity_id: 'ps_7', reason: 'fixed by hand' }] },
];

const runs: AuditRun[] = [];
let history = '';

async function night(i: number, opts: { history?: string; baseline?: string }): Promise<AuditRun> {
  const n = NIGHTS[i]!;
  const run = await auditExports({ exportsDir: fixture('events_drift'), config: parseConfig({ waivers: n.waivers }) });
  run.findings.run_id = newRunId(new Date(n.at));
  run.findings.generated_at = n.at;
  await compareWithHistory(run, { ...opts, trendRuns: 7 });
  return run;
}

beforeAll(async () => {
  history = await tempDir('recon-history-');
  for (let i = 0; i < NIGHTS.length; i++) {
    const run = await night(i, { history, baseline: 'history' });
    await appendHistory(run, history);
    runs.push(run);
  }
});
afterAll(() => runs.forEach((r) => r.db.close()));

const inv = (run: AuditRun, id: string) => run.findings.invariants.find((r) => r.id === id)!;

test('the history holds one pair of Parquet files per run', async () => {
  const ids = runs.map((r) => `${r.findings.run_id}.parquet`);
  expect(await readdir(path.join(history, 'invariants'))).toEqual(ids);
  expect(await readdir(path.join(history, 'violations'))).toEqual(ids);
  const rows = await runs[2]!.db.all<{ run_id: string; n: bigint; money: unknown }>(
    `SELECT run_id, count(*) AS n FROM read_parquet($glob) GROUP BY run_id ORDER BY run_id`,
    { glob: path.join(history, 'invariants', '*.parquet') },
  );
  expect(rows.map((r) => Number(r.n))).toEqual([30, 30, 30]);
  const money = await runs[2]!.db.one<{ m: string }>(
    `SELECT amount_minor_by_currency::VARCHAR AS m FROM read_parquet($file) WHERE invariant_id = 'payments.failed_reconcile'`,
    { file: path.join(history, 'invariants', ids[2]!) },
  );
  expect(money?.m).toBe('{EUR=2000, USD=3000}');
});

test('night 1 has no baseline; night 2 sees ps_6 as new; night 3 sees ps_5 new, ps_6 persisting and ps_7 resolved', () => {
  expect(runs[0]!.findings.baseline).toBeUndefined();
  expect(inv(runs[1]!, 'payments.failed_reconcile').baseline).toEqual({ new: 1, persisting: 0, resolved: 0, new_sample: ['ps_6'] });
  expect(inv(runs[2]!, 'payments.failed_reconcile').baseline).toEqual({ new: 1, persisting: 1, resolved: 0, new_sample: ['ps_5'] });
  expect(inv(runs[2]!, 'payments.completed_without_credit').baseline).toEqual({ new: 0, persisting: 0, resolved: 1, new_sample: [] });
  expect(runs[2]!.findings.baseline).toEqual({ source: 'history', run_id: runs[1]!.findings.run_id, as_of: runs[1]!.findings.as_of });
  expect(runs[2]!.findings.previous_run?.invariants['payments.failed_reconcile']).toEqual({ status: 'fail', violations: 1 });
});

test('a trend per invariant over the runs, this one last, also in summary.md', () => {
  expect(inv(runs[2]!, 'payments.failed_reconcile').trend?.map((p) => p.violations)).toEqual([0, 1, 2]);
  expect(inv(runs[2]!, 'payments.completed_without_credit').trend?.map((p) => p.violations)).toEqual([1, 1, 0]);
  const md = summaryMarkdown(runs[2]!.findings);
  expect(md).toContain('**1 new**, 5 persisting, 1 resolved');
  expect(md).toMatch(/\| FAIL \| `payments.failed_reconcile` [^|]+\| error \| 2 \| 1 \| 1 \| 0 → 1 → 2 \| EUR 20.00, USD 30.00 \|/);
});

test('the HTML index shows new vs persisting and the trend', async () => {
  const dir = await tempDir('recon-history-report-');
  await renderReports({ engine: runs[2]!.engine, findings: runs[2]!.findings, config: runs[2]!.config.config }, dir);
  const html = await readFile(path.join(dir, 'index.html'), 'utf8');
  expect(html).toContain('1 new, 1 persisting, 0 resolved since the baseline');
  expect(html).toContain('trend over the last 3 runs: 0 → 1 → 2');
});

test('--baseline DIR compares with an earlier audit output folder', async () => {
  const dir = await tempDir('recon-baseline-');
  await writeAuditOutputs(runs[1]!, dir);
  const again = await night(2, { baseline: dir });
  try {
    expect(inv(again, 'payments.failed_reconcile').baseline).toEqual({ new: 1, persisting: 1, resolved: 0, new_sample: ['ps_5'] });
    expect(again.findings.baseline?.source).toBe(dir);
  } finally {
    again.db.close();
  }
});
