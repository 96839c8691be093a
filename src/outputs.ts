import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'lossless-json';
import type { AuditRun } from './audit.ts';
import { exitCodeFor } from './audit.ts';
import { VIOLATION_COLUMNS, type Findings, type InvariantResult } from './invariants/types.ts';
import { parseExact } from './json.ts';
import { formatMoneyByCurrency } from './report/format.ts';
import { majorUnitsSql } from './money.ts';

/** findings.json: bigints are written as JSON integers, never as floats or strings. */
export function findingsJson(findings: Findings): string {
  return stringify(findings, null, 2) + '\n';
}

/** Reads findings.json back: money as bigint, counts as numbers. */
export function parseFindings(text: string): Findings {
  return parseExact(text) as Findings;
}

const STATUS_MARK: Record<InvariantResult['status'], string> = {
  pass: 'pass',
  fail: 'FAIL',
  skipped: 'skipped',
  waived: 'waived',
};

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
  if (findings.scope.orgs.length || findings.scope.app_instances.length) {
    lines.push(`Scope: ${[...findings.scope.orgs.map((o) => `org ${o}`), ...findings.scope.app_instances.map((a) => `app instance ${a}`)].join(', ')}`, '');
  }
  lines.push('| status | invariant | severity | violations | money at stake (overlapping) | note |', '|---|---|---|---:|---|---|');
  for (const r of findings.invariants) {
    const note = r.error ? `query failed: ${r.error}` : r.skipped_reason ?? (r.waived_violations ? `${r.waived_violations} waived` : '');
    lines.push(
      `| ${STATUS_MARK[r.status]} | \`${r.id}\` ${mdCell(r.title)} | ${r.severity} | ${r.violations} | ${formatMoneyByCurrency(r.amount_minor_by_currency)} | ${mdCell(note)} |`,
    );
  }
  lines.push('', `Inputs: ${findings.inputs.map((i) => `${i.source} (${i.rows} rows${i.rejected_rows ? `, ${i.rejected_rows} rejected` : ''})`).join(', ')}`, '');
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
  return Object.values(files);
}
