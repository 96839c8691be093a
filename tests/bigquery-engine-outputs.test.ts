import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { auditExports } from '../src/audit.ts';
import { CATALOG } from '../src/catalog/index.ts';
import { main } from '../src/cli/main.ts';
import { diffCommand, snapshotCommand } from '../src/cli/snapshot.ts';
import { Db } from '../src/db.ts';
import { contractWarehouse, DATASET_PLACEHOLDER, invariantJob } from '../src/engine/bigquery/index.ts';
import { bigquery } from '../src/dialect/bigquery.ts';
import { startLocalBigQuery, type LocalBigQuery } from '../src/sources/bigquery-local.ts';
import type { BigQuerySource } from '../src/sources/bigquery.ts';
import { copyFixture, tempDir } from './helpers/exports.ts';
import { useZetaSql } from './helpers/zetasql.ts';

/**
 * `--engine bigquery`'s jobs, errors and outputs (tests/bigquery-engine.test.ts holds it to the
 * DuckDB engine on every fixture): the catalog as GoogleSQL query jobs, run by the repository's BigQuery
 * endpoint on 127.0.0.1 in ZetaSQL (BigQuery's own SQL front end, with its reference evaluator),
 * through the real `@google-cloud/bigquery` client. Held to `--bigquery` (the same dataset read
 * into DuckDB and audited there), which bigquery.test.ts holds to the files.
 */

process.env['METADATA_SERVER_DETECTION'] = 'none';
delete process.env['BIGQUERY_EMULATOR_HOST'];

const zeta = useZetaSql();
const FIXTURES = path.resolve('fixtures');
function source(bq: LocalBigQuery, extra: Partial<BigQuerySource> = {}): BigQuerySource {
  return { dataset: `${bq.projectId}.${bq.datasetId}`, endpoint: bq.url, retry: { maxRetries: 2, maxRetryDelaySeconds: 0.05 }, ...extra };
}

const serve = (dir: string) => startLocalBigQuery({ exportsDir: dir, zetaSql: zeta.server() });

/** A copy of a fixture served as a dataset, edited through the endpoint's tables; gone after `use`. */
async function withDataset(fixture: string, use: (bq: LocalBigQuery) => Promise<void>): Promise<void> {
  const dir = await copyFixture(path.join(FIXTURES, fixture));
  const bq = await serve(dir);
  try {
    await use(bq);
  } finally {
    await bq.close();
    await rm(dir, { recursive: true, force: true });
  }
}

type Run = Awaited<ReturnType<typeof auditExports>>;

/** The dataset audited in DuckDB (`--bigquery`) and by the engine, side by side; both closed after `use`. */
async function bothWays(bq: LocalBigQuery, use: (read: Run, pushed: Run) => Promise<void>): Promise<void> {
  const [read, pushed] = await Promise.all([auditExports({ bigquery: source(bq) }), auditExports({ bigquery: source(bq), engine: 'bigquery' })]);
  try {
    await use(read, pushed);
  } finally {
    read.db.close();
    pushed.db.close();
  }
}

describe('jobs, money and pages', () => {
  let dir: string;
  let bq: LocalBigQuery;
  const BIG = 9007199254740993n;
  beforeAll(async () => {
    dir = await copyFixture(path.join(FIXTURES, 'ledger_drift'));
    bq = await serve(dir);
    // 2^53 + 1 minor units on a closed usage row nobody debited: the unbilled money at stake.
    await bq.db.run(
      `UPDATE usage_records SET accrued_cost_minor = $big WHERE usage_record_id = (
         SELECT min(usage_record_id) FROM usage_records u WHERE end_time IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM ledger_entries l WHERE l.usage_record_id = u.usage_record_id))`,
      { big: BIG },
    );
  });
  afterAll(async () => {
    await bq.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('INT64 above 2^53 comes back exact, over result pages of two rows; every job is dry-run first, labelled and byte-limited', async () => {
    const before = bq.jobs.length;
    const logged: string[] = [];
    const run = await auditExports({ bigquery: source(bq, { pageRows: 2, maxBytesBilled: 1_000_000_000n, log: (l) => void logged.push(l) }), engine: 'bigquery' });
    try {
      const unbilled = await run.db.all<{ amount_minor: bigint }>(`SELECT amount_minor FROM violations WHERE invariant_id = 'usage.unbilled_closed' AND amount_minor = $big`, { big: BIG });
      expect(unbilled).toEqual([{ amount_minor: BIG }]);
      const jobs = bq.jobs.slice(before);
      const checks = CATALOG.filter((i) => i.needs.every((t) => run.load.tables.has(t))).map((i) => i.id);
      const dry = jobs.filter((j) => j.dryRun).map((j) => j.labels['invariant']);
      expect(dry).toEqual(checks.map((id) => id.replaceAll('.', '_')));
      // Each check ran after every dry run, once, with its settings bound.
      const real = jobs.filter((j) => !j.dryRun && j.labels['invariant']);
      expect(real.map((j) => j.labels['invariant'])).toEqual(checks.map((id) => id.replaceAll('.', '_')));
      const lastDry = jobs.findLastIndex((j) => j.dryRun);
      expect(jobs.findIndex((j) => !j.dryRun && j.labels['invariant'])).toBe(lastDry + 1);
      expect(jobs.every((j) => j.labels['tool'] === 'billing-recon' && j.maximumBytesBilled === '1000000000')).toBe(true);
      expect(real.find((j) => j.labels['invariant'] === 'usage_billing_lag')!.queryParameters.map((p) => p.name).sort()).toEqual([
        'allocation_window_tolerance_minutes', 'as_of', 'billing_lag_minutes', 'control_plane_components', 'read_at',
      ]);
      // Every job that reads a table reads it as of the one instant taken when the engine opened.
      const reading = jobs.filter((j) => j.query.includes('.billing.'));
      expect(reading.every((j) => j.query.includes('FOR SYSTEM_TIME AS OF TIMESTAMP(@read_at)'))).toBe(true);
      expect(new Set(reading.map((j) => j.queryParameters.find((p) => p.name === 'read_at')?.value)).size).toBe(1);
      // Results came back in pages of two rows: more result requests than checks.
      expect(bq.requests.filter((r) => r.startsWith('GET ') && r.includes('/queries/')).length).toBeGreaterThan(real.length);
      expect(logged.at(-1)).toMatch(/^bigquery: the catalog would scan [\d,]+ bytes in total$/);
      expect(logged.filter((l) => / would scan [\d,]+ bytes$/.test(l))).toHaveLength(checks.length);
    } finally {
      run.db.close();
    }
  });

  test('recon explain prints the job the engine submits, with the dataset as a placeholder', () => {
    const inv = CATALOG.find((i) => i.id === 'usage.unbilled_closed')!;
    const job = invariantJob(inv, contractWarehouse(), DATASET_PLACEHOLDER);
    expect(job).toContain('FROM `PROJECT.DATASET.usage_records` FOR SYSTEM_TIME AS OF TIMESTAMP(@read_at))');
    // Only what the query reads: the effective ledger (and the ledger under it), no allocations.
    expect([...job.split('\nSELECT * FROM (\n')[0]!.matchAll(/^(?:WITH )?(\w+) AS \(/gm)].map((m) => m[1])).toEqual(['usage_records', 'ledger_entries', 'recon_reversed_entry_ids', 'effective_ledger_entries']);
    expect(invariantJob(CATALOG.find((i) => i.id === 'usage.billing_lag')!, contractWarehouse(), DATASET_PLACEHOLDER)).toContain(
      'recon_settings AS (SELECT TIMESTAMP(@as_of) AS as_of',
    );
    expect(job).toContain(inv.sql({ tables: new Set(contractWarehouse().map((t) => t.table)), dialect: bigquery }));
  });
});

describe('errors a user meets, each exit 2 with one sentence', () => {
  let bq: LocalBigQuery;
  beforeAll(async () => {
    bq = await serve(path.join(FIXTURES, 'ledger_drift'));
  });
  afterAll(async () => {
    await bq.close();
  });
  const audit = (extra: Partial<BigQuerySource> = {}, dataset?: string) =>
    auditExports({ bigquery: { ...source(bq, extra), ...(dataset ? { dataset } : {}) }, engine: 'bigquery' });

  test('a dataset that does not exist', async () => {
    await expect(audit({}, `${bq.projectId}.nope`)).rejects.toThrow(/^bigquery: dataset local-project\.nope not found/);
  });

  test('permission denied on a query job', async () => {
    bq.failNext('jobs.insert', 'accessDenied');
    await expect(audit()).rejects.toThrow(
      /^bigquery: permission denied on the read instant in local-project\.billing: the account needs roles\/bigquery\.dataViewer on the dataset and roles\/bigquery\.jobUser on the project/,
    );
  });

  test('a job over --max-bytes-billed', async () => {
    await expect(audit({ maxBytesBilled: 1n })).rejects.toThrow(/the query would bill more bytes than --max-bytes-billed allows/);
  });

  test('a rate limit is retried with back-off and the audit goes on; a quota still exceeded after the retries is an error', async () => {
    bq.failNext('jobs.insert', 'rateLimitExceeded', { status: 429 });
    const run = await audit();
    run.db.close();
    bq.failNext('jobs.insert', 'quotaExceeded');
    await expect(audit()).rejects.toThrow(/BigQuery quota or rate limit exceeded/);
  });

  test('a contract column of another type than the checks read, or a required table missing, is refused before anything is billed', async () => {
    await withDataset('ledger_drift', async (typed) => {
      await typed.db.run(`ALTER TABLE ledger_entries ALTER amount_minor TYPE VARCHAR`);
      const jobs = typed.jobs.length;
      await expect(auditExports({ bigquery: source(typed), engine: 'bigquery' })).rejects.toThrow(
        /table local-project\.billing\.ledger_entries: column "amount_minor" is STRING, not INT64; --engine bigquery reads typed columns only/,
      );
      expect(typed.jobs.length).toBe(jobs);
      await typed.db.run(`DROP TABLE ledger_entries`);
      await expect(auditExports({ bigquery: source(typed), engine: 'bigquery' })).rejects.toThrow(
        /^bigquery: dataset local-project\.billing: required table not found: ledger_entries$/,
      );
    });
  });
});

describe('a check whose query fails as it runs', () => {
  test.concurrent('is that check\'s error, as in DuckDB, and the audit goes on', async () => {
    await withDataset('ledger_drift', async (bq) => {
      // Two legal 5e18 debits of one usage row: their sum is beyond INT64 (and BIGINT).
      await bq.db.run(`UPDATE ledger_entries SET amount_minor = 5000000000000000000 WHERE ledger_entry_id IN ('le_c1', 'le_c2')`);
      await bothWays(bq, async (read, pushed) => {
        const errored = (run: Run) => run.findings.invariants.filter((r) => r.error !== undefined).map((r) => r.id);
        expect(errored(read)).toEqual(['usage.debit_mismatch', 'ledger.balance_projection']);
        // BigQuery sums INT64 where DuckDB sums HUGEINT: a sum past 2^63 that DuckDB carries to a
        // money amount in range (ledger.duplicate_debit's) is an error there too, never a wrong amount.
        expect(errored(pushed)).toEqual(['usage.debit_mismatch', 'ledger.duplicate_debit', 'ledger.balance_projection']);
        expect(pushed.findings.invariants.find((r) => r.id === 'usage.debit_mismatch')!.error).toBe(
          'bigquery: usage.debit_mismatch in local-project.billing: BigQuery error 400: int64 overflow',
        );
        expect(pushed.findings.totals.invariants).toBe(read.findings.totals.invariants);
      });
    });
  });
});

describe('every output works on what the engine brings back', () => {
  test.concurrent('a snapshot keeps the same violations and evidence rows as one of the files', async () => {
    const bq = await serve(path.join(FIXTURES, 'incident_one_correlation'));
    const io = { stdout: () => undefined, stderr: () => undefined };
    const work = await tempDir('recon-bq-engine-');
    try {
      const dataset = `${bq.projectId}.${bq.datasetId}`;
      const [pushed, read] = [path.join(work, 'engine'), path.join(work, 'read')];
      expect(await snapshotCommand(['--bigquery', dataset, '--bigquery-endpoint', bq.url, '--engine', 'bigquery', '--label', 'INC-1 before', '--out', pushed], io)).toBe(1);
      expect(await snapshotCommand(['--exports', path.join(FIXTURES, 'incident_one_correlation'), '--label', 'INC-1 before', '--out', read], io)).toBe(1);
      const rows = async (snap: string) => {
        const db = await Db.open();
        try {
          const out: Record<string, unknown[]> = {};
          for (const f of (await readdir(path.join(snap, 'evidence'))).sort()) {
            // Where a row came from is the warehouse's to say; the rows themselves must be the same.
            out[f] = await db.allJson(`SELECT * EXCLUDE (__file, __line) FROM read_parquet($p) ORDER BY ALL`, { p: path.join(snap, 'evidence', f) });
          }
          out['violations'] = await db.allJson(`SELECT * EXCLUDE (detail) FROM read_csv($p, all_varchar = true) ORDER BY ALL`, { p: path.join(snap, 'violations.csv') });
          return out;
        } finally {
          db.close();
        }
      };
      expect(await rows(pushed)).toEqual(await rows(read));
      // The diff reads both kinds alike: the same dataset, nothing introduced, nothing resolved.
      const said: string[] = [];
      const diffOut = path.join(work, 'diff');
      expect(await diffCommand([read, pushed, '--out', diffOut], { stdout: (l) => void said.push(l), stderr: (l) => void said.push(l) })).toBe(0);
      const diff = JSON.parse(await readFile(path.join(diffOut, 'diff.json'), 'utf8')) as { summary: Record<string, number> };
      expect(diff.summary).toMatchObject({ resolved: 0, introduced: 0, not_comparable: 0 });
      expect(diff.summary['persisting']).toBeGreaterThan(0);
    } finally {
      await bq.close();
      await rm(work, { recursive: true, force: true });
    }
  });
});

describe('what the outputs ask beyond the violations, BigQuery answers as DuckDB does over the files', () => {
  test.concurrent('aging, app instances, usage split, ledger backing, movement times, blast-radius counts, timeline', async () => {
    const dir = path.join(FIXTURES, 'app_runtime_misattributed');
    const bq = await serve(dir);
    const [read, pushed] = await Promise.all([auditExports({ exportsDir: dir }), auditExports({ bigquery: source(bq), engine: 'bigquery' })]);
    try {
      const apps = (await read.db.all<{ id: string }>(`SELECT DISTINCT app_instance_id AS id FROM violations WHERE app_instance_id IS NOT NULL ORDER BY 1`)).map((r) => r.id);
      expect(apps.length).toBeGreaterThan(0);
      const answers = async (run: typeof read) => {
        const e = run.engine;
        await e.materialiseAging(run.findings.as_of, 't_aging');
        await e.materialiseMovementTimes('violations', { usage: 't_usage', sessions: 't_sessions', ledger: 't_ledger' });
        await run.db.run(`CREATE OR REPLACE TEMP TABLE snap_corr AS SELECT DISTINCT correlation_id AS id FROM violations WHERE correlation_id IS NOT NULL`);
        await run.db.run(`CREATE OR REPLACE TEMP TABLE snap_trace AS SELECT DISTINCT trace_id AS id FROM violations WHERE trace_id IS NOT NULL`);
        await e.materialiseTimeline();
        const table = (t: string) => run.db.allJson(`SELECT * FROM ${t} ORDER BY ALL`);
        return {
          counts: await e.exportCounts(),
          apps: await e.appInstances(apps),
          split: await e.usageSplit(apps),
          backing: await e.ledgerBacking(apps, 50, 'violations'),
          aging: await table('t_aging'),
          times: [await table('t_usage'), await table('t_sessions'), await table('t_ledger')],
          timeline: await run.db.allJson(`SELECT * EXCLUDE (file, line) FROM snap_timeline ORDER BY ALL`),
        };
      };
      const want = await answers(read);
      expect(want.backing.rows.length).toBeGreaterThan(0);
      expect(want.timeline.length).toBeGreaterThan(0);
      expect(await answers(pushed)).toEqual(want);
    } finally {
      read.db.close();
      pushed.db.close();
      await bq.close();
    }
  });
});

describe('recon audit --engine bigquery writes every output', () => {
  test('findings, violations.csv, junit.xml from the Vitest suite and the same report pages as the files audited in DuckDB', async () => {
    const bq = await serve(path.join(FIXTURES, 'app_runtime_misattributed'));
    const work = await tempDir('recon-bq-engine-cli-');
    const quiet = [vi.spyOn(console, 'log'), vi.spyOn(console, 'error'), vi.spyOn(process.stdout, 'write'), vi.spyOn(process.stderr, 'write')];
    for (const s of quiet) s.mockImplementation((() => true) as never);
    try {
      const [pushed, read] = [path.join(work, 'engine'), path.join(work, 'read')];
      const engineArgs = ['--bigquery', `${bq.projectId}.${bq.datasetId}`, '--bigquery-endpoint', bq.url, '--engine', 'bigquery'];
      expect(await main(['audit', ...engineArgs, '--quiet', '--out', pushed])).toBe(1);
      expect(await main(['audit', '--exports', path.join(FIXTURES, 'app_runtime_misattributed'), '--quiet', '--out', read])).toBe(1);
      for (const s of quiet) s.mockRestore();
      const files = async (dir: string) => (await readdir(dir, { recursive: true })).sort();
      expect(await files(pushed)).toEqual(await files(read));
      const csv = async (dir: string) => {
        const db = await Db.open();
        try {
          return await db.allJson(`SELECT * EXCLUDE (detail) FROM read_csv($p, all_varchar = true) ORDER BY ALL`, { p: path.join(dir, 'violations.csv') });
        } finally {
          db.close();
        }
      };
      expect(await csv(pushed)).toEqual(await csv(read));
      const failures = async (dir: string) =>
        (await readFile(path.join(dir, 'junit.xml'), 'utf8'))
          .split('<testcase ')
          .filter((c) => c.includes('<failure'))
          .map((c) => /^name="([^"]+)"/.exec(c)![1]);
      expect(await failures(pushed)).toEqual(await failures(read));
      expect(await failures(pushed)).toEqual(['contract.invalid_value', 'app_runtime.source_attribution', 'app_runtime.anchor_mismatch']);
    } finally {
      for (const s of quiet) s.mockRestore();
      await bq.close();
      await rm(work, { recursive: true, force: true });
    }
  });
});

describe('a warehouse table without the loaders\' provenance', () => {
  test.concurrent('each copy of a row whose key is null is its own entity, as when the dataset is read into DuckDB', async () => {
    await withDataset('ledger_drift', async (bq) => {
      // Two identical usage rows without a key: two rows that cannot be told apart but by their copy.
      await bq.db.run(`INSERT INTO usage_records SELECT * REPLACE (NULL AS usage_record_id, 'x.csv' AS __file, 0 AS __line)
                       FROM usage_records WHERE end_time IS NOT NULL LIMIT 1`);
      await bq.db.run(`INSERT INTO usage_records SELECT * FROM usage_records WHERE usage_record_id IS NULL`);
      for (const t of bq.tables) {
        await bq.db.run(`ALTER TABLE ${t} DROP COLUMN __file`);
        await bq.db.run(`ALTER TABLE ${t} DROP COLUMN __line`);
      }
      const work = await tempDir('recon-bq-keyless-');
      await bothWays(bq, async (read, pushed) => {
        const rows = (db: Db) =>
          db.all<{ invariant_id: string; entity_id: string }>(
            `SELECT invariant_id, regexp_replace(entity_id, ':[0-9-]+$', ':N') AS entity_id FROM violations ORDER BY ALL`,
          );
        const nullKey = (await rows(pushed.db)).filter((r) => r.entity_id.startsWith('usage_records:'));
        const copy = 'usage_records:bigquery:local-project.billing.usage_records:N';
        expect(nullKey).toEqual([
          { invariant_id: 'contract.invalid_value', entity_id: copy },
          { invariant_id: 'contract.invalid_value', entity_id: copy },
          { invariant_id: 'usage.unbilled_closed', entity_id: copy },
          { invariant_id: 'usage.unbilled_closed', entity_id: copy },
        ]);
        expect(await rows(pushed.db)).toEqual(await rows(read.db));
        // The evidence keeps both copies: a row without a key is found by its line.
        const keyless = async (run: Run, out: string) => {
          await run.engine.writeEvidence(run.scope, out);
          return (await run.db.one<{ n: bigint }>(`SELECT count(*) AS n FROM read_parquet($p) WHERE usage_record_id IS NULL`, {
            p: path.join(out, 'evidence', 'usage_records.parquet'),
          }))!.n;
        };
        expect(await keyless(pushed, path.join(work, 'engine'))).toBe(2n);
        expect(await keyless(read, path.join(work, 'read'))).toBe(2n);
      });
      await rm(work, { recursive: true, force: true });
    });
  });
});

describe('scope in the warehouse', () => {
  test.concurrent('a typo is exit 2 with the nearest values BigQuery holds; a real tenant narrows as in DuckDB', async () => {
    const dir = path.join(FIXTURES, 'ledger_drift');
    const bq = await serve(dir);
    try {
      await expect(auditExports({ bigquery: source(bq), engine: 'bigquery', scope: { orgs: ['org_C'] } })).rejects.toThrow(
        'recon audit: --org "org_C" matches nothing in the exports; did you mean "org_c"?',
      );
      const [files, pushed] = await Promise.all([
        auditExports({ exportsDir: dir, scope: { orgs: ['org_c'] } }),
        auditExports({ bigquery: source(bq), engine: 'bigquery', scope: { orgs: ['org_c'] } }),
      ]);
      try {
        const ids = (run: Run) => run.db.all(`SELECT invariant_id, entity_id FROM violations WHERE invariant_id <> 'contract.rejected_row' ORDER BY ALL`);
        expect((await ids(pushed)).length).toBeGreaterThan(0);
        expect(await ids(pushed)).toEqual(await ids(files));
      } finally {
        files.db.close();
        pushed.db.close();
      }
    } finally {
      await bq.close();
    }
  });
});

/**
 * ledger_drift's violations narrowed to corr-c1's incident (7 of them) and to activity in the window (4,
 * two of them balances, kept whole): what both keep.
 */
const EXPECTED_NARROWED = [
  { invariant_id: 'usage.debit_mismatch', entity_id: 'ur_c3' },
  { invariant_id: 'usage.unbilled_closed', entity_id: 'ur_c4' },
];

describe('a window and an incident, narrowed by what BigQuery says of the rows', () => {
  test('--since/--until and an incident\'s ids keep the violations DuckDB keeps over the files', async () => {
    const dir = path.join(FIXTURES, 'ledger_drift');
    const bq = await serve(dir);
    const narrowing = { window: { since: '2026-11-20T08:30:00Z', until: '2026-11-20T10:30:00Z' }, incident: { correlationIds: ['corr-c1'], traceIds: [] } };
    const [files, pushed] = await Promise.all([auditExports({ exportsDir: dir, ...narrowing }), auditExports({ bigquery: source(bq), engine: 'bigquery', ...narrowing })]);
    try {
      const ids = (run: Run) => run.db.all(`SELECT invariant_id, entity_id FROM violations WHERE invariant_id <> 'contract.rejected_row' ORDER BY ALL`);
      expect(await ids(pushed)).toEqual(await ids(files));
      expect(await ids(files)).toEqual(EXPECTED_NARROWED);
    } finally {
      files.db.close();
      pushed.db.close();
      await bq.close();
    }
  });
});
