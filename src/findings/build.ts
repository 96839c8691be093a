import type { LoadedConfig } from '../config.ts';
import type { TableName } from '../contract/tables.ts';
import { ENTITY_TABLE, type Severity } from '../contract/violations.ts';
import type { Db } from '../db.ts';
import type { ExportCounts } from '../engine/engine.ts';
import { ALL_CHECKS } from '../catalog/index.ts';
import type { Invariant } from '../catalog/types.ts';
import type { LoadResult } from '../sources/index.ts';
import { scopeRecord, type Scope } from '../scope.ts';
import { blastRadius, followUps } from './triage.ts';
import { judge } from './verdict.ts';
import { TOOL } from '../version.ts';
import { toViolation } from './io.ts';
import { atStakeSql, moneyTotals } from './money.ts';
import type { Findings, InvariantResult } from './types.ts';

/** How one check of the catalog ended, before its violations are counted. */
export interface Outcome {
  severity: Severity;
  skipped?: string;
  error?: string;
}

/**
 * The findings of an audit, from the `violations` table: per invariant its status, counts, money
 * (summed in DuckDB) and a bounded sample read back exactly; the de-duplicated totals, blast
 * radius and follow-ups. Config thresholds judge the counts here, and a severity they change is
 * written back to `violations` so every output agrees.
 */
export async function buildFindings(
  db: Db,
  loaded: LoadedConfig,
  asOf: string,
  scope: Scope,
  load: LoadResult,
  outcomes: Map<string, Outcome>,
  extra: {
    tableRows: Partial<Record<TableName, number>>;
    /** The blast radius's denominators, from the engine. */
    exports: ExportCounts;
    warnError: boolean;
    window?: { since: string | null; until: string | null };
    /** On a windowed audit: how the window restricted each invariant. */
    windowNote?: (inv: Invariant) => { windowed: boolean; note: string };
  },
): Promise<Findings> {
  const counts = await db.all<{ invariant_id: string; open: bigint; waived: bigint }>(
    `SELECT invariant_id, count(*) FILTER (WHERE NOT waived) AS open, count(*) FILTER (WHERE waived) AS waived
     FROM violations GROUP BY invariant_id`,
  );
  const money = await db.all<{ invariant_id: string; currency: string; amount: bigint }>(
    `SELECT invariant_id, currency, sum(amount_minor)::HUGEINT AS amount FROM violations
     WHERE ${atStakeSql()}
     GROUP BY ALL ORDER BY invariant_id, currency`,
  );
  const samples = await db.all(
    `SELECT * EXCLUDE (rn) FROM (
       SELECT *, row_number() OVER (PARTITION BY invariant_id ORDER BY waived, entity_id) AS rn FROM violations)
     WHERE rn <= $n ORDER BY invariant_id, rn`,
    { n: loaded.config.sample_size },
  );
  const allRows = Object.values(extra.tableRows).reduce((a, b) => a + b, 0);

  const invariants: InvariantResult[] = [];
  for (const inv of ALL_CHECKS) {
    const outcome = outcomes.get(inv.id)!;
    const c = counts.find((r) => r.invariant_id === inv.id);
    const open = Number(c?.open ?? 0n);
    const waived = Number(c?.waived ?? 0n);
    const byCurrency: Record<string, bigint> = {};
    for (const m of money) if (m.invariant_id === inv.id) byCurrency[m.currency] = m.amount;
    let severity = outcome.severity;
    let failing = open > 0;
    let threshold: InvariantResult['threshold'];
    const rule = loaded.config.invariants[inv.id];
    if (open > 0 && !outcome.error && (rule?.warn_above || rule?.fail_above)) {
      const table = ENTITY_TABLE[inv.entity];
      const judgement = judge(rule, open, byCurrency, table ? (extra.tableRows[table] ?? 0) : allRows);
      threshold = { outcome: judgement.outcome, reason: judgement.reason };
      failing = judgement.outcome !== 'tolerated';
      if (failing) severity = judgement.severity;
    }
    if (extra.warnError && severity === 'warn') severity = 'error';
    if (severity !== outcome.severity) {
      await db.run(`UPDATE violations SET severity = $severity WHERE invariant_id = $id`, { severity, id: inv.id });
    }
    const result: InvariantResult = {
      id: inv.id,
      title: inv.title,
      family: inv.family,
      severity,
      entity: inv.entity,
      status: outcome.skipped ? 'skipped' : outcome.error || failing ? 'fail' : waived > 0 ? 'waived' : 'pass',
      violations: open,
      waived_violations: waived,
      amount_minor_by_currency: byCurrency,
      sample: samples.filter((s) => s['invariant_id'] === inv.id).map((s) => toViolation({ ...s, severity })),
    };
    if (outcome.skipped) result.skipped_reason = outcome.skipped;
    if (outcome.error) result.error = outcome.error;
    if (threshold) result.threshold = threshold;
    if (extra.window && extra.windowNote && !outcome.skipped) result.window = extra.windowNote(inv);
    invariants.push(result);
  }

  // Per-invariant sums overlap (one defect, several angles); kept only as a labelled cross-check.
  const overlapping: Record<string, bigint> = {};
  for (const m of money) overlapping[m.currency] = (overlapping[m.currency] ?? 0n) + m.amount;
  const deduplicated = await moneyTotals(db);
  const sum = (f: (r: InvariantResult) => number) => invariants.reduce((acc, r) => acc + f(r), 0);
  return {
    schema_version: 1,
    tool: { ...TOOL },
    as_of: asOf,
    ...(extra.warnError ? { warn_error: true } : {}),
    ...(extra.window ? { window: extra.window } : {}),
    config_sha256: loaded.sha256,
    scope: scopeRecord(scope, ['orgs', 'app_instances']) as Findings['scope'],
    blast_radius: await blastRadius(db, extra.exports),
    follow_ups: await followUps(db),
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
      error_violations: sum((r) => (r.severity === 'error' && r.status === 'fail' ? r.violations : 0)),
      warn_violations: sum((r) => (r.severity === 'warn' && r.status === 'fail' ? r.violations : 0)),
      waived_violations: sum((r) => r.waived_violations),
      amount_minor_by_currency: deduplicated.total,
      error_amount_minor_by_currency: deduplicated.error,
      warn_amount_minor_by_currency: deduplicated.warn,
      money_items: deduplicated.items,
      overlapping_amount_minor_by_currency: Object.fromEntries(Object.entries(overlapping).sort(([a], [b]) => a.localeCompare(b))),
    },
  };
}
