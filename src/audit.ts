import { listValue } from '@duckdb/node-api';
import { TABLES, quoteIdent, type TableName } from './contract/tables.ts';
import { loadConfig, type LoadedConfig } from './config.ts';
import { Db, type ScratchOptions } from './db.ts';
import { ConfigError, UsageError, errorMessage } from './errors.ts';
import { parseExact } from './json.ts';
import { isoSql } from './sql.ts';
import { CATALOG } from './invariants/index.ts';
import { createInvariantContext } from './invariants/setup.ts';
import {
  VIOLATION_COLUMNS,
  type Findings,
  type Invariant,
  type InvariantResult,
  type Severity,
  type Violation,
} from './invariants/types.ts';
import { loadBigQuery, type BigQuerySource } from './loaders/bigquery.ts';
import { moneyTotals } from './money.ts';
import { loadExports, type LoadOptions, type LoadResult } from './loaders/index.ts';
import { TOOL } from './version.ts';

export interface Scope {
  orgs: string[];
  appInstances: string[];
  /** Violations carrying one of these correlation ids (evidence snapshots of one incident). */
  correlationIds: string[];
}

export interface AuditOptions {
  /** The export directory; or `bigquery`, to read the same tables from a dataset. */
  exportsDir?: string;
  bigquery?: BigQuerySource;
  configPath?: string;
  /** An already-loaded config; wins over `configPath`. */
  config?: LoadedConfig;
  /** ISO-8601 instant; default: the latest timestamp in the exports (CONTRACT.md §2). */
  asOf?: string;
  scope?: Partial<Scope>;
  /**
   * Where the DuckDB database lives. Default: a scratch file in a temp dir, removed on close,
   * bounded by `memory` (tables beyond the limit spill to disk instead of failing).
   */
  dbPath?: string;
  memory?: ScratchOptions;
  onProgress?: LoadOptions['onProgress'];
}

export interface AuditRun {
  db: Db;
  findings: Findings;
  load: LoadResult;
  config: LoadedConfig;
  scope: Scope;
  /** Wall time of loading and of each invariant, in ms: for the benchmark, never in the findings. */
  timings: { loadMs: number; invariantsMs: Record<string, number> };
}

const VIOLATIONS_DDL = `CREATE OR REPLACE TABLE violations (${VIOLATION_COLUMNS.map((c) => `${c.name} ${c.sql}`).join(', ')})`;

/** Same rules as the loaders: a text instant the contract accepts, read as UTC. */
async function normaliseAsOf(db: Db, asOf: string): Promise<string> {
  const row = await db.one<{ t: string | null }>(
    `SELECT ${isoSql('TRY_CAST($v AS TIMESTAMPTZ)')} AS t
     WHERE regexp_full_match($v, '\\d{4}-\\d{2}-\\d{2}([T ]\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?)?([Zz]| ?[+-]\\d{2}(:?\\d{2})?| UTC)?')`,
    { v: asOf },
  );
  if (!row?.t) throw new UsageError(`--as-of: "${asOf}" is not an ISO-8601 instant (e.g. 2026-11-20T12:00:00Z)`);
  return row.t;
}

/** The latest timestamp anywhere in the exports, so re-auditing the same files is reproducible. */
async function latestTimestamp(db: Db, tables: ReadonlySet<TableName>): Promise<string | null> {
  const parts: string[] = [];
  for (const t of tables) {
    for (const c of TABLES[t].columns) {
      if (c.type === 'timestamp') parts.push(`SELECT max(${quoteIdent(c.name)}) AS t FROM ${quoteIdent(t)}`);
    }
  }
  const row = await db.one<{ t: string | null }>(
    `SELECT ${isoSql('max(t)')} AS t FROM (${parts.join(' UNION ALL ')})`,
  );
  return row?.t ?? null;
}

function checkConfigAgainstCatalog(loaded: LoadedConfig): void {
  const ids = new Set(CATALOG.map((i) => i.id));
  const problems: string[] = [];
  for (const id of Object.keys(loaded.config.severity)) {
    if (!ids.has(id)) problems.push(`severity.${id}: unknown invariant`);
  }
  loaded.config.waivers.forEach((w, i) => {
    if (!ids.has(w.invariant)) problems.push(`waivers.${i}.invariant: unknown invariant "${w.invariant}"`);
  });
  if (problems.length > 0) {
    throw new ConfigError(`invalid config ${loaded.source}:\n${problems.map((p) => `  ${loaded.source}: ${p}`).join('\n')}`);
  }
}

/**
 * Runs one invariant into `violations`; a failing query is that invariant's error, not the
 * audit's. CONTRACT.md §3 reports one violation per entity: when an exported row is duplicated
 * (which `contract.duplicate_key` reports) a check may see its entity twice, and the copy with
 * the most money at stake is kept, so counts and money are never inflated by the duplicate.
 */
async function runInvariant(db: Db, inv: Invariant, severity: Severity, tables: ReadonlySet<TableName>): Promise<string | undefined> {
  try {
    await db.run(
      `INSERT INTO violations BY NAME
       SELECT $id AS invariant_id, $severity AS severity, $entity AS entity_type, false AS waived,
              -- Checks sum in HUGEINT; money at stake beyond BIGINT is named, never a raw cast error.
              * REPLACE (CASE WHEN amount_minor BETWEEN -9223372036854775808 AND 9223372036854775807 THEN amount_minor::BIGINT
                              ELSE error('money at stake for ' || entity_id || ' is ' || amount_minor::VARCHAR ||
                                         ' minor units, beyond the 64-bit range of money amounts (implausible amounts in the export?)') END AS amount_minor)
       FROM (
         -- Columns an invariant does not return are NULL, so every one can be ordered the same way.
         SELECT NULL::BIGINT AS amount_minor, NULL::VARCHAR AS currency, NULL::JSON AS detail WHERE false
         UNION ALL BY NAME
         SELECT * FROM (${inv.sql({ tables })}))
       QUALIFY row_number() OVER (
         PARTITION BY entity_id ORDER BY amount_minor DESC NULLS LAST, currency NULLS LAST, detail::VARCHAR) = 1`,
      { id: inv.id, severity, entity: inv.entity },
    );
    return undefined;
  } catch (err) {
    return errorMessage(err);
  }
}

/**
 * Narrows the violations to the scope. A row that could not be read (`contract.rejected_row`)
 * and a violation naming no tenant may belong to anyone, so they stay in every scope: a scoped
 * audit must never pass because the evidence against it could not be attributed.
 */
async function applyScope(db: Db, scope: Scope): Promise<void> {
  const unattributed = `entity_type = 'source_row'`;
  if (scope.orgs.length > 0) {
    await db.run(`DELETE FROM violations WHERE NOT (${unattributed} OR org_id IS NULL OR list_contains($orgs, org_id))`, {
      orgs: listValue(scope.orgs),
    });
  }
  if (scope.appInstances.length > 0) {
    await db.run(`DELETE FROM violations WHERE NOT (${unattributed} OR coalesce(list_contains($apps, app_instance_id), false))`, {
      apps: listValue(scope.appInstances),
    });
  }
  if (scope.correlationIds.length > 0) {
    await db.run(`DELETE FROM violations WHERE NOT (${unattributed} OR coalesce(list_contains($ids, correlation_id), false))`, {
      ids: listValue(scope.correlationIds),
    });
  }
}

async function applyWaivers(db: Db, loaded: LoadedConfig, asOf: string): Promise<void> {
  for (const w of loaded.config.waivers) {
    // An expired waiver no longer hides anything: the violation fails the audit again.
    await db.run(
      `UPDATE violations SET waived = true, waiver_reason = $reason
       WHERE invariant_id = $invariant AND ($entity IS NULL OR entity_id = $entity)
         AND ($expires IS NULL OR $expires::DATE >= $as_of::TIMESTAMPTZ::DATE)`,
      { reason: w.reason, invariant: w.invariant, entity: w.entity_id ?? null, expires: w.expires ?? null, as_of: asOf },
    );
  }
}

/** Converts a row of `violations` as DuckDB returns it into a Violation (detail parsed). */
export function toViolation(row: Record<string, unknown>): Violation {
  const v = { ...row } as unknown as Violation & { detail: unknown };
  v.detail = typeof row['detail'] === 'string' ? parseExact(row['detail']) : row['detail'];
  return v;
}

async function buildFindings(
  db: Db,
  loaded: LoadedConfig,
  asOf: string,
  scope: Scope,
  load: LoadResult,
  outcomes: Map<string, { severity: Severity; skipped?: string; error?: string }>,
): Promise<Findings> {
  const counts = await db.all<{ invariant_id: string; open: bigint; waived: bigint }>(
    `SELECT invariant_id, count(*) FILTER (WHERE NOT waived) AS open, count(*) FILTER (WHERE waived) AS waived
     FROM violations GROUP BY invariant_id`,
  );
  const money = await db.all<{ invariant_id: string; currency: string; amount: bigint }>(
    `SELECT invariant_id, currency, sum(amount_minor)::HUGEINT AS amount FROM violations
     WHERE NOT waived AND amount_minor IS NOT NULL AND currency IS NOT NULL
     GROUP BY ALL ORDER BY invariant_id, currency`,
  );
  const samples = await db.all(
    `SELECT * EXCLUDE (rn) FROM (
       SELECT *, row_number() OVER (PARTITION BY invariant_id ORDER BY waived, entity_id) AS rn FROM violations)
     WHERE rn <= $n ORDER BY invariant_id, rn`,
    { n: loaded.config.sample_size },
  );

  const invariants: InvariantResult[] = CATALOG.map((inv) => {
    const outcome = outcomes.get(inv.id)!;
    const c = counts.find((r) => r.invariant_id === inv.id);
    const open = Number(c?.open ?? 0n);
    const waived = Number(c?.waived ?? 0n);
    const byCurrency: Record<string, bigint> = {};
    for (const m of money) if (m.invariant_id === inv.id) byCurrency[m.currency] = m.amount;
    const result: InvariantResult = {
      id: inv.id,
      title: inv.title,
      family: inv.family,
      severity: outcome.severity,
      entity: inv.entity,
      status: outcome.skipped ? 'skipped' : outcome.error || open > 0 ? 'fail' : waived > 0 ? 'waived' : 'pass',
      violations: open,
      waived_violations: waived,
      amount_minor_by_currency: byCurrency,
      sample: samples.filter((s) => s['invariant_id'] === inv.id).map(toViolation),
    };
    if (outcome.skipped) result.skipped_reason = outcome.skipped;
    if (outcome.error) result.error = outcome.error;
    return result;
  });

  // Per-invariant sums overlap (one defect, several angles); kept only as a labelled cross-check.
  const overlapping: Record<string, bigint> = {};
  for (const m of money) overlapping[m.currency] = (overlapping[m.currency] ?? 0n) + m.amount;
  const deduplicated = await moneyTotals(db);
  const sum = (f: (r: InvariantResult) => number) => invariants.reduce((acc, r) => acc + f(r), 0);
  return {
    schema_version: 1,
    tool: { ...TOOL },
    as_of: asOf,
    config_sha256: loaded.sha256,
    scope: {
      orgs: [...scope.orgs],
      app_instances: [...scope.appInstances],
      ...(scope.correlationIds.length > 0 ? { correlation_ids: [...scope.correlationIds] } : {}),
    },
    inputs: load.inputs,
    invariants,
    totals: {
      invariants: invariants.length,
      passed: invariants.filter((r) => r.status === 'pass').length,
      failed: invariants.filter((r) => r.status === 'fail').length,
      skipped: invariants.filter((r) => r.status === 'skipped').length,
      waived: invariants.filter((r) => r.status === 'waived').length,
      errored: invariants.filter((r) => r.error !== undefined).length,
      violations: sum((r) => r.violations),
      error_violations: sum((r) => (r.severity === 'error' ? r.violations : 0)),
      warn_violations: sum((r) => (r.severity === 'warn' ? r.violations : 0)),
      waived_violations: sum((r) => r.waived_violations),
      amount_minor_by_currency: deduplicated.total,
      error_amount_minor_by_currency: deduplicated.error,
      warn_amount_minor_by_currency: deduplicated.warn,
      money_items: deduplicated.items,
      overlapping_amount_minor_by_currency: Object.fromEntries(Object.entries(overlapping).sort(([a], [b]) => a.localeCompare(b))),
    },
  };
}

function exportsDirOf(opts: AuditOptions): string {
  if (opts.exportsDir === undefined) throw new UsageError('an audit needs --exports DIR or --bigquery PROJECT.DATASET');
  return opts.exportsDir;
}

/**
 * The audit: load the exports, run every invariant of the catalog into one `violations` table,
 * and derive the findings from it. The caller owns `run.db` and must close it.
 */
export async function auditExports(opts: AuditOptions): Promise<AuditRun> {
  const config = opts.config ?? (await loadConfig(opts.configPath));
  checkConfigAgainstCatalog(config);
  const scope: Scope = {
    orgs: opts.scope?.orgs ?? [],
    appInstances: opts.scope?.appInstances ?? [],
    correlationIds: opts.scope?.correlationIds ?? [],
  };
  const db = opts.dbPath ? await Db.open(opts.dbPath, opts.memory ?? {}) : await Db.openScratch(opts.memory);
  try {
    const loadStarted = performance.now();
    const load = opts.bigquery
      ? await loadBigQuery(db, opts.bigquery, config.config)
      : await loadExports(db, exportsDirOf(opts), config.config, opts.onProgress ? { onProgress: opts.onProgress } : {});
    const timings: AuditRun['timings'] = { loadMs: performance.now() - loadStarted, invariantsMs: {} };
    const asOf = opts.asOf
      ? await normaliseAsOf(db, opts.asOf)
      : ((await latestTimestamp(db, load.tables)) ?? (await normaliseAsOf(db, new Date().toISOString())));
    await createInvariantContext(db, config.config, asOf);
    await db.run(VIOLATIONS_DDL);

    const outcomes = new Map<string, { severity: Severity; skipped?: string; error?: string }>();
    for (const inv of CATALOG) {
      const severity = config.config.severity[inv.id] ?? inv.severity;
      const absent = inv.needs.filter((t) => !load.tables.has(t));
      if (absent.length > 0) {
        outcomes.set(inv.id, { severity, skipped: `table${absent.length > 1 ? 's' : ''} ${absent.join(', ')} not in the export` });
        continue;
      }
      const started = performance.now();
      const error = await runInvariant(db, inv, severity, load.tables);
      timings.invariantsMs[inv.id] = performance.now() - started;
      outcomes.set(inv.id, error === undefined ? { severity } : { severity, error });
    }
    await applyScope(db, scope);
    await applyWaivers(db, config, asOf);
    const findings = await buildFindings(db, config, asOf, scope, load, outcomes);
    return { db, findings, load, config, scope, timings };
  } catch (err) {
    db.close();
    throw err;
  }
}

/** CONTRACT.md §4: 2 if any check could not run, 1 on error-severity violations, else 0. */
export function exitCodeFor(findings: Findings): 0 | 1 | 2 {
  if (findings.invariants.some((r) => r.error !== undefined)) return 2;
  return findings.invariants.some((r) => r.severity === 'error' && r.violations > 0) ? 1 : 0;
}
