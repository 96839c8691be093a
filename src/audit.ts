import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseInstant } from './contract/instant.ts';
import { TABLES, quoteIdent, type TableName } from './contract/tables.ts';
import { discoverConfig, durationSeconds, loadConfig, type LoadedConfig } from './config.ts';
import { Db, type ScratchOptions } from './db.ts';
import { ConfigError, UsageError, errorMessage } from './errors.ts';
import { buildFindings, type Outcome } from './findings/build.ts';
import { firstRowPerKey, isoSql, sqlString } from './sql.ts';
import { ALL_CHECKS } from './catalog/index.ts';
import { createInvariantContext } from './catalog/setup.ts';
import { ENTITY_TABLE, VIOLATIONS_DDL, type Severity } from './contract/violations.ts';
import type { Findings } from './findings/types.ts';
import type { Invariant, OwnerRule } from './catalog/types.ts';
import { loadBigQuery, type BigQuerySource } from './sources/bigquery.ts';
import {
  applyScopeTo,
  narrowToIncident,
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
  db: Db;
  findings: Findings;
  load: LoadResult;
  config: LoadedConfig;
  scope: Scope;
  /** Wall time of loading and of each invariant, in ms (the benchmark; `recon audit` puts totals in findings). */
  timings: { loadMs: number; invariantsMs: Record<string, number> };
  /** Rows per loaded table, the denominator of percentage thresholds. */
  tableRows: Partial<Record<TableName, number>>;
}

/** DuckDB's row group: the unit it splits scans and hash tables by across threads. */
const DUCKDB_ROW_GROUP_ROWS = 122_880;
/** About one row group of CSV text; compressed files count eight times their size. */
const SMALL_EXPORT_BYTES = 16 * 2 ** 20;

/** The size of an export folder's files, compressed ones weighted by a typical ratio; 0 if unreadable (the loaders say why). */
async function exportBytes(dir: string): Promise<number> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  let bytes = 0;
  for (const e of entries) {
    if (!e.isFile() && !e.isSymbolicLink()) continue;
    const size = await stat(path.join(e.parentPath, e.name)).then((st) => st.size, () => 0);
    bytes += e.name.endsWith('.gz') ? size * 8 : size;
  }
  return bytes;
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

/** The owning layer of one violation row: the invariant's, unless a refinement of its detail matches. */
export function ownerSql(owner: OwnerRule): string {
  const cases = (owner.refine ?? []).map((r) => `WHEN coalesce(${r.when}, false) THEN ${sqlString(r.layer)}`);
  return cases.length ? `CASE ${cases.join(' ')} ELSE ${sqlString(owner.layer)} END` : sqlString(owner.layer);
}

/**
 * The usage row's control-plane flag on every violation that names a usage record, so
 * `--control-plane-component` can narrow any of them (and a diff can, from violations alone).
 */
async function tagControlPlane(db: Db): Promise<void> {
  await db.run(`UPDATE violations v SET control_plane_component = u.control_plane_component
    FROM (${firstRowPerKey('usage_records', 'usage_record_id', `usage_record_id IN (SELECT usage_record_id FROM violations)`)}) u
    WHERE v.usage_record_id = u.usage_record_id`);
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
async function createFreshness(db: Db, loaded: LoadedConfig, tables: ReadonlySet<TableName>, now: Date): Promise<void> {
  await db.run(
    `CREATE OR REPLACE TABLE recon_freshness (table_name VARCHAR, max_age VARCHAR, max_age_seconds BIGINT,
       present BOOLEAN, newest TIMESTAMPTZ, checked_at TIMESTAMPTZ)`,
  );
  for (const [table, maxAge] of Object.entries(loaded.config.freshness) as Array<[TableName, string]>) {
    const cols = TABLES[table].columns.filter((c) => c.type === 'timestamp').map((c) => `max(${quoteIdent(c.name)})`);
    const newest = tables.has(table) && cols.length > 0 ? `(SELECT greatest(${cols.join(', ')}) FROM ${quoteIdent(table)})` : 'NULL::TIMESTAMPTZ';
    await db.run(
      `INSERT INTO recon_freshness SELECT $table, $max_age, $seconds, $present, ${newest}, $now::TIMESTAMPTZ`,
      { table, max_age: maxAge, seconds: durationSeconds(maxAge), present: tables.has(table), now: now.toISOString() },
    );
  }
}

/**
 * A windowed audit keeps the violations of entities with usage or ledger activity in
 * [since, until): the checks themselves still read every row, so a debit posted inside the window
 * for usage closed before it is judged against its real usage, and the result is exactly the
 * full audit restricted to the window. State checks (an allocation, an app instance, a balance,
 * a row that could not be read) have no activity time and are kept whole, flagged.
 */
const WINDOWED: Partial<Record<Invariant['entity'], { id: string; sql: string; note: string }>> = {
  usage_record: {
    id: 'usage_record_id',
    note: 'violations of usage records metering inside the window (start before its end, open or ending after its start)',
    sql: `EXISTS (SELECT 1 FROM usage_records u WHERE u.usage_record_id = violations.usage_record_id
            AND ($until IS NULL OR u.start_time < $until::TIMESTAMPTZ)
            AND ($since IS NULL OR u.end_time IS NULL OR u.end_time >= $since::TIMESTAMPTZ))`,
  },
  ledger_entry: {
    id: 'ledger_entry_id',
    note: 'violations of ledger entries created inside the window',
    sql: `EXISTS (SELECT 1 FROM ledger_entries l WHERE l.ledger_entry_id = violations.ledger_entry_id
            AND ($since IS NULL OR l.created_at >= $since::TIMESTAMPTZ)
            AND ($until IS NULL OR l.created_at < $until::TIMESTAMPTZ))`,
  },
  payment_session: {
    id: 'payment_session_id',
    note: 'violations of payment sessions created, completed or credited inside the window',
    sql: `(EXISTS (SELECT 1 FROM payment_sessions p WHERE p.payment_session_id = violations.payment_session_id
             AND ((($since IS NULL OR p.created_at >= $since::TIMESTAMPTZ) AND ($until IS NULL OR p.created_at < $until::TIMESTAMPTZ))
               OR (($since IS NULL OR p.completed_at >= $since::TIMESTAMPTZ) AND ($until IS NULL OR p.completed_at < $until::TIMESTAMPTZ))))
          OR EXISTS (SELECT 1 FROM ledger_entries l WHERE l.payment_session_id = violations.payment_session_id
             AND ($since IS NULL OR l.created_at >= $since::TIMESTAMPTZ) AND ($until IS NULL OR l.created_at < $until::TIMESTAMPTZ)))`,
  },
};

function windowNote(inv: Invariant): { windowed: boolean; note: string } {
  const w = WINDOWED[inv.entity];
  if (w) return { windowed: true, note: w.note };
  return { windowed: false, note: `not windowed: a ${inv.entity.replace('_', ' ')} has no activity time, so every violation is kept` };
}

async function applyWindow(db: Db, window: { since: string | null; until: string | null }, tables: ReadonlySet<TableName>): Promise<void> {
  for (const [entity, w] of Object.entries(WINDOWED)) {
    if (!tables.has(ENTITY_TABLE[entity as Invariant['entity']]!)) continue;
    // A violation whose entity has no key cannot be placed in time: it is kept, never hidden.
    await db.run(`DELETE FROM violations WHERE entity_type = $entity AND ${w.id} IS NOT NULL AND NOT (${w.sql})`, {
      entity,
      since: window.since,
      until: window.until,
    });
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
              ${ownerSql(inv.owner)} AS owning_layer,
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
  const db = opts.dbPath ? await Db.open(opts.dbPath, opts.memory ?? {}) : await Db.openScratch(opts.memory);
  try {
    // Below one row group DuckDB has nothing to split (see below); for a small export folder the
    // load runs on one thread too, and the rows counted after it decide for the catalog.
    const small = !opts.bigquery && (await exportBytes(exportsDirOf(opts))) < SMALL_EXPORT_BYTES;
    if (small) await db.run(`SET threads = 1`);
    const loadStarted = performance.now();
    const load = opts.bigquery
      ? await loadBigQuery(db, opts.bigquery, config.config)
      : await loadExports(db, exportsDirOf(opts), config.config, opts.onProgress ? { onProgress: opts.onProgress } : {});
    const timings: AuditRun['timings'] = { loadMs: performance.now() - loadStarted, invariantsMs: {} };
    const asked = opts.incident ? { correlation_ids: opts.incident.correlationIds, trace_ids: opts.incident.traceIds } : opts.scope;
    const scope = await validateScopeAgainstExports(db, normaliseScope(asked), load.tables, opts.command ?? 'audit');
    const asOf =
      givenAsOf ?? (await latestTimestamp(db, load.tables)) ?? parseInstant(new Date().toISOString(), 'the clock');
    const tableRows: Partial<Record<TableName, number>> = {};
    for (const t of load.tables) {
      tableRows[t] = Number((await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM ${quoteIdent(t)}`))!.n);
    }
    // DuckDB splits work by row group (122,880 rows): below one there is nothing to run in
    // parallel, and idle worker threads only cost CPU (a fifth of a small audit's, measured on the
    // test suite's fixtures), which matters where many small audits share a machine.
    if (Math.max(0, ...Object.values(tableRows)) < DUCKDB_ROW_GROUP_ROWS) await db.run(`SET threads = 1`);
    else if (small) await db.run(`RESET threads`);
    await createInvariantContext(db, config.config, asOf);
    await createFreshness(db, config, load.tables, opts.now?.() ?? new Date());
    await db.run(VIOLATIONS_DDL);

    const outcomes = new Map<string, Outcome>();
    const run = async (inv: Invariant) => {
      const setting = config.config.invariants[inv.id]?.severity ?? config.config.severity[inv.id];
      const severity: Severity = setting === 'error' || setting === 'warn' ? setting : inv.severity;
      const deselected = selectionSkip(inv, config.config, select, exclude);
      if (deselected) return void outcomes.set(inv.id, { severity, skipped: deselected });
      const absent = inv.needs.filter((t) => !load.tables.has(t));
      if (absent.length > 0) {
        return void outcomes.set(inv.id, { severity, skipped: `table${absent.length > 1 ? 's' : ''} ${absent.join(', ')} not in the export` });
      }
      const started = performance.now();
      const error = await runInvariant(db, inv, severity, load.tables);
      timings.invariantsMs[inv.id] = performance.now() - started;
      opts.onCheck?.(inv.id, timings.invariantsMs[inv.id]!);
      outcomes.set(inv.id, error === undefined ? { severity } : { severity, error });
    };
    for (const inv of ALL_CHECKS) if (inv.phase !== 'after_waivers') await run(inv);
    await tagControlPlane(db);
    // A waiver is judged stale only if its invariant ran, over the whole export.
    await applyWaivers(db, config, asOf, (id) => {
      const o = outcomes.get(id);
      return o !== undefined && !o.skipped && !o.error;
    });
    if (window) await applyWindow(db, window, load.tables);
    if (opts.incident) await narrowToIncident(db, load.tables, { correlationIds: scope.correlation_ids, traceIds: scope.trace_ids });
    else await applyScopeTo(db, 'violations', scope);
    for (const inv of ALL_CHECKS) if (inv.phase === 'after_waivers') await run(inv);
    const findings = await buildFindings(db, config, asOf, scope, load, outcomes, {
      tableRows,
      warnError: opts.warnError ?? false,
      ...(window ? { window, windowNote } : {}),
    });
    if (select.length > 0 || exclude.length > 0) findings.selection = { select, exclude };
    return { db, findings, load, config, scope, timings, tableRows };
  } catch (err) {
    db.close();
    throw err;
  }
}
