import type { Findings, InvariantResult } from './findings/types.ts';
import { formatMoneyByCurrency } from './findings/format.ts';
import { oneLineSummary, tallyText, verdictOf, type Verdict } from './findings/verdict.ts';

/** What each verdict prints as, in a CI log line and in the tally. */
const LABEL: Record<Verdict, string> = { pass: 'PASS', warn: 'WARN', error: 'FAIL', skip: 'SKIP', waived: 'WAIVED' };
const COLOR: Record<Verdict, string> = { pass: '32', warn: '33', error: '31', skip: '2', waived: '36' };

export interface ConsoleOptions {
  /** Only the verdict line. */
  quiet?: boolean;
  /** The findings go to stdout; every human line to stderr. */
  json?: boolean;
  out?: NodeJS.WriteStream;
  err?: NodeJS.WriteStream;
  env?: NodeJS.ProcessEnv;
}

/**
 * The audit's console, written for a CI log as much as for a terminal: plain lines (colour only
 * on a terminal, never with NO_COLOR), one line per invariant, a tally and one verdict.
 */
export class AuditConsole {
  private readonly out: NodeJS.WriteStream;
  private readonly err: NodeJS.WriteStream;
  private readonly color: boolean;
  readonly quiet: boolean;
  readonly json: boolean;

  constructor(opts: ConsoleOptions = {}) {
    this.out = opts.out ?? process.stdout;
    this.err = opts.err ?? process.stderr;
    this.quiet = opts.quiet ?? false;
    this.json = opts.json ?? false;
    const env = opts.env ?? process.env;
    const results = this.json ? this.err : this.out;
    this.color = Boolean(results.isTTY) && !('NO_COLOR' in env && env['NO_COLOR'] !== '');
  }

  /** Where result lines go: stdout, or stderr when stdout carries the JSON findings. */
  private get results(): NodeJS.WriteStream {
    return this.json ? this.err : this.out;
  }

  /** A terminal gets a live progress line instead of stage lines. */
  get interactive(): boolean {
    return Boolean(this.err.isTTY);
  }

  private paint(verdict: Verdict, text: string): string {
    return this.color ? `\x1b[${COLOR[verdict]}m${text}\x1b[0m` : text;
  }

  /** `recon audit: loading usage_records…`: what the audit is doing, on stderr, where logs go. */
  stage(message: string): void {
    if (!this.quiet) this.err.write(`recon audit: ${message}\n`);
  }

  /** `FAIL  ledger.duplicate_credit  1  EUR 468.00` */
  invariantLine(r: InvariantResult, idWidth: number): string {
    const v = verdictOf(r);
    const label = this.paint(v, LABEL[v].padEnd(6));
    if (v === 'skip') return `${label} ${r.id.padEnd(idWidth)}  - ${r.skipped_reason ?? ''}`;
    if (r.error !== undefined) return `${label} ${r.id.padEnd(idWidth)}  ${oneLineSummary(r)}`;
    const notes: string[] = [];
    if (r.waived_violations > 0) notes.push(`${r.waived_violations} waived`);
    if (r.baseline) notes.push(`${r.baseline.new} new, ${r.baseline.persisting} persisting`);
    if (r.threshold) notes.push(r.threshold.reason);
    const money = formatMoneyByCurrency(r.amount_minor_by_currency);
    return [`${label} ${r.id.padEnd(idWidth)}  ${r.violations}`, money, notes.length ? `(${notes.join('; ')})` : '']
      .filter(Boolean)
      .join('  ');
  }

  invariants(findings: Findings): void {
    if (this.quiet) return;
    const width = Math.max(...findings.invariants.map((r) => r.id.length));
    for (const r of findings.invariants) this.results.write(`${this.invariantLine(r, width)}\n`);
  }

  /** A result line (where the outputs went), dropped by --quiet. */
  info(line: string): void {
    if (!this.quiet) this.results.write(`${line}\n`);
  }

  summary(findings: Findings): void {
    if (!this.quiet) this.results.write(`${tallyText(findings)}\n`);
  }

  /** The one line `--quiet` keeps. */
  verdict(code: number, findings: Findings, where: string): void {
    const t = findings.totals;
    const errors = findings.invariants.filter((r) => verdictOf(r) === 'error' && r.error === undefined);
    const warns = findings.invariants.filter((r) => verdictOf(r) === 'warn');
    const line =
      code === 2
        ? `recon audit: COULD NOT RUN ${findings.invariants.filter((r) => r.error !== undefined).map((r) => r.id).join(', ')}; see ${where}`
        : code === 1
          ? `recon audit: FAILED: ${errors.length} invariant(s) with error-severity violations (${t.error_violations} violations): ${errors.map((r) => r.id).join(', ')}; see ${where}`
          : `recon audit: PASSED${warns.length ? ` with ${warns.length} warning(s): ${warns.map((r) => r.id).join(', ')}` : ''}; see ${where}`;
    (code === 2 ? this.err : this.results).write(`${line}\n`);
  }
}
