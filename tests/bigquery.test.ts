import { readdirSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { parse } from 'csv-parse/sync';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { auditExports } from '../src/audit.ts';
import { startLocalBigQuery, type LocalBigQuery } from '../src/sources/bigquery-local.ts';
import { snapshotCommand, verifyCommand } from '../src/cli/snapshot.ts';
import { Db } from '../src/db.ts';
import type { BigQuerySource } from '../src/sources/bigquery.ts';
import { copyFixture, editFile, tempDir } from './helpers/exports.ts';
import { useZetaSql } from './helpers/zetasql.ts';

/**
 * `--bigquery` through the real `@google-cloud/bigquery` client, against the repository's own
 * BigQuery-compatible endpoint on 127.0.0.1 (src/sources/bigquery-local.ts): nothing leaves the machine.
 */

// No test may ever look for Google's metadata server or credentials on this machine.
process.env['METADATA_SERVER_DETECTION'] = 'none';
delete process.env['BIGQUERY_EMULATOR_HOST'];

// One ZetaSQL server for the file, shared by every endpoint it starts.
const zeta = useZetaSql();
const serve = (exportsDir: string) => startLocalBigQuery({ exportsDir, zetaSql: zeta.server() });

const FIXTURES = path.resolve('fixtures');
const FIXTURE_NAMES = readdirSync(FIXTURES, { withFileTypes: true })
  .filter((e) => e.isDirectory() && e.name !== 'remediation')
  .map((e) => e.name);

/**
 * Every violation, in a fixed order, as comparable text (bigints and all). Where a row came
 * from (`file`, `line`, `locations` in the detail) differs by nature between a file and a
 * table, so it is left out; everything else must be identical.
 */
async function violationsOf(db: Db): Promise<string[]> {
  const rows = await db.allJson<Record<string, unknown>>(
    `SELECT * EXCLUDE (detail), detail::VARCHAR AS detail FROM violations
     WHERE invariant_id <> 'contract.rejected_row' ORDER BY invariant_id, entity_id`,
  );
  return rows.map((r) => {
    const detail = JSON.parse(String(r['detail'] ?? 'null')) as Record<string, unknown> | null;
    if (detail) for (const k of ['file', 'line', 'locations']) delete detail[k];
    return JSON.stringify({ ...r, detail });
  });
}

function source(bq: LocalBigQuery, extra: Partial<BigQuerySource> = {}): BigQuerySource {
  return { dataset: `${bq.projectId}.${bq.datasetId}`, endpoint: bq.url, retry: { maxRetries: 2, maxRetryDelaySeconds: 0.05 }, ...extra };
}

async function auditBigQuery(bq: LocalBigQuery, extra: Partial<BigQuerySource> = {}) {
  return auditExports({ bigquery: source(bq, extra) });
}

interface Expected {
  violations: Array<{ invariant_id: string; entity_id: string }>;
}

/**
 * The fixtures that carry every kind of drift, audited both ways and compared column by column
 * (scope, money, detail); every other fixture is compared with its expected.json, which the
 * file audit is held to in fixtures.test.ts. Each audit costs seconds on the 2-core machine.
 */
const FULLY_COMPARED = new Set(['demo', 'ledger_drift', 'app_runtime_misattributed']);

describe('--bigquery reads the same tables as the files, and audits them the same', () => {
  test.concurrent.each(FIXTURE_NAMES)('%s', async (name) => {
    const dir = path.join(FIXTURES, name);
    const bq = await serve(dir);
    const warehouse = await auditBigQuery(bq);
    try {
      expect(warehouse.findings.inputs.map((i) => [i.table, i.source, i.format])).toEqual(
        bq.tables.map((t) => [t, `bigquery:${bq.projectId}.${bq.datasetId}.${t}`, 'bigquery']),
      );
      // A typed warehouse column cannot hold an unreadable value: every row arrives typed.
      expect(warehouse.findings.inputs.every((i) => i.rejected_rows === 0)).toBe(true);
      if (FULLY_COMPARED.has(name)) {
        const files = await auditExports({ exportsDir: dir });
        try {
          expect(await violationsOf(warehouse.db)).toEqual(await violationsOf(files.db));
          expect(warehouse.findings.as_of).toBe(files.findings.as_of);
        } finally {
          files.db.close();
        }
      } else {
        const expected = JSON.parse(await readFile(path.join(dir, 'expected.json'), 'utf8')) as Expected;
        const got = await warehouse.db.all<{ invariant_id: string; entity_id: string }>(
          `SELECT invariant_id, entity_id FROM violations WHERE invariant_id <> 'contract.rejected_row' ORDER BY ALL`,
        );
        const want = expected.violations
          .filter((v) => v.invariant_id !== 'contract.rejected_row')
          .sort((a, b) => a.invariant_id.localeCompare(b.invariant_id) || (a.entity_id < b.entity_id ? -1 : a.entity_id > b.entity_id ? 1 : 0));
        expect(got.map((v) => ({ ...v }))).toEqual(want);
      }
    } finally {
      warehouse.db.close();
      await bq.close();
    }
  });
});

describe('values survive exactly, in pages', () => {
  let dir: string;
  let bq: LocalBigQuery;
  beforeAll(async () => {
    dir = await copyFixture();
    // 2^53 + 1 minor units, and a timestamp with microseconds: a JS number would lose both.
    await editFile(dir, 'usage_records.csv', (t) => {
      const [header, first, ...rest] = t.split('\n');
      const cols = header!.split(',');
      const cells = first!.split(',');
      cells[cols.indexOf('accrued_cost_minor')] = '9007199254740993';
      cells[cols.indexOf('start_time')] = '2026-11-20T01:02:03.123457Z';
      return [header, cells.join(','), ...rest].join('\n');
    });
    bq = await serve(dir);
  });
  afterAll(async () => {
    await bq.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('INT64 above 2^53 and microsecond timestamps arrive unchanged, over many result pages', async () => {
    const files = await auditExports({ exportsDir: dir });
    const before = bq.requests.length;
    const run = await auditBigQuery(bq, { pageRows: 3 });
    try {
      const q = `SELECT accrued_cost_minor, strftime(start_time, '%Y-%m-%dT%H:%M:%S.%fZ') AS start_time FROM usage_records ORDER BY accrued_cost_minor DESC LIMIT 1`;
      expect(await run.db.one(q)).toEqual({ accrued_cost_minor: 9007199254740993n, start_time: '2026-11-20T01:02:03.123457Z' });
      expect(await violationsOf(run.db)).toEqual(await violationsOf(files.db));
      const usageRows = run.findings.inputs.find((i) => i.table === 'usage_records')!.rows;
      const pages = bq.requests.slice(before).filter((r) => r.startsWith('GET ') && r.includes('/queries/'));
      // Every table in pages of three rows: at least one request per page of every table.
      expect(pages.length).toBeGreaterThanOrEqual(Math.ceil(usageRows / 3));
      expect(usageRows).toBe(files.findings.inputs.find((i) => i.table === 'usage_records')!.rows);
    } finally {
      files.db.close();
      run.db.close();
    }
  });

  test('a dry run of every table comes first; every job carries labels and the byte limit', async () => {
    const before = bq.jobs.length;
    // BigQuery bills at least 10 MiB a table: a limit below that refuses every query.
    const run = await auditBigQuery(bq, { maxBytesBilled: 100_000_000n });
    run.db.close();
    const jobs = bq.jobs.slice(before);
    expect(jobs.map((j) => j.dryRun)).toEqual([...bq.tables.map(() => true), ...bq.tables.map(() => false)]);
    expect(jobs.every((j) => j.maximumBytesBilled === '100000000')).toBe(true);
    expect(jobs.map((j) => j.labels)).toEqual([...bq.tables, ...bq.tables].map((t) => ({ tool: 'billing-recon', table: t })));
  });

  test('a rate limit BigQuery calls retryable is retried with back-off, then the audit goes on', async () => {
    bq.faults.push({ match: /^GET \/projects\/[^/]+\/datasets\/[^/]+$/, status: 429, reason: 'rateLimitExceeded', message: 'Exceeded rate limits', times: 1 });
    const before = bq.requests.length;
    const run = await auditBigQuery(bq);
    run.db.close();
    expect(bq.requests.slice(before, before + 2)).toEqual([
      `GET /projects/${bq.projectId}/datasets/${bq.datasetId}`,
      `GET /projects/${bq.projectId}/datasets/${bq.datasetId}`,
    ]);
  });
});

describe('errors a user will meet say what to do, and stop the audit (exit 2)', () => {
  let bq: LocalBigQuery;
  beforeAll(async () => {
    bq = await serve(path.join(FIXTURES, 'clean'));
  });
  afterAll(() => bq.close());

  test('dataset not found', async () => {
    await expect(auditExports({ bigquery: { ...source(bq), dataset: `${bq.projectId}.nope` } })).rejects.toThrow(
      `bigquery: dataset ${bq.projectId}.nope not found (Not found: Dataset ${bq.projectId}:nope)`,
    );
  });

  test('permission denied', async () => {
    bq.faults.push({ match: /datasets\/[^/]+$/, status: 403, reason: 'accessDenied', message: 'Access Denied: Dataset local-project:billing', times: 1 });
    await expect(auditBigQuery(bq)).rejects.toThrow(
      /^bigquery: permission denied on dataset local-project\.billing: the account needs roles\/bigquery\.dataViewer on the dataset and roles\/bigquery\.jobUser on the project/,
    );
  });

  test('quota still exceeded after the retries', async () => {
    bq.faults.push({ match: /\/jobs$/, status: 429, reason: 'quotaExceeded', message: 'Quota exceeded: too many concurrent queries', times: 3 });
    await expect(auditBigQuery(bq)).rejects.toThrow(/^bigquery: dry run of local-project\.billing\.allocations: BigQuery quota or rate limit exceeded, still failing after retries/);
  });

  test('a query over --max-bytes-billed', async () => {
    await expect(auditBigQuery(bq, { maxBytesBilled: 10n })).rejects.toThrow(
      /^bigquery: dry run of local-project\.billing\.allocations: the query would bill more bytes than --max-bytes-billed allows/,
    );
  });

  test('a required table missing, a contract column missing, a money column of the wrong type', async () => {
    const db = bq.db;
    await db.run('ALTER TABLE payment_sessions RENAME TO payment_sessions_old');
    await expect(auditBigQuery(bq)).rejects.toThrow('bigquery: dataset local-project.billing: required table not found: payment_sessions');
    await db.run('ALTER TABLE payment_sessions_old RENAME TO payment_sessions');

    await db.run('ALTER TABLE usage_records DROP COLUMN currency');
    await db.run('ALTER TABLE usage_records ALTER accrued_cost_minor TYPE DOUBLE');
    await expect(auditBigQuery(bq)).rejects.toThrow(
      'bigquery: table local-project.billing.usage_records: column "accrued_cost_minor" is FLOAT, not INT64/INTEGER/NUMERIC/BIGNUMERIC/STRING; missing column "currency"',
    );
  });

  test('no credentials, and no endpoint to talk to instead', async () => {
    const saved = process.env['GOOGLE_APPLICATION_CREDENTIALS'];
    process.env['GOOGLE_APPLICATION_CREDENTIALS'] = '/nonexistent/recon-test-key.json';
    try {
      await expect(auditExports({ bigquery: { dataset: 'some-project.billing' } })).rejects.toThrow(
        /^bigquery: no usable Google credentials for dataset some-project\.billing: run `gcloud auth application-default login`/,
      );
    } finally {
      if (saved === undefined) delete process.env['GOOGLE_APPLICATION_CREDENTIALS'];
      else process.env['GOOGLE_APPLICATION_CREDENTIALS'] = saved;
    }
  });
});

describe('recon snapshot --bigquery', () => {
  test('keeps the same violations and evidence rows as a snapshot of the files; verify passes, and refuses to re-hash a dataset as a folder', async () => {
    const dir = path.join(FIXTURES, 'demo');
    const bq = await serve(dir);
    const said: string[] = [];
    const io = { stdout: (l: string) => void said.push(l), stderr: (l: string) => void said.push(l) };
    const work = await tempDir('recon-bq-snapshot-');
    try {
      const [fromWarehouse, fromFiles] = [path.join(work, 'bq'), path.join(work, 'files')];
      const dataset = `${bq.projectId}.${bq.datasetId}`;
      expect(await snapshotCommand(['--bigquery', dataset, '--bigquery-endpoint', bq.url, '--label', 'INC-1 before', '--out', fromWarehouse], io)).toBe(1);
      expect(await snapshotCommand(['--exports', dir, '--label', 'INC-1 before', '--out', fromFiles], io)).toBe(1);

      const pairs = async (snap: string) =>
        (parse(await readFile(path.join(snap, 'violations.csv')), { columns: true }) as Array<Record<string, string>>)
          .filter((r) => r['invariant_id'] !== 'contract.rejected_row')
          .map((r) => `${r['invariant_id']} ${r['entity_id']}`)
          .sort();
      expect(await pairs(fromWarehouse)).toEqual(await pairs(fromFiles));
      const evidenceRows = async (snap: string) => {
        const db = await Db.open();
        try {
          const files = (await readdir(path.join(snap, 'evidence'))).sort();
          const counts: Array<[string, bigint]> = [];
          for (const f of files) counts.push([f, (await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM read_parquet($p)`, { p: path.join(snap, 'evidence', f) }))!.n]);
          return counts;
        } finally {
          db.close();
        }
      };
      expect(await evidenceRows(fromWarehouse)).toEqual(await evidenceRows(fromFiles));

      const manifest = JSON.parse(await readFile(path.join(fromWarehouse, 'manifest.json'), 'utf8')) as { exports_dir: string; inputs: Array<{ source: string; format: string }> };
      expect(manifest.exports_dir).toBe(`bigquery:${dataset}`);
      expect(manifest.inputs.every((i) => i.format === 'bigquery' && i.source.startsWith(`bigquery:${dataset}.`))).toBe(true);

      said.length = 0;
      expect(await verifyCommand([fromWarehouse], io)).toBe(0);
      expect(await verifyCommand([fromWarehouse, '--exports', dir], io)).toBe(2);
      expect(said.at(-1)).toBe(
        `recon verify: ${fromWarehouse} was taken from bigquery:${dataset}, not from files; --exports cannot re-hash its inputs (the manifest keeps a sha256 of the rows as they were read)`,
      );
      expect(await snapshotCommand(['--bigquery', dataset, '--exports', dir, '--label', 'x', '--out', path.join(work, 'both')], io)).toBe(2);
      expect(said.at(-1)).toBe('recon snapshot: give --exports DIR or --bigquery PROJECT.DATASET, not both');
    } finally {
      await bq.close();
    }
  });
});
