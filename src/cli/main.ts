import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { auditExports, exitCodeFor, type AuditOptions, type AuditRun } from '../audit.ts';
import { AuditConsole } from '../outputs/console.ts';
import { appendHistory, compareWithHistory, newRunId } from '../history/history.ts';
import { TABLE_NAMES } from '../contract/tables.ts';
import { ReconError, UsageError } from '../errors.ts';
import { sizeBytes } from '../db.ts';
import { generateCommand } from './generate.ts';
import { incidentCommand } from './incident.ts';
import { diffCommand, snapshotCommand, verifyCommand } from './snapshot.ts';
import { ALL_CHECKS, findCheck } from '../catalog/index.ts';
import { contractWarehouse, DATASET_PLACEHOLDER, invariantJob } from '../engine/bigquery/index.ts';
import { stageOutputFolder } from '../out-dir.ts';
import { findingsJson } from '../findings/io.ts';
import { writeAuditOutputs } from '../outputs/files.ts';
import { renderReports } from '../report/render.ts';
import { SCOPE_FLAGS, SCOPE_OPTIONS_HELP, scopeFromArgs } from '../scope.ts';
import { progressReporter } from './io.ts';
import { OPTIONS, bigquerySourceFrom, engineFrom, parseCommandArgs, type OptionName } from './options.ts';
import { parseInstant } from '../contract/instant.ts';
import { TOOL } from '../version.ts';
import { loadVitest, runInvariantSuite } from '../outputs/vitest-run.ts';

/** The options of an audit run (src/cli/options.ts has every flag once). */
export const AUDIT_OPTIONS = [
  'exports',
  'bigquery',
  'bigquery-endpoint',
  'max-bytes-billed',
  'engine',
  'out',
  'as-of',
  'config',
  ...SCOPE_FLAGS,
  'memory-limit',
  'temp-dir',
  'select',
  'exclude',
  'since',
  'until',
  'warn-error',
  'help',
] as const satisfies readonly OptionName[];

export const AUDIT_OPTIONS_HELP = `  --exports DIR           export directory (one source per table, CONTRACT.md §1)
  --as-of INSTANT         audit time (default: the latest timestamp in the exports)
  --config FILE           recon.config.json (column mapping, thresholds, severities, waivers)
${SCOPE_OPTIONS_HELP}
  --select PATTERN        run only these invariants: an id, a family (ledger) or a glob (ledger.*,
                          *.duplicate_*); repeatable or comma-separated; the rest are skipped, saying why
  --exclude PATTERN       do not run these invariants (same patterns)
  --since INSTANT, --until INSTANT
                          keep violations of usage and ledger activity in [since, until); state
                          checks (allocations, app instances, balances, unreadable rows) are kept whole
                          and say so
  --warn-error            warnings fail like errors: exit code, junit.xml and Vitest
  --memory-limit SIZE     DuckDB memory limit, e.g. 4GB (default: a quarter of RAM, at most 1.5GB);
                          beyond it tables spill to disk
  --temp-dir DIR          where the audit's scratch database and spill files go (default: OS temp)
  --bigquery PROJECT.DATASET
                          read the tables from BigQuery instead of files (Application Default
                          Credentials; table names mappable with "tables" in the config)
  --bigquery-endpoint URL a BigQuery-compatible endpoint, e.g. npm run bigquery:local's
                          (default: Google's; BIGQUERY_EMULATOR_HOST works too)
  --max-bytes-billed N    refuse any BigQuery job that would bill more than N bytes
  --engine E              where the checks run: duckdb (default: the tables are read into DuckDB)
                          or bigquery (inside the --bigquery dataset, as query jobs; only the
                          violations come back; a dry run prints the bytes each job will scan)`;

type AuditValues = {
  [K in (typeof AUDIT_OPTIONS)[number]]?: (typeof OPTIONS)[K] extends { multiple: true } ? string[] : string | boolean;
};

/** `--select a,b --select c` → [a, b, c]. */
const patterns = (values: string[] | undefined) => (values ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);

/** Turns parsed audit options into AuditOptions, refusing what this build cannot do. */
export function auditOptionsFrom(command: string, values: AuditValues): AuditOptions {
  const engine = engineFrom(command, values);
  const opts: AuditOptions = {
    ...(engine ? { engine } : {}),
    scope: scopeFromArgs(values),
    command,
    select: patterns(values.select),
    exclude: patterns(values.exclude),
    warnError: values['warn-error'] === true,
  };
  const bigquery = bigquerySourceFrom(command, values);
  if (bigquery) {
    opts.bigquery = bigquery;
  } else if (typeof values.exports === 'string') {
    opts.exportsDir = values.exports;
  } else if (process.env['RECON_EXPORTS']) {
    opts.exportsDir = process.env['RECON_EXPORTS'];
  } else {
    throw new UsageError(`recon ${command}: --exports DIR (or RECON_EXPORTS, or --bigquery PROJECT.DATASET) is required`);
  }
  if (typeof values.config === 'string') opts.configPath = values.config;
  const asOf = typeof values['as-of'] === 'string' ? values['as-of'] : process.env['RECON_AS_OF'];
  if (asOf) opts.asOf = parseInstant(asOf, '--as-of');
  if (typeof values.since === 'string' || typeof values.until === 'string') {
    opts.window = {
      ...(typeof values.since === 'string' ? { since: parseInstant(values.since, '--since') } : {}),
      ...(typeof values.until === 'string' ? { until: parseInstant(values.until, '--until') } : {}),
    };
  }
  const memoryLimit = values['memory-limit'];
  if (typeof memoryLimit === 'string' && sizeBytes(memoryLimit) === undefined) {
    throw new UsageError(`recon ${command}: --memory-limit: "${memoryLimit}" is not a size such as 512MB or 4GB`);
  }
  opts.memory = {
    ...(typeof memoryLimit === 'string' ? { memoryLimit } : {}),
    ...(typeof values['temp-dir'] === 'string' ? { tempDir: values['temp-dir'] } : {}),
  };
  return opts;
}

const AUDIT_HELP = `Usage: recon audit --exports DIR [--out DIR] [options]

Loads the exports into DuckDB, runs every invariant of the catalog as a Vitest test, and writes
findings.json, violations.csv, violations.parquet, junit.xml, summary.md and HTML reports.

${AUDIT_OPTIONS_HELP}
  --out DIR               output folder (default: reports)
  --history PATH          append this run to a history folder (Parquet) and show a trend per
                          invariant (default: history.path in the config)
  --baseline history|DIR  mark violations new since the last run in the history, or since an
                          earlier audit output folder (default with a history: history)
  --quiet                 print only the verdict
  --json                  print findings.json on stdout; every other line goes to stderr

Config: --config FILE, else $RECON_CONFIG, else ./recon.config.json or ./recon.config.yaml.
Environment: RECON_EXPORTS (--exports), RECON_AS_OF (--as-of), RECON_CONFIG (--config), NO_COLOR.

Exit codes: 0 no error-severity violation (warnings pass), 1 error-severity violations found (with
--warn-error, warnings too), 2 the audit could not run.
What each output holds and how money is totalled: docs/contract.md`;

/** Writes every output of an audit into outDir (CONTRACT.md §4) and returns the files written. */
export async function writeAllOutputs(run: AuditRun, outDir: string): Promise<string[]> {
  await mkdir(outDir, { recursive: true });
  const junit = path.join(outDir, 'junit.xml');
  // The Vitest suite reads only the findings, never the database, so it runs while the files and
  // reports are written (one query at a time on the one connection, as before): on the demo the
  // audit's wall time went down by a fifth, paired runs under load.
  // Both finish before either's failure is reported: nothing may still write into the output
  // folder or query the database once the caller discards or closes them.
  const [suite, files] = await Promise.allSettled([
    runInvariantSuite(run.findings, junit),
    (async () => {
      const written = await writeAuditOutputs(run, outDir);
      const reports = await renderReports({ engine: run.engine, findings: run.findings, config: run.config.config }, outDir);
      return [...written, ...reports.files];
    })(),
  ]);
  if (suite.status === 'rejected') throw suite.reason;
  if (files.status === 'rejected') throw files.reason;
  return [...files.value, junit];
}

const AUDIT_COMMAND_OPTIONS = [...AUDIT_OPTIONS, 'history', 'baseline', 'quiet', 'json'] as const satisfies readonly OptionName[];

async function auditCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs('audit', argv, AUDIT_COMMAND_OPTIONS);
  if (values.help) {
    console.log(AUDIT_HELP);
    return 0;
  }
  const started = performance.now();
  const generatedAt = new Date();
  const out = new AuditConsole({ quiet: values.quiet ?? false, json: values.json ?? false });
  const opts = auditOptionsFrom('audit', values);
  const onProgress = out.interactive && !out.quiet ? progressReporter() : undefined;
  if (onProgress) opts.onProgress = onProgress;
  else {
    let current = '';
    opts.onProgress = ({ table, file }) => {
      if (table !== current) out.stage(`loading ${table} (${file})`);
      current = table;
    };
    let announced = false;
    opts.onCheck = () => {
      if (!announced) out.stage('running the invariants');
      announced = true;
    };
  }
  // Loads while DuckDB works; a failure to load surfaces where the suite runs.
  loadVitest().catch(() => undefined);
  const outDir = values.out ?? 'reports';
  // Checked before the audit, which may take minutes: a bad --out is found at once.
  const staged = await stageOutputFolder(outDir);
  let run: AuditRun;
  try {
    run = await auditExports(opts);
    if (onProgress) process.stderr.write('\n');
    try {
      const findings = run.findings;
      findings.run_id = newRunId(generatedAt);
      findings.generated_at = generatedAt.toISOString();
      findings.durations_ms = {
        total: Math.round(performance.now() - started),
        load: Math.round(run.timings.loadMs),
        invariants: Math.round(Object.values(run.timings.invariantsMs).reduce((a, b) => a + b, 0)),
      };
      const history = values.history ?? run.config.config.history.path;
      const baseline = values.baseline ?? (history ? 'history' : undefined);
      await compareWithHistory(run, {
        ...(history ? { history } : {}),
        ...(baseline ? { baseline } : {}),
        trendRuns: run.config.config.history.trend_runs,
      });
      out.invariants(findings);
      out.summary(findings);
      out.stage(`writing ${outDir}/`);
      await writeAllOutputs(run, staged.dir);
      await staged.commit();
      out.info(`recon audit: wrote ${outDir}/ (findings.json, violations.csv, violations.parquet, junit.xml, summary.md); open ${path.join(outDir, 'index.html')}`);
      // Only a run whose outputs were written joins the history.
      if (history) {
        await appendHistory(run, history);
        out.stage(`appended run ${findings.run_id} to the history ${history}`);
      }
    } finally {
      run.db.close();
    }
  } finally {
    await staged.discard();
  }
  if (values.json) process.stdout.write(findingsJson(run.findings));
  const code = exitCodeFor(run.findings);
  out.verdict(code, run.findings, path.join(outDir, 'summary.md'));
  return code;
}

function listCommand(argv: string[]): number {
  const { values } = parseCommandArgs('list', argv, ['help']);
  if (values.help) {
    console.log('Usage: recon list\n\nLists every invariant of the catalog, then the checks of the audit itself (freshness, waivers): id, severity, entity, tables needed, title.');
    return 0;
  }
  const rows = ALL_CHECKS.map((i) => [i.id, i.severity, i.entity, i.needs.join(',') || '-', i.title]);
  const head = ['id', 'severity', 'entity', 'needs', 'title'];
  const widths = head.map((h, k) => Math.max(h.length, ...rows.map((r) => r[k]!.length)));
  for (const r of [head, ...rows]) console.log(r.map((c, k) => (k < r.length - 1 ? c.padEnd(widths[k]!) : c)).join('  '));
  return 0;
}

function explainCommand(argv: string[]): number {
  const { values, positionals } = parseCommandArgs('explain', argv, ['engine', 'help'], true);
  if (values.help) {
    console.log(
      'Usage: recon explain <invariant-id> [--engine duckdb|bigquery]\n\nShows what the invariant means, the runbook step it automates, the tables it needs and its SQL;\n' +
        'with --engine bigquery, the complete GoogleSQL job the BigQuery engine submits (the dataset as PROJECT.DATASET).',
    );
    return 0;
  }
  if (values.engine !== undefined && values.engine !== 'duckdb' && values.engine !== 'bigquery') {
    throw new UsageError(`recon explain: --engine ${values.engine}: not an engine (duckdb or bigquery)`);
  }
  const [id] = positionals;
  if (!id || positionals.length > 1) throw new UsageError('recon explain: give exactly one invariant id (see recon list)');
  const inv = findCheck(id);
  if (!inv) throw new UsageError(`recon explain: unknown invariant "${id}" (see recon list)`);
  console.log(`${inv.id}: ${inv.title}
severity: ${inv.severity}    entity: ${inv.entity}    needs: ${inv.needs.join(', ') || '(always runs)'}

${inv.explanation}

Runbook step: ${inv.runbook}

${
  values.engine === 'bigquery'
    ? `GoogleSQL job (parameters @read_at, the instant every table is read as of; @as_of, @billing_lag_minutes, @allocation_window_tolerance_minutes, @control_plane_components):
${invariantJob(inv, contractWarehouse(), DATASET_PLACEHOLDER)}`
    : `SQL (over the typed tables, effective_ledger_entries and recon_settings):
${inv.sql({ tables: new Set(TABLE_NAMES) }).trim()}`
}`);
  return 0;
}

const HELP = `recon ${TOOL.version}: reconciliation audits for GPU cloud billing exports

Usage: recon <command> [options]

Commands:
  audit       audit an export directory and write findings and reports
  snapshot    audit and keep tamper-evident evidence of the violations in scope
  verify      recompute a snapshot's hashes and name every file that changed
  diff        compare two snapshots (or audit folders): resolved, persisting, introduced
  incident    one incident (correlation / trace id): timeline, violations, blast radius, logs,
              follow-ups and customer summary on one page
  generate    write a synthetic export with injected, recorded drift
  list        list the invariants
  explain ID  explain one invariant and show its SQL

Run recon <command> --help for a command's options.
The contract (inputs, invariants, outputs, money totals, exit codes): docs/contract.md`;

const COMMANDS: Record<string, (argv: string[]) => number | Promise<number>> = {
  audit: auditCommand,
  snapshot: snapshotCommand,
  verify: verifyCommand,
  diff: diffCommand,
  incident: incidentCommand,
  generate: generateCommand,
  list: listCommand,
  explain: explainCommand,
};

/** The CLI: returns the exit code, never calls process.exit. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    console.log(HELP);
    return command ? 0 : 2;
  }
  if (command === '--version') {
    console.log(TOOL.version);
    return 0;
  }
  const run = COMMANDS[command];
  try {
    if (!run) throw new UsageError(`unknown command "${command}" (see recon --help)`);
    return await run(rest);
  } catch (err) {
    console.error(`recon: ${err instanceof ReconError ? err.message : `unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`}`);
    return 2;
  }
}
