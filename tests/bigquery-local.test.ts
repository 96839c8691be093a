import { rm } from 'node:fs/promises';
import { BigQuery, type Job, type Query } from '@google-cloud/bigquery';
import { OAuth2Client } from 'google-auth-library';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import path from 'node:path';
import { CATALOG } from '../src/catalog/index.ts';
import { createInvariantContext } from '../src/catalog/setup.ts';
import { parseConfig } from '../src/config.ts';
import { TABLE_NAMES } from '../src/contract/tables.ts';
import { bigquery } from '../src/dialect/bigquery.ts';
import { startLocalBigQuery, type BigQueryCall, type CannedError, type LocalBigQuery } from '../src/sources/bigquery-local.ts';
import { copyFixture, editFile } from './helpers/exports.ts';
import { useZetaSql } from './helpers/zetasql.ts';

/**
 * The local BigQuery endpoint (src/sources/bigquery-local.ts) as the real `@google-cloud/bigquery`
 * client meets it: GoogleSQL query jobs run in ZetaSQL, dry runs, the byte limit, labels, paging,
 * and BigQuery's error bodies. Nothing leaves the machine.
 */

process.env['METADATA_SERVER_DETECTION'] = 'none';
delete process.env['BIGQUERY_EMULATOR_HOST'];

const zeta = useZetaSql();
let dir: string;
let bq: LocalBigQuery;
let client: BigQuery;

const BIG = 9007199254740993n;
const MAX_RETRIES = 2;

beforeAll(async () => {
  dir = await copyFixture();
  // 2^53 + 1 minor units, and a timestamp with microseconds: a JS number would lose both.
  await editFile(dir, 'usage_records.csv', (t) => {
    const [header, first, ...rest] = t.split('\n');
    const cols = header!.split(',');
    const cells = first!.split(',');
    cells[cols.indexOf('accrued_cost_minor')] = String(BIG);
    cells[cols.indexOf('start_time')] = '2026-11-20T01:02:03.123457Z';
    return [header, cells.join(','), ...rest].join('\n');
  });
  bq = await startLocalBigQuery({ exportsDir: dir, zetaSql: zeta.server() });
  // Two rows of known logical size: ('ab' 4 + INT64 8 + BOOL 1 + NULL 0) + ('é' 4 + NULL 0 + BOOL 1 + 'x' 3) = 21 bytes.
  await bq.db.run(`CREATE TABLE tiny AS SELECT * FROM (VALUES ('ab', 1::BIGINT, true, NULL::VARCHAR), ('é', NULL, false, 'x')) t(s, n, b, z)`);
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: 'local-endpoint', expiry_date: Number.MAX_SAFE_INTEGER });
  client = new BigQuery({
    projectId: bq.projectId,
    apiEndpoint: bq.url,
    authClient: auth,
    retryOptions: { maxRetries: MAX_RETRIES, retryDelayMultiplier: 1, maxRetryDelay: 0.01 },
  });
});

afterAll(async () => {
  await bq.close();
  await rm(dir, { recursive: true, force: true });
});

const defaultDataset = () => ({ projectId: bq.projectId, datasetId: bq.datasetId });
const exact = { wrapIntegers: { integerTypeCastFunction: BigInt } };

async function run(query: string, extra: Partial<Query> = {}): Promise<Array<Record<string, unknown>>> {
  const [job] = await client.createQueryJob({ query, useLegacySql: false, defaultDataset: defaultDataset(), ...extra });
  const [rows] = await job.getQueryResults(exact);
  return rows as Array<Record<string, unknown>>;
}

/** The API error the client raised: status, reason and message as BigQuery sent them. */
async function failure(promise: Promise<unknown>): Promise<{ code: number | undefined; reason: string | undefined; message: string }> {
  try {
    await promise;
  } catch (err) {
    const e = err as { code?: number; errors?: Array<{ reason?: string }>; message: string };
    return { code: e.code, reason: e.errors?.[0]?.reason, message: e.message };
  }
  throw new Error('expected a failure');
}

describe('GoogleSQL query jobs run in ZetaSQL', () => {
  const QUERY = `WITH costs AS (
      SELECT org_id, SAFE_CAST(accrued_cost_minor AS INT64) AS cost, SAFE_CAST('x' AS INT64) AS bad FROM usage_records
    )
    SELECT org_id, COUNTIF(cost > 1000) AS over_1000, SUM(cost) AS total, COUNTIF(bad IS NULL) AS unparsed,
           TO_JSON_STRING(STRUCT(org_id AS org)) AS j
    FROM costs
    GROUP BY org_id
    QUALIFY ROW_NUMBER() OVER (ORDER BY SUM(cost) DESC) = 1`;

  test('a CTE with SAFE_CAST, COUNTIF, TO_JSON_STRING and QUALIFY returns the exact row, INT64 sums beyond 2^53 included', async () => {
    // DuckDB has none of these functions: the query is GoogleSQL only.
    await expect(bq.db.all(QUERY)).rejects.toThrow();
    const want = await bq.db.all<{ org_id: string; over_1000: bigint; total: bigint; n: bigint }>(
      `SELECT org_id, count(*) FILTER (WHERE accrued_cost_minor > 1000) AS over_1000, sum(accrued_cost_minor)::BIGINT AS total, count(*) AS n
       FROM usage_records GROUP BY org_id ORDER BY total DESC LIMIT 1`,
    );
    expect(want[0]!.total).toBeGreaterThan(BIG);
    const expected = want.map((w) => ({ org_id: w.org_id, over_1000: w.over_1000, total: w.total, unparsed: w.n, j: `{"org":"${w.org_id}"}` }));
    expect(await run(QUERY)).toEqual(expected);
    // The same through jobs.query, the client's fast path.
    const [rows] = await client.query({ query: QUERY, defaultDataset: defaultDataset(), ...exact });
    expect(rows).toEqual(expected);
  });

  test('INT64 above 2^53 and TIMESTAMP microseconds arrive exactly, parsed and as the raw REST rows', async () => {
    const query = `SELECT accrued_cost_minor, start_time FROM \`${bq.projectId}.${bq.datasetId}.usage_records\` WHERE accrued_cost_minor = ${BIG}`;
    const [job] = await client.createQueryJob({ query, useLegacySql: false });
    const [rows] = await job.getQueryResults(exact);
    expect(rows.map((r: { accrued_cost_minor: bigint; start_time: { value: string } }) => [r.accrued_cost_minor, r.start_time.value])).toEqual([
      // The client's BigQueryTimestamp writes nanoseconds.
      [BIG, '2026-11-20T01:02:03.123457000Z'],
    ]);
    const [raw] = await job.getQueryResults({ skipParsing: true });
    expect(raw).toEqual([{ f: [{ v: '9007199254740993' }, { v: '1795136523123457' }] }]);
    // Without formatOptions BigQuery sends TIMESTAMP as float seconds; its schema names INT64 INTEGER.
    const response = (await (await fetch(`${bq.url}/bigquery/v2/projects/${bq.projectId}/queries/${job.id}`)).json()) as Record<string, unknown>;
    expect(response['rows']).toEqual([{ f: [{ v: '9007199254740993' }, { v: '1.795136523123457E9' }] }]);
    expect(response['schema']).toEqual({
      fields: [
        { name: 'accrued_cost_minor', type: 'INTEGER', mode: 'NULLABLE' },
        { name: 'start_time', type: 'TIMESTAMP', mode: 'NULLABLE' },
      ],
    });
  });

  test('every GoogleSQL type arrives in REST shape: REPEATED, RECORD, NUMERIC exact, BYTES base64, an unnamed column f<i>_', async () => {
    const query = `SELECT DATE '2026-01-02' AS d, DATETIME '2026-01-02 03:04:05.000006' AS dt, NUMERIC '-1.50' AS num, 1.5 AS f,
      b'ab' AS bin, [1, 2] AS arr, STRUCT(1 AS a, 'x' AS b) AS st, JSON '{"a":1}' AS js, 7, CAST(NULL AS STRING) AS nul,
      TIMESTAMP '1969-12-31 23:59:59.5+00' AS neg`;
    const [job] = await client.createQueryJob({ query, useLegacySql: false });
    const response = (await (await fetch(`${bq.url}/bigquery/v2/projects/${bq.projectId}/queries/${job.id}`)).json()) as Record<string, unknown>;
    const field = (name: string, type: string, mode = 'NULLABLE') => ({ name, type, mode });
    expect(response['schema']).toEqual({
      fields: [
        field('d', 'DATE'),
        field('dt', 'DATETIME'),
        field('num', 'NUMERIC'),
        field('f', 'FLOAT'),
        field('bin', 'BYTES'),
        field('arr', 'INTEGER', 'REPEATED'),
        { ...field('st', 'RECORD'), fields: [field('a', 'INTEGER'), field('b', 'STRING')] },
        field('js', 'JSON'),
        field('f8_', 'INTEGER'),
        field('nul', 'STRING'),
        field('neg', 'TIMESTAMP'),
      ],
    });
    expect(response['rows']).toEqual([
      {
        f: [
          { v: '2026-01-02' },
          { v: '2026-01-02T03:04:05.000006' },
          { v: '-1.5' },
          { v: '1.5' },
          { v: 'YWI=' },
          { v: [{ v: '1' }, { v: '2' }] },
          { v: { f: [{ v: '1' }, { v: 'x' }] } },
          { v: '{"a":1}' },
          { v: '7' },
          { v: null },
          { v: '-0.5' },
        ],
      },
    ]);
    const [[row]] = await job.getQueryResults(exact);
    expect([row.arr, row.st, row.num.toString(), row.bin.toString(), row.f8_]).toEqual([[1n, 2n], { a: 1n, b: 'x' }, '-1.5', 'ab', 7n]);
  });

  test('a DuckDB column of every type the exports may hold is served as its GoogleSQL type, exactly', async () => {
    await bq.db.run(`CREATE TABLE kinds AS SELECT TIMESTAMP '1969-12-31 23:59:59.999999' AS naive, TIMESTAMPTZ '1969-12-31 23:59:59.999999+00' AS tz,
      DATE '2026-01-02' AS day, (-12.34)::DECIMAL(18,2) AS dec, 2.5::DOUBLE AS dbl, 9007199254740993::BIGINT AS big, 7::INTEGER AS small,
      ['a', 'b'] AS list, {'k': 1::BIGINT} AS rec`);
    try {
      const [job] = await client.createQueryJob({ query: 'SELECT * FROM kinds', useLegacySql: false, defaultDataset: defaultDataset() });
      const response = (await (await fetch(`${bq.url}/bigquery/v2/projects/${bq.projectId}/queries/${job.id}`)).json()) as { schema: { fields: Array<{ type: string; mode: string }> }; rows: unknown };
      expect(response.schema.fields.map((f) => `${f.type} ${f.mode}`)).toEqual([
        'DATETIME NULLABLE', 'TIMESTAMP NULLABLE', 'DATE NULLABLE', 'NUMERIC NULLABLE', 'FLOAT NULLABLE', 'INTEGER NULLABLE', 'INTEGER NULLABLE', 'STRING REPEATED', 'RECORD NULLABLE',
      ]);
      expect(response.rows).toEqual([
        {
          f: [
            { v: '1969-12-31T23:59:59.999999' },
            { v: '-0.000001' },
            { v: '2026-01-02' },
            { v: '-12.34' },
            { v: '2.5' },
            { v: '9007199254740993' },
            { v: '7' },
            { v: [{ v: 'a' }, { v: 'b' }] },
            { v: { f: [{ v: '1' }] } },
          ],
        },
      ]);
    } finally {
      await bq.db.run('DROP TABLE kinds');
    }
  });

  test('named parameters: STRING, INT64, TIMESTAMP and ARRAY<STRING> (empty too), as the engine binds its settings', async () => {
    const query = `WITH recon_settings AS (SELECT TIMESTAMP(@as_of) AS as_of, @lag AS lag, @moment AS moment),
        components AS (SELECT name FROM UNNEST(@components) AS name)
      SELECT FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', as_of) AS as_of, lag + 1 AS lag, UNIX_MICROS(moment) AS moment,
        (SELECT ARRAY_AGG(name ORDER BY name) FROM components) AS names, ARRAY_LENGTH(@none) AS none
      FROM recon_settings`;
    const params = { as_of: '2026-11-20T12:00:00.5Z', lag: 9007199254740992, moment: BigQuery.timestamp('2026-11-20T01:02:03.123457Z'), components: ['b', 'a'], none: [] };
    const types = { as_of: 'STRING', lag: 'INT64', moment: 'TIMESTAMP', components: ['STRING'], none: ['STRING'] };
    expect(await run(query, { params, types })).toEqual([
      { as_of: '2026-11-20T12:00:00.500000Z', lag: 9007199254740993n, moment: 1795136523123457n, names: ['a', 'b'], none: 0n },
    ]);
    expect(bq.jobs.at(-1)!.queryParameters).toEqual([
      { name: 'as_of', type: 'STRING', value: '2026-11-20T12:00:00.5Z' },
      { name: 'lag', type: 'INT64', value: '9007199254740992' },
      { name: 'moment', type: 'TIMESTAMP', value: expect.stringMatching(/^2026-11-20[T ]01:02:03\.123457/) },
      { name: 'components', type: 'ARRAY<STRING>', value: ['b', 'a'] },
      { name: 'none', type: 'ARRAY<STRING>', value: [] },
    ]);
  });

  test('a table is found unqualified (against defaultDataset), as dataset.table and as `project.dataset.table`', async () => {
    const count = (from: string) => `SELECT COUNT(*) AS n FROM ${from}`;
    const n = (await bq.db.one<{ n: bigint }>(`SELECT count(*) AS n FROM usage_records`))!.n;
    for (const from of ['usage_records', `${bq.datasetId}.usage_records`, `\`${bq.datasetId}.usage_records\``, `\`${bq.projectId}.${bq.datasetId}.usage_records\``, `\`${bq.projectId}\`.${bq.datasetId}.usage_records`]) {
      expect(await run(count(from)), from).toEqual([{ n }]);
    }
    expect(await run(`SELECT s FROM tiny t JOIN ${bq.datasetId}.tiny u USING (s) WHERE 'billing.tiny' != '' ORDER BY s`)).toEqual([{ s: 'ab' }, { s: 'é' }]);
  });

  test('a name BigQuery could not resolve is refused as BigQuery refuses it', async () => {
    expect(await failure(client.createQueryJob({ query: 'SELECT 1 FROM usage_records', useLegacySql: false }))).toEqual({
      code: 400,
      reason: 'invalid',
      message: 'Table "usage_records" must be qualified with a dataset (e.g. dataset.table).',
    });
    expect(await failure(run('SELECT 1 FROM other.usage_records'))).toEqual({
      code: 404,
      reason: 'notFound',
      message: `Not found: Dataset ${bq.projectId}:other was not found in location US`,
    });
    expect(await failure(run('SELECT 1 FROM nope'))).toEqual({
      code: 404,
      reason: 'notFound',
      message: `Not found: Table ${bq.projectId}:${bq.datasetId}.nope was not found in location US`,
    });
    expect(await failure(run('SELECT nope FROM usage_records'))).toEqual({ code: 400, reason: 'invalidQuery', message: 'Unrecognized name: nope at [1:8]' });
  });

  test('result pages of maxResults rows are fetched with pageToken until the last', async () => {
    const [job] = await client.createQueryJob({ query: 'SELECT usage_record_id FROM usage_records ORDER BY usage_record_id', useLegacySql: false, defaultDataset: defaultDataset() });
    const want = (await bq.db.all<{ id: string }>(`SELECT usage_record_id AS id FROM usage_records ORDER BY id`)).map((r) => r.id);
    expect(want.length).toBe(8);
    const before = bq.requests.length;
    const pages: string[][] = [];
    let request: Record<string, unknown> | null = { maxResults: 3, autoPaginate: false };
    while (request) {
      const response: unknown[] = await job.getQueryResults(request);
      pages.push((response[0] as Array<{ usage_record_id: string }>).map((r) => r.usage_record_id));
      request = (response[1] as Record<string, unknown> | null) ?? null;
    }
    expect(pages).toEqual([want.slice(0, 3), want.slice(3, 6), want.slice(6)]);
    expect(bq.requests.slice(before)).toEqual(Array(3).fill(`GET /projects/${bq.projectId}/queries/${job.id}`));
  });
});

// ZetaSQL's evaluator is a reference implementation, slow on joins: a fixture of tens of rows, not fixtures/demo.
test('every invariant of the catalog runs as a query job, in GoogleSQL, and finds what ZetaSQL finds over the same tables', async () => {
  const demo = await startLocalBigQuery({ exportsDir: path.resolve('fixtures/ledger_drift'), zetaSql: zeta.server() });
  try {
    // The context the invariants read, as tables of the dataset (the endpoint serves tables, not views).
    await createInvariantContext(demo.db, parseConfig({}, '(test)').config, '2026-11-20T12:00:00Z');
    await demo.db.run('CREATE TABLE effective_ledger_entries_t AS SELECT * FROM effective_ledger_entries');
    await demo.db.run('DROP VIEW effective_ledger_entries');
    await demo.db.run('ALTER TABLE effective_ledger_entries_t RENAME TO effective_ledger_entries');
    const demoClient = new BigQuery({ projectId: demo.projectId, apiEndpoint: demo.url, authClient: client.authClient as never });
    let found = 0;
    for (const inv of CATALOG) {
      const query = inv.sql({ tables: new Set(TABLE_NAMES), dialect: bigquery });
      const [job] = await demoClient.createQueryJob({ query, useLegacySql: false, defaultDataset: { datasetId: demo.datasetId }, labels: { invariant: inv.id.replace('.', '_') } });
      const [rows] = await job.getQueryResults(exact);
      const ids = (rows as Array<{ entity_id: string }>).map((r) => r.entity_id).sort();
      const direct = await zeta.evaluate(query, demo.db);
      expect(ids, inv.id).toEqual(direct.map((r) => r['entity_id'] as string).sort());
      found += ids.length;
    }
    expect(found, 'the export has violations').toBeGreaterThan(5);
  } finally {
    await demo.close();
  }
});

test('tables.get and tabledata.list describe and page a table as BigQuery does', async () => {
  const [meta] = await client.dataset(bq.datasetId).table('tiny').getMetadata();
  expect([meta.schema, meta.numRows, meta.numBytes]).toEqual([
    {
      fields: [
        { name: 's', type: 'STRING', mode: 'NULLABLE' },
        { name: 'n', type: 'INTEGER', mode: 'NULLABLE' },
        { name: 'b', type: 'BOOLEAN', mode: 'NULLABLE' },
        { name: 'z', type: 'STRING', mode: 'NULLABLE' },
      ],
    },
    '2',
    '21',
  ]);
  const list = async (query: string) => (await (await fetch(`${bq.url}/bigquery/v2/projects/${bq.projectId}/datasets/${bq.datasetId}/tables/tiny/data?${query}`)).json()) as unknown;
  expect(await list('maxResults=1')).toEqual({
    kind: 'bigquery#tableDataList',
    rows: [{ f: [{ v: 'ab' }, { v: '1' }, { v: 'true' }, { v: null }] }],
    totalRows: '2',
    pageToken: '1',
  });
  expect(await list('maxResults=1&pageToken=1')).toEqual({ kind: 'bigquery#tableDataList', rows: [{ f: [{ v: 'é' }, { v: null }, { v: 'false' }, { v: 'x' }] }], totalRows: '2' });
});

describe('dry runs, the byte limit and labels', () => {
  test('a dry run answers the bytes of the tables it reads, DONE and without rows', async () => {
    const dry = async (query: string) => {
      const [job, meta] = await client.createQueryJob({ query, useLegacySql: false, defaultDataset: defaultDataset(), dryRun: true });
      const m = meta as { status: { state: string }; statistics: { totalBytesProcessed: string; query: { totalBytesProcessed: string } } };
      expect(m.status.state).toBe('DONE');
      expect(m.statistics.query.totalBytesProcessed).toBe(m.statistics.totalBytesProcessed);
      return { job, bytes: m.statistics.totalBytesProcessed };
    };
    expect((await dry('SELECT s FROM tiny')).bytes).toBe('21');
    // A table read twice is read once; a query of no table reads nothing.
    expect((await dry(`SELECT a.s FROM tiny a JOIN \`${bq.projectId}.${bq.datasetId}.tiny\` b USING (s)`)).bytes).toBe('21');
    expect((await dry('SELECT 1')).bytes).toBe('0');
    // A WITH entry nothing reads is not scanned; one read through another is.
    expect((await dry('WITH unused AS (SELECT * FROM usage_records) SELECT s FROM tiny')).bytes).toBe('21');
    const usage = (await dry('SELECT 1 FROM usage_records')).bytes;
    expect(BigInt(usage)).toBeGreaterThan(21n);
    expect((await dry('WITH u AS (SELECT * FROM usage_records), v AS (SELECT * FROM u) SELECT s FROM tiny, v')).bytes).toBe(String(BigInt(usage) + 21n));
    // A dry run validates the statement as the real job would.
    expect(await failure(dry('SELECT nope FROM tiny'))).toEqual({ code: 400, reason: 'invalidQuery', message: 'Unrecognized name: nope at [1:8]' });
    // BigQuery keeps no dry run: there are no results to get.
    const { job } = await dry('SELECT s FROM tiny');
    expect((await failure(job.getQueryResults())).code).toBe(404);
  });

  test('a job that would bill more than maximumBytesBilled fails with bytesBilledLimitExceeded; 10 MiB a table is the least billed', async () => {
    expect(await failure(run('SELECT s FROM tiny', { maximumBytesBilled: String(10 * 2 ** 20 - 1) }))).toEqual({
      code: 400,
      reason: 'bytesBilledLimitExceeded',
      message: 'Query exceeded limit for bytes billed: 10485759. 10485760 or higher required.',
    });
    expect(await run('SELECT s FROM tiny ORDER BY s', { maximumBytesBilled: String(10 * 2 ** 20) })).toEqual([{ s: 'ab' }, { s: 'é' }]);
    expect(bq.jobs.at(-2)!.error).toEqual({ status: 400, reason: 'bytesBilledLimitExceeded', message: 'Query exceeded limit for bytes billed: 10485759. 10485760 or higher required.' });
    expect(bq.jobs.at(-1)!.error).toBeUndefined();
  });

  test('every job is recorded with its query, labels, byte limit, dry run and default dataset', async () => {
    // BigQuery refuses a label with a dot (or a capital): an invariant id must be mapped first.
    expect(await failure(run('SELECT 1', { labels: { invariant: 'ledger.balance_projection' } }))).toEqual({
      code: 400,
      reason: 'invalid',
      message: 'Label value "ledger.balance_projection" has invalid characters.',
    });
    expect(await failure(run('SELECT 1', { labels: { Tool: 'x' } }))).toMatchObject({ code: 400, message: 'Label key "Tool" has invalid characters.' });
    const before = bq.jobs.length;
    const labels = { tool: 'billing-recon', invariant: 'ledger_balance_projection' };
    const query = 'SELECT COUNT(*) AS n FROM tiny WHERE s = @s';
    const options = { query, labels, maximumBytesBilled: '1000000000', params: { s: 'ab' } };
    await client.createQueryJob({ ...options, useLegacySql: false, defaultDataset: defaultDataset(), dryRun: true });
    expect(await run(query, options)).toEqual([{ n: 1n }]);
    expect(bq.jobs.slice(before)).toEqual(
      [true, false].map((dryRun) => ({
        jobId: expect.any(String),
        call: 'jobs.insert',
        query,
        dryRun,
        labels,
        maximumBytesBilled: '1000000000',
        defaultDataset: defaultDataset(),
        queryParameters: [{ name: 's', type: 'STRING', value: 'ab' }],
        totalBytesProcessed: '21',
      })),
    );
  });
});

describe("BigQuery's errors reach the client with their code and reason, and only the retryable are retried", () => {
  const INSERT = () => `POST /projects/${bq.projectId}/jobs`;

  test.each<[CannedError, number | undefined, number, boolean]>([
    ['accessDenied', undefined, 403, false],
    ['notFound', undefined, 404, false],
    ['quotaExceeded', undefined, 403, false],
    ['rateLimitExceeded', undefined, 403, true],
    ['rateLimitExceeded', 429, 429, true],
    ['backendError', undefined, 500, true],
  ])('%s (%s → %i): retried %s', async (reason, status, code, retried) => {
    const before = bq.requests.length;
    bq.failNext('jobs.insert', reason, { ...(status ? { status } : {}) });
    const job = client.createQueryJob({ query: 'SELECT 1 AS one', useLegacySql: false });
    if (retried) {
      const [created] = await job;
      expect(((await (created as Job).getQueryResults())[0] as unknown[]).length).toBe(1);
      expect(bq.requests.slice(before).filter((r) => r === INSERT())).toHaveLength(2);
    } else {
      const got = await failure(job);
      expect({ code: got.code, reason: got.reason }).toEqual({ code, reason });
      expect(bq.requests.slice(before).filter((r) => r === INSERT())).toHaveLength(1);
    }
  });

  test('a retryable error that lasts fails after the client’s retries, with its code and reason', async () => {
    const before = bq.requests.length;
    bq.failNext('jobs.getQueryResults', 'backendError', { times: MAX_RETRIES + 1 });
    const [job] = await client.createQueryJob({ query: 'SELECT 1 AS one', useLegacySql: false });
    const got = await failure(job.getQueryResults());
    expect({ code: got.code, reason: got.reason }).toEqual({ code: 500, reason: 'backendError' });
    expect(bq.requests.slice(before).filter((r) => r.startsWith('GET ') && r.includes('/queries/'))).toHaveLength(MAX_RETRIES + 1);
  });

  test('the error body is BigQuery’s: code, message, errors[{reason, message, domain}], status', async () => {
    const calls: Array<[BigQueryCall, string, string]> = [
      ['datasets.get', 'GET', `/projects/${bq.projectId}/datasets/${bq.datasetId}`],
      ['tables.get', 'GET', `/projects/${bq.projectId}/datasets/${bq.datasetId}/tables/tiny`],
    ];
    for (const [call, method, path] of calls) {
      bq.failNext(call, 'accessDenied', { message: 'Access Denied: Table local-project:billing.tiny' });
      const res = await fetch(`${bq.url}/bigquery/v2${path}`, { method });
      expect(res.status).toBe(403);
      expect(await res.json()).toEqual({
        error: {
          code: 403,
          message: 'Access Denied: Table local-project:billing.tiny',
          errors: [{ message: 'Access Denied: Table local-project:billing.tiny', domain: 'global', reason: 'accessDenied' }],
          status: 'PERMISSION_DENIED',
        },
      });
    }
  });
});
