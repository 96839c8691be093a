import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseInstant } from './contract/instant.ts';
import type { TableName } from './contract/tables.ts';
import { discoverConfig, durationSeconds, loadConfig, type LoadedConfig } from './config.ts';
import { Db, fitsInMemory, type ScratchOptions } from './db.ts';
import { ConfigError, UsageError } from './errors.ts';
import { buildFindings, type Outcome } from './findings/build.ts';
import { ALL_CHECKS } from './catalog/index.ts';
import { BigQueryEngine } from './engine/bigquery/index.ts';
import { DuckDbEngine } from './engine/duckdb/index.ts';
import type { Engine, TableFacts } from './engine/engine.ts';
import { VIOLATIONS_DDL, type Severity } from './contract/violations.ts';
import type { Findings } from './findings/types.ts';
import type { Invariant } from './catalog/types.ts';
import { loadBigQuery, type BigQuerySource } from './sources/bigquery.ts';
import {
  applyScopeTo,
  normaliseScope,
  validateScopeAgainstExports,
  type IncidentIds,
  type Scope,
  type ScopeKey,
} from './scope.ts';
import { loadExports, type LoadOptions, type LoadResult } from './sources/index.ts';
import { exitCodeFor, matchesPattern } from './findings/verdict.ts';

export { exitCodeFor };

export type { Scope } from './scope.ts';

export interface AuditOptions {
  /** The export directory; or `bigquery`, to read the same tables from a dataset. */
  exportsDir?: string;
  bigquery?: BigQuerySource;
  /**
   * Where the catalog runs: `duckdb` (default) over the exports loaded locally, or `bigquery`
   * inside the `bigquery` dataset, bringing back only the violations.
   */
  engine?: 'duckdb' | 'bigquery';
  configPath?: string;
  /** An already-loaded config; wins over `configPath`. */
  config?: LoadedConfig;
  /** ISO-8601 instant; default: the latest timestamp in the exports (CONTRACT.md §2). */
  asOf?: string;
  /** Narrows the findings (src/scope.ts); every value must match something in the exports. */
  scope?: Partial<Record<ScopeKey, readonly string[]>>;
  /** The command named in a scope error message. */
  command?: string;
  /**
   * `recon incident`: instead of the scope, keep the violations of one incident (its ids or
   * the rows carrying them, narrowToIncident in src/scope.ts); the ids must exist like scope values.
   */
  incident?: IncidentIds;
  /**
   * Where the DuckDB database lives. Default: a scratch file in a temp dir, removed on close,
   * bounded by `memory` (tables beyond the limit spill to disk instead of failing).
   */
  dbPath?: string;
  memory?: ScratchOptions;
  onProgress?: LoadOptions['onProgress'];
  /** Called as each check's query finishes (a CI log shows the audit moving). */
  onCheck?: (id: string, ms: number) => void;
  /** Invariant ids, families or globs to run; the rest are skipped with the reason. Default: all. */
  select?: string[];
  /** Invariant ids, families or globs not to run. */
  exclude?: string[];
  /** Warnings count as errors: in the findings, the exit code, junit.xml and Vitest. */
  warnError?: boolean;
  /** Restrict violations to usage and ledger activity in [since, until) (ISO-8601 instants). */
  window?: { since?: string; until?: string };
  /** The real clock, for freshness (tests pin it). */
  now?: () => Date;
}

export interface AuditRun {
  /** The local session: `violations` and everything derived from it (`engine.db`). */
  db: Db;
  /** Where the contract tables are read: outputs that need more than the violations ask it. */
  engine: Engine;
  findings: Findings;
  load: LoadResult;
  config: LoadedConfig;
  scope: Scope;
  /** Wall time of loading and of each invariant, in ms (the benchmark; `recon audit` puts totals in findings). */
  timings: { loadMs: number; invariantsMs: Record<string, number> };
  /** Rows per loaded table, the denominator of percentage thresholds. */
  tableRows: Partial<Record<TableName, number>>;
}

/** About one row group of CSV text; compressed files count eight times their size. */
const SMALL_EXPORT_BYTES = 16 * 2 ** 20;

/** The size of an export folder's files, compressed ones weighted by a typical ratio; 0 if unreadable (the loaders say why). */
async function exportBytes(dir: string): Promise<number> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  let bytes = 0;
  for (const e of entries) {
    if (!e.isFile() && !e.isSymbolicLink()) continue;
    const size = await stat(path.join(e.parentPath, e.name)).then((st) => st.size, () => 0);
    bytes += e.name.endsWith('.gz') ? size * 8 : e.name.endsWith('.parquet') ? size * PARQUET_EXPANSION : size;
  }
  return bytes;
}

/** Parquet's compressed columns take several times their size once in DuckDB's memory. */
const PARQUET_EXPANSION = 6;
/** DuckDB's uncompressed in-memory tables per byte of CSV (1M usage rows: 411 MB of CSV, 677 MB of tables). */
const MEMORY_PER_TEXT_BYTE = 1.7;

function checkConfigAgainstCatalog(loaded: LoadedConfig): void {
  const ids = new Set(ALL_CHECKS.map((i) => i.id));
  const problems: string[] = [];
  for (const id of Object.keys(loaded.config.severity)) {
    if (!ids.has(id)) problems.push(`severity.${id}: unknown invariant`);
  }
  for (const id of Object.keys(loaded.config.invariants)) {
    if (!ids.has(id)) problems.push(`invariants.${id}: unknown invariant`);
  }
  loaded.config.waivers.forEach((w, i) => {
    if (!ids.has(w.invariant)) problems.push(`waivers.${i}.invariant: unknown invariant "${w.invariant}"`);
  });
  if (problems.length > 0) {
    throw new ConfigError(`invalid config ${loaded.source}:\n${problems.map((p) => `  ${loaded.source}: ${p}`).join('\n')}`);
  }
}

/** Why a check is not run (config `off`, `--select`, `--exclude`), or undefined to run it. */
function selectionSkip(inv: Invariant, config: LoadedConfig['config'], select: string[], exclude: string[]): string | undefined {
  const setting = config.invariants[inv.id]?.severity ?? config.severity[inv.id];
  if (setting === 'off') return `disabled in the config (severity: off)`;
  if (select.length > 0 && !select.some((p) => matchesPattern(p, inv.id, inv.family))) {
    return `not selected (--select ${select.join(',')})`;
  }
  const ex = exclude.find((p) => matchesPattern(p, inv.id, inv.family));
  return ex ? `excluded (--exclude ${ex})` : undefined;
}

function checkPatterns(flag: string, patterns: string[]): void {
  const unknown = patterns.filter((p) => !ALL_CHECKS.some((i) => matchesPattern(p, i.id, i.family)));
  if (unknown.length > 0) throw new UsageError(`${flag} ${unknown.join(', ')}: matches no invariant (see recon list)`);
}

/**
 * Freshness (`contract.stale_export`): the newest timestamp of each configured table against the
 * real clock. A table that is absent or has no timestamp is stale too: nothing proves it arrived.
 */
async function createFreshness(db: Db, loaded: LoadedConfig, facts: TableFacts, now: Date): Promise<void> {
  await db.run(
    `CREATE OR REPLACE TABLE recon_freshness (table_name VARCHAR, max_age VARCHAR, max_age_seconds BIGINT,
       present BOOLEAN, newest TIMESTAMPTZ, checked_at TIMESTAMPTZ)`,
  );
  for (const [table, maxAge] of Object.entries(loaded.config.freshness) as Array<[TableName, string]>) {
    await db.run(`INSERT INTO recon_freshness SELECT $table, $max_age, $seconds, $present, $newest::TIMESTAMPTZ, $now::TIMESTAMPTZ`, {
      table,
      max_age: maxAge,
      seconds: durationSeconds(maxAge),
      present: table in facts.rows,
      newest: facts.newest[table] ?? null,
      now: now.toISOString(),
    });
  }
}

/**
 * A windowed audit keeps the violations of entities with usage or ledger activity in
 * [since, until) (the engine's restrictToWindow): the checks themselves still read every row, so a
 * debit posted inside the window for usage closed before it is judged against its real usage,
 * and the result is exactly the full audit restricted to the window. State checks (an
 * allocation, an app instance, a balance, a row that could not be read) have no activity time and
 * are kept whole, flagged.
 */
const WINDOWED: Partial<Record<Invariant['entity'], string>> = {
  usage_record: 'violations of usage records metering inside the window (start before its end, open or ending after its start)',
  ledger_entry: 'violations of ledger entries created inside the window',
  payment_session: 'violations of payment sessions created, completed or credited inside the window',
};

function windowNote(inv: Invariant): { windowed: boolean; note: string } {
  const note = WINDOWED[inv.entity];
  if (note) return { windowed: true, note };
  return { windowed: false, note: `not windowed: a ${inv.entity.replace('_', ' ')} has no activity time, so every violation is kept` };
}

/**
 * Marks waived violations and records, per waiver, what it matched (before scope and window, so a
 * waiver is judged stale only against the whole export) in `recon_waivers`, which the
 * `waivers.*` checks read.
 */
async function applyWaivers(db: Db, loaded: LoadedConfig, asOf: string, judged: (invariant: string) => boolean): Promise<void> {
  await db.run(
    `CREATE OR REPLACE TABLE recon_waivers (waiver VARCHAR, invariant VARCHAR, entity_id VARCHAR, reason VARCHAR,
       owner VARCHAR, ticket VARCHAR, expires DATE, expired BOOLEAN, matched BIGINT, matching BIGINT, judged BOOLEAN)`,
  );
  for (const [i, w] of loaded.config.waivers.entries()) {
    const expired = (await db.one<{ e: boolean }>(`SELECT coalesce($expires::DATE < $as_of::TIMESTAMPTZ::DATE, false) AS e`, {
      expires: w.expires ?? null,
      as_of: asOf,
    }))!.e;
    // An expired waiver no longer hides anything: the violation fails the audit again.
    const matched = expired
      ? 0
      : await db.change(
          `UPDATE violations SET waived = true, waiver_reason = $reason
           WHERE invariant_id = $invariant AND ($entity IS NULL OR entity_id = $entity)`,
          { invariant: w.invariant, entity: w.entity_id ?? null, reason: [w.reason, w.ticket, w.owner && `owner ${w.owner}`].filter(Boolean).join(' · ') },
        );
    await db.run(
      `INSERT INTO recon_waivers SELECT $waiver, $invariant, $entity, $reason, $owner, $ticket, $expires::DATE, $expired,
         $matched, (SELECT count(*) FROM violations WHERE invariant_id = $invariant AND ($entity IS NULL OR entity_id = $entity)), $judged`,
      {
        waiver: `waivers[${i}]`,
        invariant: w.invariant,
        entity: w.entity_id ?? null,
        reason: w.reason,
        owner: w.owner ?? null,
        ticket: w.ticket ?? null,
        expires: w.expires ?? null,
        expired,
        matched,
        judged: judged(w.invariant),
      },
    );
  }
}

function exportsDirOf(opts: AuditOptions): string {
  if (opts.exportsDir === undefined) throw new UsageError('an audit needs --exports DIR or --bigquery PROJECT.DATASET');
  return opts.exportsDir;
}

/**
 * Where the contract tables are: files or a dataset loaded into the local session (the DuckDB
 * engine), or a dataset the catalog runs in (the BigQuery engine, `--engine bigquery`).
 * `exportSize` is the export folder's weighted size (exportBytes), undefined for a dataset.
 */
async function openEngine(db: Db, opts: AuditOptions, config: LoadedConfig, exportSize: number | undefined): Promise<{ engine: Engine; load: LoadResult }> {
  if (opts.engine === 'bigquery') {
    if (!opts.bigquery) throw new UsageError('--engine bigquery runs the catalog in a BigQuery dataset: give it with --bigquery PROJECT.DATASET');
    const engine = await BigQueryEngine.open(db, opts.bigquery, config.config);
    return { engine, load: { tables: new Set(engine.tables), inputs: engine.inputs() } };
  }
  // Below one row group DuckDB has nothing to split; for a small export folder the load runs on
  // one thread too, and the rows counted after it decide for the catalog (engine.tableFacts).
  const small = exportSize !== undefined && exportSize < SMALL_EXPORT_BYTES;
  if (small) await db.run(`SET threads = 1`);
  const load = opts.bigquery
    ? await loadBigQuery(db, opts.bigquery, config.config)
    : await loadExports(db, exportsDirOf(opts), config.config, opts.onProgress ? { onProgress: opts.onProgress } : {});
  return { engine: DuckDbEngine.over(db, load.tables), load };
}

/**
 * The audit: load the exports, run every invariant of the catalog (and the checks of the audit
 * itself) into one `violations` table, and derive the findings from it. The caller owns `run.db`
 * and must close it.
 */
export async function auditExports(opts: AuditOptions): Promise<AuditRun> {
  const config = opts.config ?? (await loadConfig(discoverConfig(opts.configPath)));
  checkConfigAgainstCatalog(config);
  const select = opts.select ?? [];
  const exclude = opts.exclude ?? [];
  checkPatterns('--select', select);
  checkPatterns('--exclude', exclude);
  // Instants are read before anything loads: a typo costs nothing, not a whole load.
  const givenAsOf = opts.asOf ? parseInstant(opts.asOf, '--as-of') : undefined;
  const window =
    opts.window && (opts.window.since || opts.window.until)
      ? {
          since: opts.window.since ? parseInstant(opts.window.since, '--since') : null,
          until: opts.window.until ? parseInstant(opts.window.until, '--until') : null,
        }
      : undefined;
  if (window?.since && window.until && Date.parse(window.since) >= Date.parse(window.until)) {
    throw new UsageError(`--since ${window.since} is not before --until ${window.until}`);
  }
  const fromFiles = opts.engine !== 'bigquery' && !opts.bigquery;
  const bytes = fromFiles ? await exportBytes(exportsDirOf(opts)) : undefined;
  const inMemory = bytes !== undefined && fitsInMemory(bytes * MEMORY_PER_TEXT_BYTE, opts.memory?.memoryLimit);
  const db = opts.dbPath ? await Db.open(opts.dbPath, opts.memory ?? {}) : await Db.openScratch({ ...opts.memory, inMemory });
  try {
    const loadStarted = performance.now();
    const { engine, load } = await openEngine(db, opts, config, bytes);
    const timings: AuditRun['timings'] = { loadMs: performance.now() - loadStarted, invariantsMs: {} };
    const asked = opts.incident ? { correlation_ids: opts.incident.correlationIds, trace_ids: opts.incident.traceIds } : opts.scope;
    const scope = await validateScopeAgainstExports((key, values) => engine.unmatchedScopeValues(key, values), normaliseScope(asked), opts.command ?? 'audit');
    const facts = await engine.tableFacts();
    if (opts.engine === 'bigquery') for (const input of load.inputs) input.rows = facts.rows[input.table as TableName] ?? 0;
    const asOf = givenAsOf ?? facts.latest ?? parseInstant(new Date().toISOString(), 'the clock');
    const tableRows = facts.rows;

    // Each check's severity and, for one that will not run, why.
    const plan = new Map<string, Outcome>();
    for (const inv of ALL_CHECKS) {
      const setting = config.config.invariants[inv.id]?.severity ?? config.config.severity[inv.id];
      const severity: Severity = setting === 'error' || setting === 'warn' ? setting : inv.severity;
      const absent = inv.needs.filter((t) => !load.tables.has(t));
      const skipped =
        selectionSkip(inv, config.config, select, exclude) ??
        (absent.length > 0 ? `table${absent.length > 1 ? 's' : ''} ${absent.join(', ')} not in the export` : undefined);
      plan.set(inv.id, skipped ? { severity, skipped } : { severity });
    }
    await engine.prepare(config.config, asOf, ALL_CHECKS.filter((inv) => !plan.get(inv.id)!.skipped));
    await createFreshness(db, config, facts, opts.now?.() ?? new Date());
    await db.run(VIOLATIONS_DDL);

    const outcomes = new Map<string, Outcome>();
    const run = async (inv: Invariant) => {
      const planned = plan.get(inv.id)!;
      if (planned.skipped) return void outcomes.set(inv.id, planned);
      const started = performance.now();
      const error = await engine.run(inv, planned.severity);
      timings.invariantsMs[inv.id] = performance.now() - started;
      opts.onCheck?.(inv.id, timings.invariantsMs[inv.id]!);
      outcomes.set(inv.id, error === undefined ? { severity: planned.severity } : { severity: planned.severity, error });
    };
    for (const inv of ALL_CHECKS) if (inv.phase !== 'after_waivers') await run(inv);
    await engine.tagControlPlane();
    // A waiver is judged stale only if its invariant ran, over the whole export.
    await applyWaivers(db, config, asOf, (id) => {
      const o = outcomes.get(id);
      return o !== undefined && !o.skipped && !o.error;
    });
    if (window) await engine.restrictToWindow(window);
    if (opts.incident) await engine.narrowToIncident({ correlationIds: scope.correlation_ids, traceIds: scope.trace_ids });
    else await applyScopeTo(db, 'violations', scope);
    for (const inv of ALL_CHECKS) if (inv.phase === 'after_waivers') await run(inv);
    const findings = await buildFindings(db, config, asOf, scope, load, outcomes, {
      tableRows,
      exports: await engine.exportCounts(),
      warnError: opts.warnError ?? false,
      ...(window ? { window, windowNote } : {}),
    });
    if (select.length > 0 || exclude.length > 0) findings.selection = { select, exclude };
    return { db, engine, findings, load, config, scope, timings, tableRows };
  } catch (err) {
    db.close();
    throw err;
  }
}
