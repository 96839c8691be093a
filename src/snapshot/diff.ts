import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'lossless-json';
import { listValue } from '@duckdb/node-api';
import type { TableName } from '../contract/tables.ts';
import { writeCustomerSummaries } from '../outputs/customer.ts';
import { Db } from '../db.ts';
import { InputError, errorMessage } from '../errors.ts';
import { VIOLATION_COLUMNS } from '../contract/violations.ts';
import type { Findings } from '../findings/types.ts';
import { parseFindings, toViolation } from '../findings/io.ts';
import { TOOL } from '../version.ts';
import { CORRECTIVE_ENTRY_TYPES } from '../engine/engine.ts';
import { DuckDbEngine } from '../engine/duckdb/index.ts';
import { MANIFEST_FILE, describeScope, normaliseScope, sameScope, type Manifest, type SnapshotScope } from './manifest.ts';
import { renderDiffHtml } from './render.ts';
import { LIST_LIMIT, type DiffSide, type CheckResult, type CheckName, type PersistingViolation, type CorrectiveEntry, type DiffMoneyItem, type Reconciliation, type DiffDocument } from './diff-document.ts';
import { describeVerify, verifySnapshot } from './verify.ts';
import { isoSql, PARQUET_OPTIONS, sqlList } from '../sql.ts';
import { applyScopeTo, scopeRecord, validateScopeAgainstViolations } from '../scope.ts';
import { IDENTITY_SQL, sameViolationSql } from '../findings/identity.ts';
import { atStakeSql, moneyItemsSql } from '../findings/money.ts';

const CHECK_ENTITY_LIMIT = 50;

export interface DiffOptions {
  beforeDir: string;
  afterDir: string;
  outDir: string;
  strict?: boolean;
  /** Narrows both sides further (repeats union, flags intersect); a value matching no violation is an error. */
  scope?: Partial<SnapshotScope>;
}

export interface DiffResult {
  diff: DiffDocument;
  files: string[];
  exitCode: 0 | 1;
}

const exists = (p: string) => stat(p).then(() => true, () => false);

interface LoadedSide {
  side: DiffSide;
  /** Invariants that did not run on this side (skipped, or their query failed), with the reason. */
  notRun: Map<string, string>;
  /** Why this side is not verified evidence (no manifest), said loudly; null for a verified snapshot. */
  unverified: string | null;
  violationsFile: string;
  /** Evidence ledger rows (snapshots only). */
  ledgerFile: string | null;
}

async function readFindingsFile(dir: string, role: string): Promise<Findings> {
  const file = path.join(dir, 'findings.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InputError(`recon diff: ${role} ${dir}: cannot read findings.json (${errorMessage(err)})`, { cause: err });
  }
  try {
    return parseFindings(text);
  } catch (err) {
    throw new InputError(`recon diff: ${role} ${file}: not valid JSON (${errorMessage(err)})`, { cause: err });
  }
}

/**
 * Recognises a snapshot (manifest.json) or an audit output folder (findings.json and
 * violations.parquet). A snapshot must pass verification: evidence that was altered after the
 * fact is refused, not compared.
 */
async function loadSide(dir: string, role: 'BEFORE' | 'AFTER'): Promise<LoadedSide> {
  const isDir = await stat(dir).then((s) => s.isDirectory(), () => false);
  if (!isDir) throw new InputError(`recon diff: ${role} ${dir} is not a folder`);
  const violationsFile = path.join(dir, 'violations.parquet');
  let manifest: Manifest | null = null;
  let manifestSha: string | null = null;
  if (await exists(path.join(dir, MANIFEST_FILE))) {
    const verified = await verifySnapshot(dir);
    if (!verified.ok) {
      throw new InputError(
        `recon diff: ${role} snapshot ${dir} fails verification; refusing to compare altered evidence:\n  ${describeVerify(dir, verified).join('\n  ')}`,
      );
    }
    manifest = verified.manifest;
    manifestSha = verified.manifest_sha256;
  } else if (!(await exists(path.join(dir, 'findings.json')))) {
    throw new InputError(
      `recon diff: ${role} ${dir} is neither a snapshot (no ${MANIFEST_FILE}) nor an audit output folder (no findings.json)`,
    );
  }
  if (!(await exists(violationsFile))) throw new InputError(`recon diff: ${role} ${dir} has no violations.parquet`);
  const findings = await readFindingsFile(dir, role);
  const findingsScope = findings.scope;
  const scope = normaliseScope(manifest ? manifest.scope : findingsScope);
  const ledgerFile = manifest ? path.join(dir, 'evidence', 'ledger_entries.parquet') : null;
  return {
    side: {
      dir,
      kind: manifest ? 'snapshot' : 'audit',
      label: manifest?.label ?? null,
      created_at: manifest?.created_at ?? null,
      as_of: findings.as_of,
      tool: findings.tool,
      findings_schema_version: findings.schema_version,
      config_sha256: findings.config_sha256,
      scope,
      integrity: manifest ? 'verified' : 'UNVERIFIED (no manifest.json)',
      manifest_sha256: manifestSha,
      violations: 0,
    },
    unverified: manifest
      ? null
      : `${role} ${dir} is not a verified snapshot (no ${MANIFEST_FILE}` +
        ((await exists(path.join(dir, 'evidence'))) ? '; it holds evidence/, so it looks like a snapshot whose manifest was removed' : '') +
        `): its findings and violations could have been edited and nothing would show it`,
    notRun: new Map(
      findings.invariants.flatMap((r) =>
        r.status === 'skipped' || r.error !== undefined ? [[r.id, r.error !== undefined ? `could not run: ${r.error}` : `skipped: ${r.skipped_reason ?? 'no reason given'}`] as const] : [],
      ),
    ),
    violationsFile,
    ledgerFile: ledgerFile && (await exists(ledgerFile)) ? ledgerFile : null,
  };
}

function listEntities(failing: { count: number; sample: ReadonlyArray<{ invariant_id: string; entity_id: string }> }): string {
  const shown = failing.sample.slice(0, 10).map((v) => `${v.invariant_id} ${v.entity_id}`);
  return shown.join(', ') + (failing.count > shown.length ? ` and ${failing.count - shown.length} more` : '');
}

function check(
  failing: { count: number; sample: ReadonlyArray<{ invariant_id: string; entity_id: string }> },
  pass: string,
  fail: (n: number) => string,
): CheckResult {
  return failing.count === 0
    ? { passed: true, details: pass, entities: [] }
    : { passed: false, details: `${fail(failing.count)}: ${listEntities(failing)}`, entities: [...failing.sample] };
}

/** `*.duplicate_*` (CONTRACT.md §5): ledger.duplicate_debit, usage.duplicate_open, contract.duplicate_key, ... */
const DUPLICATE_INVARIANT = String.raw`^[^.]+\.duplicate_`;

const COLUMNS = VIOLATION_COLUMNS.map((c) => c.name).join(', ');

/**
 * One row per (invariant_id, entity_id). The contract reports one violation per entity, but a
 * key shared by two rows (itself a `contract.duplicate_key`) can give two `contract.invalid_value`
 * rows with one entity id; the first in a total order is compared and the diff says so.
 */
async function loadViolations(db: Db, table: string, file: string, role: string): Promise<number> {
  try {
    await db.run(`CREATE TABLE ${table}_all AS SELECT ${COLUMNS} FROM read_parquet($file)`, { file });
  } catch (err) {
    throw new InputError(`recon diff: ${role} ${file} is not a violations file of this recon version: ${errorMessage(err).split('\n')[0]}`, { cause: err });
  }
  await db.run(`CREATE TABLE ${table} AS SELECT * FROM ${table}_all
    QUALIFY row_number() OVER (PARTITION BY ${IDENTITY_SQL} ORDER BY ${COLUMNS}) = 1`);
  const n = await db.one<{ all: bigint; dedup: bigint }>(
    `SELECT (SELECT count(*) FROM ${table}_all) AS all, (SELECT count(*) FROM ${table}) AS dedup`,
  );
  return Number((n?.all ?? 0n) - (n?.dedup ?? 0n));
}

interface MatchCounts {
  not_comparable: number;
  resolved: number;
  persisting: number;
  introduced: number;
  open_error_introduced: number;
  open_error_persisting: number;
}

const SCOPE_COLUMNS = VIOLATION_COLUMNS.map((c) => c.name).filter(
  (n) => !['invariant_id', 'entity_id', 'severity', 'amount_minor', 'currency', 'detail', 'waived', 'waiver_reason'].includes(n),
);

/**
 * Table `d`: one row per (invariant_id, entity_id) of either side, with its status, the
 * severity and scope of its latest side, and the money and detail before and after. A key is
 * `open` when its latest side is not waived.
 */
async function matchViolations(db: Db, notComparable: readonly string[], inScope: string): Promise<MatchCounts> {
  // A check that did not run on one side says nothing there: its violations are neither resolved nor introduced.
  await db.run(`CREATE TABLE d AS
    SELECT coalesce(a.invariant_id, b.invariant_id) AS invariant_id, coalesce(a.entity_id, b.entity_id) AS entity_id,
      CASE WHEN coalesce(a.invariant_id, b.invariant_id) IN (${notComparable.length ? sqlList(notComparable) : 'NULL'}) THEN 'not_comparable'
           WHEN b.invariant_id IS NULL THEN 'introduced' WHEN a.invariant_id IS NULL THEN 'resolved' ELSE 'persisting' END AS status,
      coalesce(a.severity, b.severity) AS severity,
      NOT coalesce(a.waived, b.waived, false) AS open,
      ${SCOPE_COLUMNS.map((c) => `coalesce(a.${c}, b.${c}) AS ${c}`).join(', ')},
      b.amount_minor AS before_amount_minor, b.currency AS before_currency, coalesce(b.waived, false) AS before_waived,
      a.amount_minor AS after_amount_minor, a.currency AS after_currency, coalesce(a.waived, false) AS after_waived,
      b.detail AS before_detail, a.detail AS after_detail
    FROM v_before b FULL OUTER JOIN v_after a ON ${sameViolationSql('a', 'b')}`);
  const c = await db.one<Record<keyof MatchCounts, bigint>>(`SELECT
      count(*) FILTER (WHERE status = 'not_comparable' AND ${inScope}) AS not_comparable,
      count(*) FILTER (WHERE status = 'resolved' AND ${inScope}) AS resolved,
      count(*) FILTER (WHERE status = 'persisting' AND ${inScope}) AS persisting,
      count(*) FILTER (WHERE status = 'introduced' AND ${inScope}) AS introduced,
      count(*) FILTER (WHERE status = 'introduced' AND open AND severity = 'error' AND ${inScope}) AS open_error_introduced,
      count(*) FILTER (WHERE status = 'persisting' AND open AND severity = 'error' AND ${inScope}) AS open_error_persisting
    FROM d`);
  return {
    not_comparable: Number(c?.not_comparable ?? 0n),
    resolved: Number(c?.resolved ?? 0n),
    persisting: Number(c?.persisting ?? 0n),
    introduced: Number(c?.introduced ?? 0n),
    open_error_introduced: Number(c?.open_error_introduced ?? 0n),
    open_error_persisting: Number(c?.open_error_persisting ?? 0n),
  };
}

const emptyMoney = (): DiffDocument['money'] => ({ before: {}, after: {}, resolved: {}, persisting_before: {}, persisting_after: {}, introduced: {} });

/** Per-violation sums per currency (overlapping), summed in DuckDB; waived violations excluded, as in the audit. */
async function overlappingMoney(db: Db, inScope: string): Promise<DiffDocument['money']> {
  const side = (name: string, prefix: 'before' | 'after', statuses: string) =>
    `SELECT '${name}' AS k, ${prefix}_currency AS currency, sum(${prefix}_amount_minor)::HUGEINT AS amount FROM d
     WHERE status IN (${statuses}) AND ${atStakeSql(`${prefix}_`)} AND ${inScope}
     GROUP BY ${prefix}_currency`;
  const rows = await db.all<{ k: keyof DiffDocument['money']; currency: string; amount: bigint }>(
    [
      side('before', 'before', `'resolved', 'persisting'`),
      side('after', 'after', `'persisting', 'introduced'`),
      side('resolved', 'before', `'resolved'`),
      side('persisting_before', 'before', `'persisting'`),
      side('persisting_after', 'after', `'persisting'`),
      side('introduced', 'after', `'introduced'`),
    ].join('\nUNION ALL\n') + '\nORDER BY k, currency',
  );
  const money = emptyMoney();
  for (const r of rows) money[r.k][r.currency] = BigInt(r.amount);
  return money;
}

/**
 * Table `items`: the money items of both sides (src/findings/money.ts), each priced once per side, with
 * its status: resolved (priced only before), introduced (only after), persisting (both).
 */
async function matchMoneyItems(db: Db, inScope: string): Promise<void> {
  await db.run(`CREATE TABLE items AS
    WITH b AS (${moneyItemsSql('v_before', [], inScope)}),
         a AS (${moneyItemsSql('v_after', [], inScope)})
    SELECT coalesce(a.item, b.item) AS item, coalesce(a.currency, b.currency) AS currency,
           CASE WHEN b.item IS NULL THEN 'introduced' WHEN a.item IS NULL THEN 'resolved' ELSE 'persisting' END AS status,
           coalesce(b.error_minor, b.warn_minor) AS before_minor, CASE WHEN b.error_minor IS NOT NULL THEN 'error' WHEN b.item IS NOT NULL THEN 'warn' END AS before_severity,
           coalesce(a.error_minor, a.warn_minor) AS after_minor, CASE WHEN a.error_minor IS NOT NULL THEN 'error' WHEN a.item IS NOT NULL THEN 'warn' END AS after_severity,
           coalesce(a.invariant_ids, b.invariant_ids) AS invariant_ids
    FROM b FULL OUTER JOIN a ON a.item = b.item AND a.currency = b.currency`);
}

/** Money at stake per currency from \`items\`, each movement once; with \`severity\`, only the items priced at it. */
async function itemMoney(db: Db, severity?: 'error' | 'warn'): Promise<DiffDocument['money']> {
  const sev = (side: 'before' | 'after') => (severity ? `AND ${side}_severity = '${severity}'` : '');
  const part = (name: string, side: 'before' | 'after', statuses: string) =>
    `SELECT '${name}' AS k, currency, sum(${side}_minor)::HUGEINT AS amount FROM items
     WHERE status IN (${statuses}) AND ${side}_minor IS NOT NULL ${sev(side)} GROUP BY currency`;
  const rows = await db.all<{ k: keyof DiffDocument['money']; currency: string; amount: bigint }>(
    [
      part('before', 'before', `'resolved', 'persisting'`),
      part('after', 'after', `'persisting', 'introduced'`),
      part('resolved', 'before', `'resolved'`),
      part('persisting_before', 'before', `'persisting'`),
      part('persisting_after', 'after', `'persisting'`),
      part('introduced', 'after', `'introduced'`),
    ].join('\nUNION ALL\n') + '\nORDER BY k, currency',
  );
  const money = emptyMoney();
  for (const r of rows) money[r.k][r.currency] = BigInt(r.amount);
  return money;
}

async function itemList(db: Db, status: 'resolved' | 'introduced'): Promise<DiffMoneyItem[]> {
  const side = status === 'resolved' ? 'before' : 'after';
  const rows = await db.all<{ item: string; currency: string; amount_minor: bigint; severity: 'error' | 'warn'; invariant_ids: { items: unknown[] } }>(
    `SELECT item, currency, ${side}_minor::HUGEINT AS amount_minor, ${side}_severity AS severity, invariant_ids FROM items
     WHERE status = '${status}' ORDER BY currency, abs(${side}_minor::HUGEINT) DESC, item LIMIT ${LIST_LIMIT}`,
  );
  return rows.map((r) => ({ ...r, amount_minor: BigInt(r.amount_minor), invariant_ids: r.invariant_ids.items.map(String) }));
}

/**
 * Resolved money against the corrective entries (adjustments and reversals that appeared), per
 * currency. Each entry is matched to the money item it corrects: a reversal to the item of the
 * entry it reverses, an adjustment to the usage record or payment session it names, else to
 * itself. Whatever does not match is listed with the reason, so the two figures reconcile.
 */
async function reconcile(db: Db, corrective: DiffDocument['corrective_entries'], afterLedger: string | null): Promise<Reconciliation> {
  if (!corrective.available || afterLedger === null) return { available: false, by_currency: [], explanations: [] };
  const ids = corrective.entries.map((e) => e.ledger_entry_id);
  await db.run(`CREATE TABLE corrections AS
    SELECT c.ledger_entry_id, c.entry_type, c.amount_minor, c.currency,
           coalesce('usage_record:' || coalesce(c.usage_record_id, t.usage_record_id),
                    'payment_session:' || coalesce(c.payment_session_id, t.payment_session_id),
                    'ledger_entry:' || coalesce(t.ledger_entry_id, c.ledger_entry_id)) AS item
    FROM (SELECT * FROM read_parquet($after) WHERE list_contains(from_json($ids, '["VARCHAR"]'), ledger_entry_id)
          QUALIFY row_number() OVER (PARTITION BY ledger_entry_id ORDER BY __file, __line) = 1) c
    LEFT JOIN (SELECT * FROM read_parquet($after) QUALIFY row_number() OVER (PARTITION BY ledger_entry_id ORDER BY __file, __line) = 1) t
      ON t.ledger_entry_id = c.reverses_ledger_entry_id`, { after: afterLedger, ids: JSON.stringify(ids) });
  const byCurrency = await db.all<{ currency: string; resolved_minor: bigint; corrective_minor: bigint }>(
    `WITH r AS (SELECT currency, sum(before_minor)::HUGEINT AS amount FROM items WHERE status = 'resolved' AND before_minor IS NOT NULL GROUP BY 1),
          c AS (SELECT currency, sum(abs(amount_minor::HUGEINT))::HUGEINT AS amount FROM corrections WHERE currency IS NOT NULL AND amount_minor IS NOT NULL GROUP BY 1)
     SELECT coalesce(r.currency, c.currency) AS currency, coalesce(r.amount, 0)::HUGEINT AS resolved_minor, coalesce(c.amount, 0)::HUGEINT AS corrective_minor
     FROM r FULL OUTER JOIN c USING (currency) ORDER BY 1`,
  );
  const explanations = await db.all<{ item: string; currency: string; amount_minor: bigint; reason: string }>(
    `WITH c AS (SELECT item, currency, sum(abs(amount_minor::HUGEINT))::HUGEINT AS amount, string_agg(ledger_entry_id, ', ' ORDER BY ledger_entry_id) AS entries
                FROM corrections WHERE currency IS NOT NULL AND amount_minor IS NOT NULL GROUP BY 1, 2),
          r AS (SELECT item, currency, before_minor AS amount FROM items WHERE status = 'resolved' AND before_minor IS NOT NULL)
     SELECT coalesce(r.item, c.item) AS item, coalesce(r.currency, c.currency) AS currency,
            CASE WHEN c.item IS NULL THEN r.amount WHEN r.item IS NULL THEN -c.amount ELSE r.amount - c.amount END::HUGEINT AS amount_minor,
            CASE WHEN c.item IS NULL THEN 'resolved without a corrective entry (an adjustment or reversal): fixed by a re-posted debit or credit, or by a change to the data'
                 WHEN r.item IS NULL THEN 'corrective entry ' || c.entries || ' corrects no money item this diff resolved (a goodwill or other adjustment, or a movement still at stake)'
                 ELSE 'corrective entry ' || c.entries || ' differs from the money resolved for this item' END AS reason
     FROM r FULL OUTER JOIN c ON c.item = r.item AND c.currency = r.currency
     WHERE c.item IS NULL OR r.item IS NULL OR r.amount <> c.amount
     ORDER BY 2, 1`,
  );
  return {
    available: true,
    by_currency: byCurrency.map((r) => {
      const resolved = BigInt(r.resolved_minor);
      const corr = BigInt(r.corrective_minor);
      return { currency: r.currency, resolved_minor: resolved, corrective_minor: corr, difference_minor: resolved - corr };
    }),
    explanations: explanations.map((e) => ({ ...e, amount_minor: BigInt(e.amount_minor) })),
  };
}

async function correctiveEntries(db: Db, before: LoadedSide, after: LoadedSide): Promise<DiffDocument['corrective_entries']> {
  if (before.side.kind !== 'snapshot' || after.side.kind !== 'snapshot') {
    return {
      available: false,
      reason:
        'unavailable: corrective ledger entries are read from the evidence of two snapshots; ' +
        `${[before, after].filter((s) => s.side.kind === 'audit').map((s) => s.side.dir).join(' and ')} ${
          before.side.kind === after.side.kind ? 'are audit output folders' : 'is an audit output folder'
        } (use recon snapshot)`,
      entries: [],
      unaudited: 0,
    };
  }
  if (!before.ledgerFile || !after.ledgerFile) {
    return { available: false, reason: 'unavailable: a snapshot has no evidence/ledger_entries.parquet', entries: [], unaudited: 0 };
  }
  const types = sqlList(CORRECTIVE_ENTRY_TYPES);
  const rows = await db.all<Omit<CorrectiveEntry, 'missing'>>(
    `SELECT a.ledger_entry_id, a.entry_type, a.direction, a.amount_minor, a.currency, a.org_id, a.requested_by_user_id,
            a.usage_record_id, a.payment_session_id, a.reverses_ledger_entry_id,
            nullif(trim(a.actor), '') AS actor, nullif(trim(a.correlation_id), '') AS correlation_id, a.trace_id,
            ${isoSql('a.created_at')} AS created_at,
            a.__file || ':' || a.__line AS source
     FROM read_parquet($after) a
     WHERE a.entry_type IN (${types}) AND a.ledger_entry_id IS NOT NULL
       AND a.ledger_entry_id NOT IN (SELECT ledger_entry_id FROM read_parquet($before) WHERE ledger_entry_id IS NOT NULL)
     ORDER BY a.created_at, a.ledger_entry_id, a.__file, a.__line`,
    { before: before.ledgerFile, after: after.ledgerFile },
  );
  const entries: CorrectiveEntry[] = rows.map((r) => ({
    ...r,
    missing: [...(r.actor === null ? ['actor'] : []), ...(r.correlation_id === null ? ['correlation_id'] : [])],
  }));
  return { available: true, entries, unaudited: entries.filter((e) => e.missing.length > 0).length };
}

/**
 * Customer-facing summaries of the diff: what was wrong and is now corrected (resolved), and
 * what is still wrong (persisting or introduced). When the sides are snapshots, their evidence
 * rows say when each movement happened.
 */
async function diffCustomerSummaries(db: Db, sides: LoadedSide[], outDir: string, asOf: string, scope: SnapshotScope): Promise<string[]> {
  const tables = new Set<TableName>();
  for (const t of ['usage_records', 'ledger_entries', 'payment_sessions'] as const) {
    const files = [];
    for (const s of sides) {
      const f = path.join(s.side.dir, 'evidence', `${t}.parquet`);
      if (s.side.kind === 'snapshot' && (await exists(f))) files.push(f);
    }
    if (files.length === 0) continue;
    await db.run(`CREATE OR REPLACE TEMP TABLE ${t} AS SELECT * FROM read_parquet($files::VARCHAR[], union_by_name = true)`, { files: listValue(files) });
    tables.add(t);
  }
  await db.run(`CREATE OR REPLACE TEMP VIEW d_customer AS
    SELECT * EXCLUDE (open, before_amount_minor, before_currency, before_waived, after_amount_minor, after_currency, after_waived, before_detail, after_detail),
      NOT open AS waived,
      CASE WHEN status = 'resolved' THEN before_amount_minor ELSE after_amount_minor END AS amount_minor,
      CASE WHEN status = 'resolved' THEN before_currency ELSE after_currency END AS currency,
      CASE WHEN status = 'resolved' THEN before_detail ELSE after_detail END AS detail
    FROM d`);
  return writeCustomerSummaries(db, outDir, {
    asOf,
    scope,
    // The snapshots' evidence rows are the contract tables here, read as any export is.
    engine: DuckDbEngine.over(db, tables),
    table: 'd_customer',
    statusSql: `CASE WHEN status = 'resolved' THEN 'corrected' ELSE 'open' END`,
  });
}

/**
 * `recon diff` (CONTRACT.md §5): matches the violations of two snapshots (or audit output
 * folders) by (invariant_id, entity_id) into resolved / persisting / introduced, with money at
 * stake per currency, evaluates the runbooks' recovery criteria as named checks, lists the
 * corrective ledger entries that appeared, and writes diff.json and diff.html.
 *
 * Waived violations are listed (with `waived: true`) but, as in the audit, neither count as
 * money at stake nor fail a check or the exit code.
 */
export async function diffSnapshots(opts: DiffOptions): Promise<DiffResult> {
  const strict = opts.strict ?? false;
  const before = await loadSide(opts.beforeDir, 'BEFORE');
  const after = await loadSide(opts.afterDir, 'AFTER');
  if (before.side.findings_schema_version !== after.side.findings_schema_version) {
    throw new InputError(
      `recon diff: findings schema_version differs (BEFORE ${before.side.findings_schema_version}, AFTER ${after.side.findings_schema_version}); ` +
        're-run both audits with one version of recon',
    );
  }
  if (!sameScope(before.side.scope, after.side.scope)) {
    throw new InputError(
      `recon diff: the two inputs cover different scopes, so a violation missing from one may simply be out of its scope:\n` +
        `  BEFORE ${before.side.dir}: ${describeScope(before.side.scope)}\n  AFTER  ${after.side.dir}: ${describeScope(after.side.scope)}\n` +
        'take both snapshots with the same --org, --app-instance and --correlation-id',
    );
  }

  const unverified = [before.unverified, after.unverified].filter((u): u is string => u !== null);
  if (strict && unverified.length > 0) {
    throw new InputError(`recon diff: --strict compares verified snapshots only:\n  ${unverified.join('\n  ')}`);
  }
  const warnings: string[] = unverified.map((u) => `UNVERIFIED: ${u}`);
  const db = await Db.open();
  try {
    const dupBefore = await loadViolations(db, 'v_before', before.violationsFile, 'BEFORE');
    const dupAfter = await loadViolations(db, 'v_after', after.violationsFile, 'AFTER');
    if (dupBefore) warnings.push(`BEFORE has ${dupBefore} repeated (invariant_id, entity_id) row(s); the first of each was compared`);
    if (dupAfter) warnings.push(`AFTER has ${dupAfter} repeated (invariant_id, entity_id) row(s); the first of each was compared`);
    const narrowed = await validateScopeAgainstViolations(db, normaliseScope(opts.scope), ['v_before', 'v_after'], 'diff');
    await applyScopeTo(db, 'v_before', narrowed);
    await applyScopeTo(db, 'v_after', narrowed);

    // A tenant-scoped diff judges the tenants in scope: violations naming no tenant are listed apart.
    const tenantScoped = before.side.scope.orgs.length > 0;
    const inScope = tenantScoped ? 'org_id IS NOT NULL' : 'true';
    const notComparable = [...new Set([...before.notRun.keys(), ...after.notRun.keys()])].sort();
    // A check skipped on both sides (an optional table absent from both exports) claims nothing either
    // way; one that ran on one side only, or failed, would otherwise read as resolved or introduced.
    const skippedBoth = (id: string) => [before, after].every((s) => s.notRun.get(id)?.startsWith('skipped'));
    const unjudged = notComparable.filter((id) => !skippedBoth(id));
    const counts = await matchViolations(db, notComparable, inScope);
    before.side.violations = counts.resolved + counts.persisting;
    after.side.violations = counts.introduced + counts.persisting;

    // Lists for diff.json (capped); every row is in diff.parquet.
    const order = `ORDER BY invariant_id, entity_id LIMIT ${LIST_LIMIT}`;
    const on = sameViolationSql('a', 'b');
    const comparable = notComparable.length ? `AND invariant_id NOT IN (${sqlList(notComparable)})` : '';
    const rows = async (sql: string) => (await db.all(sql)).map(toViolation);
    // In a tenant-scoped diff the violations without a tenant are listed apart (without_tenant).
    const resolved = await rows(`SELECT * FROM v_before b WHERE NOT EXISTS (SELECT 1 FROM v_after a WHERE ${on}) AND ${inScope} ${comparable} ${order}`);
    const introduced = await rows(`SELECT * FROM v_after a WHERE NOT EXISTS (SELECT 1 FROM v_before b WHERE ${on}) AND ${inScope} ${comparable} ${order}`);
    const persistingAfter = await rows(`SELECT * FROM v_after a WHERE EXISTS (SELECT 1 FROM v_before b WHERE ${on}) AND ${inScope} ${comparable} ${order}`);
    const persistingBefore = await rows(`SELECT * FROM v_before b WHERE EXISTS (SELECT 1 FROM v_after a WHERE ${on}) AND ${inScope} ${comparable} ${order}`);
    // Keys are unique on each side and both lists are in key order, so they pair up by index.
    const persisting: PersistingViolation[] = persistingAfter.map((a, i) => ({
      invariant_id: a.invariant_id,
      entity_id: a.entity_id,
      before: persistingBefore[i]!,
      after: a,
    }));

    // Money of a check that is not comparable is neither resolved nor introduced either.
    await matchMoneyItems(db, `${inScope} ${comparable}`);
    const money = await itemMoney(db);
    const moneyBySeverity = { error: await itemMoney(db, 'error'), warn: await itemMoney(db, 'warn') };
    const moneyOverlapping = await overlappingMoney(db, inScope);
    const moneyItems = { resolved: await itemList(db, 'resolved'), introduced: await itemList(db, 'introduced') };
    const withoutTenant = async (): Promise<DiffDocument['without_tenant']> => {
      if (!tenantScoped) return { applies: false, resolved: 0, persisting: 0, introduced: 0, violations: [] };
      const c = await db.one<{ resolved: bigint; persisting: bigint; introduced: bigint }>(
        `SELECT count(*) FILTER (WHERE status = 'resolved') AS resolved, count(*) FILTER (WHERE status = 'persisting') AS persisting,
                count(*) FILTER (WHERE status = 'introduced') AS introduced FROM d WHERE org_id IS NULL`,
      );
      const violations = await db.all<{ invariant_id: string; entity_id: string; status: string; severity: string }>(
        `SELECT invariant_id, entity_id, status, severity FROM d WHERE org_id IS NULL ORDER BY invariant_id, entity_id LIMIT ${LIST_LIMIT}`,
      );
      return { applies: true, resolved: Number(c?.resolved ?? 0n), persisting: Number(c?.persisting ?? 0n), introduced: Number(c?.introduced ?? 0n), violations };
    };
    const tenantless = await withoutTenant();
    if (tenantless.persisting + tenantless.introduced > 0) {
      warnings.push(
        `${tenantless.persisting + tenantless.introduced} violation(s) without a tenant persist or were introduced; a tenant-scoped diff lists them apart (without_tenant) and does not judge them`,
      );
    }
    const failing = async (where: string) => {
      const n = await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM d WHERE ${where} AND ${inScope}`);
      const sample = await db.all<{ invariant_id: string; entity_id: string }>(
        `SELECT invariant_id, entity_id FROM d WHERE ${where} AND ${inScope} ORDER BY invariant_id, entity_id LIMIT ${CHECK_ENTITY_LIMIT}`,
      );
      return { count: Number(n?.n ?? 0n), sample };
    };
    const notComparableViolations = await failing(`status = 'not_comparable'`);
    const checks: Record<CheckName, CheckResult> = {
      no_duplicates_introduced: check(
        await failing(`status = 'introduced' AND open AND regexp_matches(invariant_id, '${DUPLICATE_INVARIANT}')`),
        'no *.duplicate_* violation appeared that was not there before',
        (n) => `${n} duplicate violation(s) introduced`,
      ),
      no_unresolved_drift: check(
        await failing(`status = 'persisting' AND open`),
        before.side.violations === 0 ? 'nothing to resolve: BEFORE had no violations in scope' : 'every violation in scope before is resolved',
        (n) => `${n} violation(s) persist`,
      ),
      no_new_drift: check(await failing(`status = 'introduced' AND open`), 'no violation was introduced', (n) => `${n} violation(s) introduced`),
      every_check_comparable:
        unjudged.length === 0
          ? {
              passed: true,
              details: notComparable.length === 0 ? 'every check ran on both sides' : `every check ran on both sides, or on neither (${notComparable.join(', ')})`,
              entities: [],
            }
          : {
              passed: false,
              details:
                `${unjudged.length} check(s) did not run on both sides, so recovery cannot be shown for them ` +
                `(${notComparableViolations.count} violation(s) not comparable): ` +
                unjudged.map((id) => `${id} (${[before, after].map((s, i) => `${i ? 'AFTER' : 'BEFORE'} ${s.notRun.get(id) ?? 'ran'}`).join('; ')})`).join(', '),
              entities: notComparableViolations.sample,
            },
    };

    const errorIntroduced = counts.open_error_introduced;
    const errorPersisting = counts.open_error_persisting;
    let exitCode: 0 | 1 = 0;
    let exitReason = strict ? 'no error-severity violation introduced or persisting' : 'no error-severity violation introduced';
    if (errorIntroduced > 0) {
      exitCode = 1;
      exitReason = `${errorIntroduced} error-severity violation(s) introduced`;
    } else if (unjudged.length > 0) {
      exitCode = 1;
      exitReason = `${unjudged.length} check(s) skipped or failed on one side, so nothing can be said about them: ${unjudged.join(', ')}`;
    } else if (strict && errorPersisting > 0) {
      exitCode = 1;
      exitReason = `${errorPersisting} error-severity violation(s) persist (--strict)`;
    }

    const byInvariant = (
      await db.all<{ invariant_id: string; severity: string; resolved: bigint; persisting: bigint; introduced: bigint }>(
        `SELECT invariant_id, min(severity) AS severity, count(*) FILTER (WHERE status = 'resolved') AS resolved,
                count(*) FILTER (WHERE status = 'persisting') AS persisting, count(*) FILTER (WHERE status = 'introduced') AS introduced
         FROM d WHERE ${inScope} GROUP BY invariant_id ORDER BY invariant_id`,
      )
    ).map((r) => ({ ...r, resolved: Number(r.resolved), persisting: Number(r.persisting), introduced: Number(r.introduced) }));

    if (after.side.as_of < before.side.as_of) warnings.push(`AFTER is older than BEFORE (as of ${after.side.as_of} < ${before.side.as_of}): are the two the right way round?`);
    if (before.side.config_sha256 !== after.side.config_sha256) {
      warnings.push('the two audits ran with different configs (thresholds, severities, waivers or column mappings); some changes may come from the config, not the data');
    }
    if (before.side.tool.version !== after.side.tool.version) {
      warnings.push(`the two audits ran with different recon versions (${before.side.tool.version}, ${after.side.tool.version})`);
    }

    const corrective = await correctiveEntries(db, before, after);
    const reconciliation = await reconcile(db, corrective, after.ledgerFile);

    const diff: DiffDocument = {
      schema_version: 1,
      tool: { ...TOOL },
      strict,
      before: before.side,
      after: after.side,
      scope: before.side.scope,
      narrowed_to: scopeRecord(narrowed, []),
      warnings,
      summary: {
        resolved: counts.resolved,
        persisting: counts.persisting,
        introduced: counts.introduced,
        not_comparable: counts.not_comparable,
        not_comparable_invariants: notComparable.map((id) => ({
          invariant_id: id,
          before: before.notRun.get(id) ?? 'ran',
          after: after.notRun.get(id) ?? 'ran',
        })),
        lists_truncated: counts.resolved > resolved.length || counts.persisting > persisting.length || counts.introduced > introduced.length,
        by_invariant: byInvariant,
      },
      money,
      money_by_severity: moneyBySeverity,
      money_overlapping: moneyOverlapping,
      money_items: moneyItems,
      reconciliation,
      without_tenant: tenantless,
      checks,
      corrective_entries: corrective,
      resolved,
      persisting,
      introduced,
      exit_code: exitCode,
      exit_reason: exitReason,
    };

    await mkdir(opts.outDir, { recursive: true });
    const jsonFile = path.join(opts.outDir, 'diff.json');
    const htmlFile = path.join(opts.outDir, 'diff.html');
    const parquetFile = path.join(opts.outDir, 'diff.parquet');
    await writeFile(jsonFile, stringify(diff, null, 2) + '\n');
    await writeFile(htmlFile, await renderDiffHtml(diff));
    await db.run(`COPY (SELECT * EXCLUDE (open), NOT open AS waived FROM d ORDER BY invariant_id, entity_id) TO $path (${PARQUET_OPTIONS})`, {
      path: parquetFile,
    });
    const customers = await diffCustomerSummaries(db, [before, after], opts.outDir, after.side.as_of, narrowed);
    return { diff, files: [jsonFile, htmlFile, parquetFile, ...customers], exitCode };
  } finally {
    db.close();
  }
}
