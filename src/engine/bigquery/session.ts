import type { BigQuery, Job, TableField } from '@google-cloud/bigquery';
import { quoteIdent } from '../../contract/tables.ts';
import type { Db } from '../../db.ts';
import { isoSql } from '../../sql.ts';
import { appendPage, bigQueryError, client, parseDatasetRef, stagingFor, type BigQuerySource, type RestPage } from '../../sources/bigquery.ts';

/** A query parameter: text, an integer, or a list of texts (BigQuery needs the list's type when it is empty). */
export type Param = string | number | null | readonly string[];

/**
 * What a job is for: `what` names it in messages; its labels (with `tool: billing-recon`) trace
 * its cost in BigQuery's job history and billing export: `invariant` for a check, `step` for the
 * rest.
 */
export interface JobName {
  what: string;
  invariant?: string;
}

/**
 * Whether a failure is the query's own as it ran (BigQuery's `invalidQuery`: an overflow, a
 * division by zero), rather than the job's (bytes, permissions, quota) or the service's.
 */
export function isQueryError(err: unknown): boolean {
  const cause = (err as { cause?: { errors?: Array<{ reason?: string }> } } | undefined)?.cause;
  return (cause?.errors ?? []).some((e) => e.reason === 'invalidQuery');
}

/** Label values allow only lower-case letters, digits, `_` and `-`, at most 63 characters. */
const labelValue = (v: string) => v.toLowerCase().replace(/[^a-z0-9_-]+/g, '_').slice(0, 63);

function jobLabels(job: JobName): Record<string, string> {
  return { tool: 'billing-recon', ...(job.invariant ? { invariant: labelValue(job.invariant) } : { step: labelValue(job.what) }) };
}

interface ApiResponse {
  schema?: { fields?: TableField[] };
}

/**
 * One BigQuery project and dataset: query jobs with the audit's labels and byte limit, and their
 * results paged into local DuckDB tables. JavaScript holds one page at a time, never a result.
 */
export class BigQuerySession {
  readonly ref: string;
  private constructor(
    readonly bigquery: BigQuery,
    readonly projectId: string,
    readonly datasetId: string,
    private readonly source: BigQuerySource,
  ) {
    this.ref = `${projectId}.${datasetId}`;
  }

  /** The instant every job reads the tables as of (BigQuery's own clock, when the session opened). */
  readAt = '';

  static async open(source: BigQuerySource): Promise<BigQuerySession> {
    const { projectId, datasetId } = parseDatasetRef(source.dataset);
    return new BigQuerySession(await client(projectId, source), projectId, datasetId, source);
  }

  /** Takes the read instant from BigQuery's clock (one query that reads no table). */
  async pinReadAt(db: Db): Promise<void> {
    const into = '__bq_read_at';
    await this.fetch(db, 'SELECT CURRENT_TIMESTAMP() AS t', {}, { what: 'the read instant' }, into);
    this.readAt = (await db.one<{ t: string }>(`SELECT ${isoSql('t')} AS t FROM ${into}`))!.t;
    await db.run(`DROP TABLE ${into}`);
  }

  log(line: string): void {
    this.source.log?.(line);
  }

  private options(query: string, params: Record<string, Param>, job: JobName) {
    const types: Record<string, string | string[]> = {};
    const values: Record<string, unknown> = {};
    const all: Record<string, Param> = { ...params, ...(/@read_at\b/.test(query) ? { read_at: this.readAt } : {}) };
    for (const [k, v] of Object.entries(all)) {
      if (Array.isArray(v)) types[k] = ['STRING'];
      else if (typeof v === 'number') types[k] = 'INT64';
      else types[k] = 'STRING';
      values[k] = v;
    }
    return {
      query,
      useLegacySql: false,
      params: values,
      types,
      defaultDataset: { projectId: this.projectId, datasetId: this.datasetId },
      labels: jobLabels(job),
      ...(this.source.maxBytesBilled !== undefined ? { maximumBytesBilled: this.source.maxBytesBilled.toString() } : {}),
    };
  }

  /** The bytes the query would scan, from a dry run (which BigQuery does not bill). */
  async dryRun(query: string, params: Record<string, Param>, job: JobName): Promise<bigint> {
    try {
      const [, meta] = await this.bigquery.createQueryJob({ ...this.options(query, params, job), dryRun: true });
      return BigInt((meta as { statistics?: { totalBytesProcessed?: string } }).statistics?.totalBytesProcessed ?? '0');
    } catch (err) {
      throw bigQueryError(err, `dry run of ${job.what} in ${this.ref}`);
    }
  }

  /**
   * Runs the query as a job and appends its result, page by page, to a new local temp table
   * `into`, typed from the result's schema (INT64 exact, TIMESTAMP to the microsecond).
   */
  async fetch(db: Db, query: string, params: Record<string, Param>, job: JobName, into: string): Promise<void> {
    let running: Job;
    try {
      [running] = await this.bigquery.createQueryJob(this.options(query, params, job));
    } catch (err) {
      throw bigQueryError(err, `${job.what} in ${this.ref}`);
    }
    let request: Record<string, unknown> | null = { skipParsing: true, autoPaginate: false, maxResults: this.source.pageRows ?? 50_000 };
    let appender: Awaited<ReturnType<Db['conn']['createAppender']>> | undefined;
    let staging: ReturnType<typeof stagingFor>[] = [];
    try {
      while (request) {
        let page: RestPage;
        let next: Record<string, unknown> | null;
        let api: ApiResponse | undefined;
        try {
          const response: unknown[] = await running.getQueryResults(request);
          page = (response[0] as typeof page) ?? [];
          next = (response[1] as Record<string, unknown> | null | undefined) ?? null;
          api = response[2] as ApiResponse | undefined;
        } catch (err) {
          throw bigQueryError(err, `results of ${job.what} in ${this.ref}`);
        }
        if (!appender) {
          const fields = api?.schema?.fields ?? [];
          staging = fields.map(stagingFor);
          await db.run(
            `CREATE OR REPLACE TEMP TABLE ${quoteIdent(into)} (${fields.map((f, i) => `${quoteIdent(f.name!)} ${staging[i]!.sql}`).join(', ')})`,
          );
          appender = await db.conn.createAppender(into, 'main', 'temp');
        }
        appendPage(appender, staging, page);
        request = next;
      }
      appender?.flushSync();
    } finally {
      appender?.closeSync();
    }
  }
}
