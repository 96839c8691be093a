import { listValue } from '@duckdb/node-api';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { AuditRun } from './audit.ts';
import { UsageError } from './errors.ts';
import { IDENTITY_SQL, sameViolationSql } from './findings/identity.ts';
import { atStakeSql } from './findings/money.ts';
import type { Findings, InvariantStatus, PreviousRun } from './findings/types.ts';
import { isoSql } from './sql.ts';
import { parseFindings } from './findings/io.ts';
import { verdictOf } from './findings/verdict.ts';

/**
 * The history of nightly audits: a folder of Parquet files, one pair per run, so a CI job can
 * keep it in a cache or an artifact and append without rewriting anything.
 *   invariants/<run_id>.parquet  one row per invariant: run_id, generated_at, as_of, status,
 *                                verdict, severity, violations, waived_violations, money per currency
 *   violations/<run_id>.parquet  the identities of that run's violations (invariant_id, entity_id)
 * Run ids start with the UTC time, so file names sort in run order.
 */
const INVARIANTS = 'invariants';
const VIOLATIONS = 'violations';

export function newRunId(at: Date): string {
  return `${at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${randomBytes(4).toString('hex')}`;
}

async function runIds(dir: string): Promise<string[]> {
  const folder = path.join(dir, INVARIANTS);
  if (!existsSync(folder)) return [];
  return (await readdir(folder)).filter((f) => f.endsWith('.parquet')).map((f) => f.slice(0, -'.parquet'.length)).sort();
}

export interface BaselineOptions {
  /** The history folder (`--history` or config `history.path`). */
  history?: string;
  /** `history` (the last run in the history) or an audit output folder holding violations.parquet. */
  baseline?: string;
  trendRuns: number;
}

/**
 * Adds to the findings what the history knows: the previous run's counts, violations new since
 * the baseline vs persisting, and a trend per invariant over the last runs (this one included).
 * Reads the history before this run is appended to it.
 */
export async function compareWithHistory(run: AuditRun, opts: BaselineOptions): Promise<void> {
  const { findings } = run;
  const past = opts.history ? await runIds(opts.history) : [];
  let baselineFile: string | undefined;
  if (opts.baseline === 'history') {
    if (!opts.history) throw new UsageError('--baseline history needs a history folder (--history PATH or history.path in the config)');
    const last = past.at(-1);
    if (last) {
      baselineFile = path.join(opts.history, VIOLATIONS, `${last}.parquet`);
      findings.previous_run = await previousFromHistory(run, opts.history, last);
      findings.baseline = { source: 'history', run_id: last, as_of: findings.previous_run.as_of };
    }
  } else if (opts.baseline) {
    baselineFile = path.join(opts.baseline, 'violations.parquet');
    const findingsFile = path.join(opts.baseline, 'findings.json');
    if (!existsSync(baselineFile) || !existsSync(findingsFile)) {
      throw new UsageError(`--baseline ${opts.baseline}: not an audit output folder (needs findings.json and violations.parquet)`);
    }
    const before = parseFindings(await readFile(findingsFile, 'utf8'));
    findings.previous_run = previousFromFindings(before);
    findings.baseline = { source: opts.baseline, ...(before.run_id ? { run_id: before.run_id } : {}), as_of: before.as_of };
  }
  if (baselineFile) await markNew(run, baselineFile);
  if (opts.history && past.length > 0) await addTrend(run, opts.history, past.slice(-(opts.trendRuns - 1)));
  else if (opts.history) for (const r of findings.invariants) r.trend = [currentPoint(findings, r)];
}

function currentPoint(findings: Findings, r: Findings['invariants'][number]) {
  return { run_id: findings.run_id ?? '', as_of: findings.as_of, status: r.status, violations: r.violations };
}

function previousFromFindings(before: Findings): PreviousRun {
  return {
    run_id: before.run_id ?? '',
    generated_at: before.generated_at ?? '',
    as_of: before.as_of,
    invariants: Object.fromEntries(before.invariants.map((r) => [r.id, { status: r.status, violations: r.violations }])),
  };
}

async function previousFromHistory(run: AuditRun, dir: string, runId: string): Promise<PreviousRun> {
  const rows = await run.db.all<{ invariant_id: string; status: InvariantStatus; violations: bigint; generated_at: string; as_of: string }>(
    `SELECT invariant_id, status, violations, ${isoSql('generated_at')} AS generated_at, ${isoSql('as_of')} AS as_of
     FROM read_parquet($file) ORDER BY invariant_id`,
    { file: path.join(dir, INVARIANTS, `${runId}.parquet`) },
  );
  return {
    run_id: runId,
    generated_at: rows[0]?.generated_at ?? '',
    as_of: rows[0]?.as_of ?? '',
    invariants: Object.fromEntries(rows.map((r) => [r.invariant_id, { status: r.status, violations: Number(r.violations) }])),
  };
}

/** New = an unwaived violation whose (invariant, entity) the baseline did not have unwaived. */
async function markNew(run: AuditRun, baselineFile: string): Promise<void> {
  const { db, findings } = run;
  await db.run(
    `CREATE OR REPLACE TEMP TABLE recon_baseline AS
     SELECT DISTINCT ${IDENTITY_SQL} FROM read_parquet($file) WHERE NOT coalesce(waived, false)`,
    { file: baselineFile },
  );
  const counts = await db.all<{ invariant_id: string; new: bigint; persisting: bigint }>(
    `SELECT v.invariant_id, count(*) FILTER (WHERE b.entity_id IS NULL) AS new, count(*) FILTER (WHERE b.entity_id IS NOT NULL) AS persisting
     FROM violations v LEFT JOIN recon_baseline b ON ${sameViolationSql('v', 'b')}
     WHERE NOT v.waived GROUP BY ALL`,
  );
  const resolved = await db.all<{ invariant_id: string; n: bigint }>(
    `SELECT b.invariant_id, count(*) AS n FROM recon_baseline b
     ANTI JOIN (SELECT ${IDENTITY_SQL} FROM violations WHERE NOT waived) v ON ${sameViolationSql('v', 'b')}
     GROUP BY ALL`,
  );
  const samples = await db.allJson<{ invariant_id: string; ids: string[] }>(
    `SELECT v.invariant_id, list(v.entity_id ORDER BY v.entity_id)[1:$n] AS ids FROM violations v
     ANTI JOIN recon_baseline b ON ${sameViolationSql('v', 'b')} WHERE NOT v.waived GROUP BY ALL`,
    { n: run.config.config.sample_size },
  );
  for (const r of findings.invariants) {
    if (r.status === 'skipped') continue;
    const c = counts.find((x) => x.invariant_id === r.id);
    r.baseline = {
      new: Number(c?.new ?? 0n),
      persisting: Number(c?.persisting ?? 0n),
      resolved: Number(resolved.find((x) => x.invariant_id === r.id)?.n ?? 0n),
      new_sample: [...(samples.find((x) => x.invariant_id === r.id)?.ids ?? [])],
    };
  }
}

async function addTrend(run: AuditRun, dir: string, ids: string[]): Promise<void> {
  const rows = await run.db.all<{ run_id: string; invariant_id: string; as_of: string; status: InvariantStatus; violations: bigint }>(
    `SELECT run_id, invariant_id, ${isoSql('as_of')} AS as_of, status, violations FROM read_parquet($files)`,
    { files: listValue(ids.map((id) => path.join(dir, INVARIANTS, `${id}.parquet`))) },
  );
  for (const r of run.findings.invariants) {
    r.trend = [
      ...rows
        .filter((x) => x.invariant_id === r.id)
        .sort((a, b) => a.run_id.localeCompare(b.run_id))
        .map((x) => ({ run_id: x.run_id, as_of: x.as_of, status: x.status, violations: Number(x.violations) })),
      currentPoint(run.findings, r),
    ];
  }
}

/** Appends this run to the history: one row per invariant, and its violation identities. */
export async function appendHistory(run: AuditRun, dir: string): Promise<void> {
  const { db, findings } = run;
  if (!findings.run_id || !findings.generated_at) throw new Error('appendHistory: the findings carry no run id');
  await mkdir(path.join(dir, INVARIANTS), { recursive: true });
  await mkdir(path.join(dir, VIOLATIONS), { recursive: true });
  await db.run(
    `CREATE OR REPLACE TEMP TABLE recon_history_run (invariant_id VARCHAR, status VARCHAR, verdict VARCHAR, severity VARCHAR,
       violations BIGINT, waived_violations BIGINT)`,
  );
  for (const r of findings.invariants) {
    await db.run(`INSERT INTO recon_history_run VALUES ($id, $status, $verdict, $severity, $violations, $waived)`, {
      id: r.id,
      status: r.status,
      verdict: verdictOf(r),
      severity: r.severity,
      violations: r.violations,
      waived: r.waived_violations,
    });
  }
  const params = { run_id: findings.run_id, generated_at: findings.generated_at, as_of: findings.as_of };
  await db.run(
    `COPY (
       SELECT $run_id AS run_id, $generated_at::TIMESTAMPTZ AS generated_at, $as_of::TIMESTAMPTZ AS as_of, h.*,
              coalesce(m.money, MAP {}::MAP(VARCHAR, BIGINT)) AS amount_minor_by_currency
       FROM recon_history_run h
       LEFT JOIN (
         SELECT invariant_id, map_from_entries(list((currency, amount) ORDER BY currency)) AS money FROM (
           SELECT invariant_id, currency, sum(amount_minor)::BIGINT AS amount FROM violations
           WHERE ${atStakeSql()} GROUP BY ALL)
         GROUP BY invariant_id) m USING (invariant_id)
       ORDER BY invariant_id)
     TO $file (FORMAT parquet)`,
    { ...params, file: path.join(dir, INVARIANTS, `${findings.run_id}.parquet`) },
  );
  await db.run(
    `COPY (
       SELECT $run_id AS run_id, $generated_at::TIMESTAMPTZ AS generated_at, $as_of::TIMESTAMPTZ AS as_of,
              ${IDENTITY_SQL}, severity, waived, amount_minor, currency
       FROM violations ORDER BY invariant_id, entity_id)
     TO $file (FORMAT parquet)`,
    { ...params, file: path.join(dir, VIOLATIONS, `${findings.run_id}.parquet`) },
  );
}
