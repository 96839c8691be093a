import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { AuditRun } from '../audit.ts';
import { VIOLATION_COLUMNS } from '../contract/violations.ts';
import type { Findings, InvariantResult } from '../findings/types.ts';
import { writeCustomerSummaries } from './customer.ts';
import { findingsJson } from '../findings/io.ts';
import { describeScope, isNarrowed, normaliseScope } from '../scope.ts';
import { blastRadiusMarkdown, followUpsMarkdown } from '../findings/triage.ts';
import { majorUnitsSql } from '../findings/money.ts';
import { formatMoneyByCurrency } from '../findings/format.ts';
import { exitCodeFor, tallyText, verdictOf, type Verdict } from '../findings/verdict.ts';

const VERDICT_MARK: Record<Verdict, string> = {
  pass: 'pass',
  warn: 'WARN',
  error: 'FAIL',
  skip: 'skipped',
  waived: 'waived',
};

/** `3 → 5 → 2`: violations over the last runs, this one last. */
function trendText(r: InvariantResult): string {
  return (r.trend ?? []).map((p) => (p.status === 'skipped' ? '–' : String(p.violations))).join(' → ');
}

function mdCell(text: string): string {
  return text.replaceAll('\\', '\\\\').replaceAll('|', '\\|').replaceAll('\n', ' ');
}

/** A Markdown page fit for a CI job summary ($GITHUB_STEP_SUMMARY and the like). */
export function summaryMarkdown(findings: Findings): string {
  const code = exitCodeFor(findings);
  const verdict =
    code === 0 ? 'no error-severity violations' : code === 1 ? 'error-severity violations found' : 'some checks could not run';
  const t = findings.totals;
  const lines = [
    `# billing-recon audit: ${verdict}`,
    '',
    ...blastRadiusMarkdown(findings.blast_radius),
    `\`${tallyText(findings)}\``,
    '',
    `As of **${findings.as_of}** · ${t.invariants} invariants: ${t.passed} passed, ${t.failed} failed, ${t.skipped} skipped, ${t.waived} waived · ` +
      `${t.violations} violations (${t.error_violations} error, ${t.warn_violations} warn, ${t.waived_violations} waived)`,
    '',
  ];
  if (Object.keys(t.amount_minor_by_currency).length > 0) {
    lines.push(
      `Money at stake, each money movement counted once (${t.money_items} movements): **${formatMoneyByCurrency(t.amount_minor_by_currency)}**` +
        ` — errors ${formatMoneyByCurrency(t.error_amount_minor_by_currency) || 'none'}; warnings only ${formatMoneyByCurrency(t.warn_amount_minor_by_currency) || 'none'}.`,
      '',
      `The per-invariant amounts below overlap (one defect is priced by every invariant that sees it; together ${formatMoneyByCurrency(t.overlapping_amount_minor_by_currency)}), so they do not add up to the total.`,
      '',
    );
  }
  if (isNarrowed(normaliseScope(findings.scope))) lines.push(`Scope: ${describeScope(findings.scope)}`, '');
  const baseline = findings.baseline !== undefined;
  const trend = findings.invariants.some((r) => (r.trend?.length ?? 0) > 1);
  if (findings.baseline) {
    const n = findings.invariants.reduce((a, r) => a + (r.baseline?.new ?? 0), 0);
    const p = findings.invariants.reduce((a, r) => a + (r.baseline?.persisting ?? 0), 0);
    const gone = findings.invariants.reduce((a, r) => a + (r.baseline?.resolved ?? 0), 0);
    lines.push(
      `Since the baseline (${findings.baseline.source}${findings.baseline.as_of ? `, as of ${findings.baseline.as_of}` : ''}): **${n} new**, ${p} persisting, ${gone} resolved`,
      '',
    );
  }
  if (findings.window) lines.push(`Window: ${findings.window.since ?? '…'} to ${findings.window.until ?? '…'} (usage and ledger activity)`, '');
  lines.push(
    `| status | invariant | severity | violations |${baseline ? ' new | persisting |' : ''}${trend ? ' trend |' : ''} money at stake (overlapping) | note |`,
    `|---|---|---|---:|${baseline ? '---:|---:|' : ''}${trend ? '---|' : ''}---|---|`,
  );
  for (const r of findings.invariants) {
    const notes = [
      r.error ? `query failed: ${r.error}` : r.skipped_reason,
      r.waived_violations ? `${r.waived_violations} waived` : undefined,
      r.threshold?.reason,
      r.window && !r.window.windowed ? r.window.note : undefined,
    ].filter(Boolean);
    const b = r.baseline;
    lines.push(
      `| ${VERDICT_MARK[verdictOf(r)]} | \`${r.id}\` ${mdCell(r.title)} | ${r.severity} | ${r.violations} |` +
        (baseline ? ` ${b ? b.new : '–'} | ${b ? b.persisting : '–'} |` : '') +
        (trend ? ` ${trendText(r)} |` : '') +
        ` ${formatMoneyByCurrency(r.amount_minor_by_currency)} | ${mdCell(notes.join('; '))} |`,
    );
  }
  lines.push('', ...followUpsMarkdown(findings.follow_ups));
  lines.push(`Inputs: ${findings.inputs.map((i) => `${i.source} (${i.rows} rows${i.rejected_rows ? `, ${i.rejected_rows} rejected` : ''})`).join(', ')}`, '');
  return lines.join('\n');
}

/**
 * A text cell a spreadsheet would run as a formula (`=HYPERLINK(…)`, `+cmd|…`, `@SUM`, `-1+1`,
 * or one starting with a tab or carriage return) gets a leading `'`, as OWASP's CSV injection
 * guidance says: the spreadsheet then shows the text instead of evaluating it. The ids come
 * from exports, which anyone upstream may have written; violations.parquet keeps them as they are.
 */
function neutralisedCell(column: string): string {
  return `CASE WHEN left(${column}, 1) IN ('=', '+', '-', '@', chr(9), chr(13)) THEN '''' || ${column} ELSE ${column} END`;
}

/**
 * Writes findings.json, violations.csv, violations.parquet and summary.md (CONTRACT.md §4).
 * The violation files come straight out of DuckDB in a stable order, so the same exports give
 * the same bytes.
 */
export async function writeAuditOutputs(run: AuditRun, outDir: string): Promise<string[]> {
  await mkdir(outDir, { recursive: true });
  const files = {
    findings: path.join(outDir, 'findings.json'),
    csv: path.join(outDir, 'violations.csv'),
    parquet: path.join(outDir, 'violations.parquet'),
    summary: path.join(outDir, 'summary.md'),
  };
  await writeFile(files.findings, findingsJson(run.findings));
  const order = 'ORDER BY invariant_id, entity_id, ledger_entry_id, usage_record_id';
  // amount_major: the same money as exact decimal text in major units, beside the minor units.
  const major = `${majorUnitsSql('amount_minor', 'currency')} AS amount_major`;
  const columns = (cell: (c: (typeof VIOLATION_COLUMNS)[number]) => string) =>
    VIOLATION_COLUMNS.map((c) => (c.name === 'amount_minor' ? `amount_minor, ${major}` : cell(c))).join(', ');
  const select = `SELECT ${columns((c) => c.name)} FROM violations ${order}`;
  const csvSelect = `SELECT ${columns((c) => (c.sql === 'VARCHAR' ? `${neutralisedCell(c.name)} AS ${c.name}` : c.name))} FROM violations ${order}`;
  await run.db.run(`COPY (${csvSelect}) TO $path (FORMAT csv, HEADER true)`, { path: files.csv });
  await run.db.run(`COPY (${select}) TO $path (FORMAT parquet, COMPRESSION zstd)`, { path: files.parquet });
  await writeFile(files.summary, summaryMarkdown(run.findings));
  const customers = await writeCustomerSummaries(run.db, outDir, { asOf: run.findings.as_of, scope: run.scope, engine: run.engine });
  return [...Object.values(files), ...customers];
}
