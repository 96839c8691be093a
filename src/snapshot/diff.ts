import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'lossless-json';
import { listValue } from '@duckdb/node-api';
import type { TableName } from '../contract/tables.ts';
import { writeCustomerSummaries } from '../outputs/customer.ts';
import { Db } from '../db.ts';
import { TOOL } from '../version.ts';
import { DuckDbEngine } from '../engine/duckdb/index.ts';
import { normaliseScope, type SnapshotScope } from './manifest.ts';
import { renderDiffHtml } from './render.ts';
import type { DiffDocument } from './diff-document.ts';
import { exists, loadSides, type LoadedSide } from './diff-sides.ts';
import { countsByInvariant, itemList, itemMoney, listedViolations, loadViolations, matchMoneyItems, matchViolations, overlappingMoney, withoutTenant } from './diff-match.ts';
import { exitVerdict, recoveryChecks } from './diff-checks.ts';
import { correctiveEntries, reconcile } from './diff-corrective.ts';
import { PARQUET_OPTIONS, sqlList } from '../sql.ts';
import { applyScopeTo, scopeRecord, validateScopeAgainstViolations } from '../scope.ts';

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

/**
 * The diff document of two loaded sides, computed in `db` (which keeps table `d` for the files
 * written from it), and the narrowing the diff applied.
 */
async function computeDiff(
  db: Db,
  sides: { before: LoadedSide; after: LoadedSide; warnings: string[] },
  opts: DiffOptions,
): Promise<{ diff: DiffDocument; narrowed: SnapshotScope }> {
  const { before, after } = sides;
  const strict = opts.strict ?? false;
  const warnings = [...sides.warnings];
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

  const comparable = notComparable.length ? `AND invariant_id NOT IN (${sqlList(notComparable)})` : '';
  const { resolved, introduced, persisting } = await listedViolations(db, inScope, comparable);

  // Money of a check that is not comparable is neither resolved nor introduced either.
  await matchMoneyItems(db, `${inScope} ${comparable}`);
  const money = await itemMoney(db);
  const moneyBySeverity = { error: await itemMoney(db, 'error'), warn: await itemMoney(db, 'warn') };
  const moneyOverlapping = await overlappingMoney(db, inScope);
  const moneyItems = { resolved: await itemList(db, 'resolved'), introduced: await itemList(db, 'introduced') };
  const tenantless = await withoutTenant(db, tenantScoped);
  if (tenantless.persisting + tenantless.introduced > 0) {
    warnings.push(
      `${tenantless.persisting + tenantless.introduced} violation(s) without a tenant persist or were introduced; a tenant-scoped diff lists them apart (without_tenant) and does not judge them`,
    );
  }
  const checks = await recoveryChecks(db, { before, after }, inScope, notComparable, unjudged);
  const verdict = exitVerdict(counts, unjudged, strict);
  const byInvariant = await countsByInvariant(db, inScope);

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
    exit_code: verdict.exit_code,
    exit_reason: verdict.exit_reason,
  };
  return { diff, narrowed };
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
  const sides = await loadSides(opts.beforeDir, opts.afterDir, opts.strict ?? false);
  const db = await Db.open();
  try {
    const { diff, narrowed } = await computeDiff(db, sides, opts);
    await mkdir(opts.outDir, { recursive: true });
    const jsonFile = path.join(opts.outDir, 'diff.json');
    const htmlFile = path.join(opts.outDir, 'diff.html');
    const parquetFile = path.join(opts.outDir, 'diff.parquet');
    await writeFile(jsonFile, stringify(diff, null, 2) + '\n');
    await writeFile(htmlFile, await renderDiffHtml(diff));
    await db.run(`COPY (SELECT * EXCLUDE (open), NOT open AS waived FROM d ORDER BY invariant_id, entity_id) TO $path (${PARQUET_OPTIONS})`, {
      path: parquetFile,
    });
    const customers = await diffCustomerSummaries(db, [sides.before, sides.after], opts.outDir, diff.after.as_of, narrowed);
    return { diff, files: [jsonFile, htmlFile, parquetFile, ...customers], exitCode: diff.exit_code };
  } finally {
    db.close();
  }
}
