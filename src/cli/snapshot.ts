import path from 'node:path';
import { bigquerySourceFrom, engineFrom, parseCommandArgs, type OptionName } from './options.ts';
import { parseInstant } from '../contract/instant.ts';
import { defaultIo, guarded, progressReporter, type CommandIo } from './io.ts';
import { UsageError } from '../errors.ts';
import { diffSnapshots } from '../snapshot/diff.ts';
import { describeScope } from '../snapshot/manifest.ts';
import { SCOPE_FLAGS, SCOPE_OPTIONS_HELP, scopeFromArgs } from '../scope.ts';
import { createSnapshot } from '../snapshot/snapshot.ts';
import { describeVerify, verifySnapshot } from '../snapshot/verify.ts';

const SNAPSHOT_OPTIONS = ['exports', 'bigquery', 'bigquery-endpoint', 'max-bytes-billed', 'label', 'out', ...SCOPE_FLAGS, 'as-of', 'config', 'engine', 'help'] as const satisfies readonly OptionName[];

export const SNAPSHOT_HELP = `Usage: recon snapshot (--exports DIR | --bigquery PROJECT.DATASET) --label LABEL --out SNAP [options]

Runs the audit and keeps tamper-evident evidence in SNAP (a new folder):
  findings.json, violations.csv, violations.parquet, summary.md   the audit outputs, in scope
  customers/<org>.md     what to tell each tenant with a wrong charge or credit
  evidence/*.parquet     the usage_records, ledger_entries, payment_sessions, app_instances and
                         allocations rows behind the violations (with __file/__line provenance),
                         plus every adjustment/reversal ledger entry in scope
  timeline.json          rows and events carrying the violations' correlation/trace ids, by time
  manifest.json          label, time, as_of, tool version, arguments, scope, and the SHA-256 of
                         every input file and every file in SNAP

  --exports DIR           export directory (one source per table, CONTRACT.md §1)
  --bigquery PROJECT.DATASET
                          read the tables from BigQuery instead (Application Default
                          Credentials); the manifest records bigquery:PROJECT.DATASET, and each
                          input's sha256 is of the rows as read
  --bigquery-endpoint URL a BigQuery-compatible endpoint, e.g. npm run bigquery:local's
  --max-bytes-billed N    refuse any BigQuery job that would bill more than N bytes
  --engine E              duckdb (default) or bigquery: run the checks inside the --bigquery
                          dataset; the evidence rows are then read by id, the rest stays there
  --label LABEL           what this snapshot is, e.g. "INC-123 before remediation"
  --out SNAP              snapshot folder; must not exist yet or be empty
${SCOPE_OPTIONS_HELP}
  --as-of INSTANT         audit time (default: the latest timestamp in the exports)
  --config FILE           recon.config.json

Everything but manifest.json is byte-for-byte the same for the same exports and arguments.
Exit codes as recon audit: 0 no error-severity violation, 1 error-severity violations found
(the snapshot is still written), 2 nothing could be snapshotted.`;

/** `recon snapshot`: returns the exit code (CONTRACT.md §5). */
export async function snapshotCommand(argv: string[], io: CommandIo = defaultIo): Promise<number> {
  return guarded('snapshot', io, async () => {
    const { values, positionals } = parseCommandArgs('snapshot', argv, SNAPSHOT_OPTIONS, true);
    if (values.help) {
      io.stdout(SNAPSHOT_HELP);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError(`recon snapshot: unexpected argument "${positionals[0]}" (see recon snapshot --help)`);
    const engine = engineFrom('snapshot', values);
    const bigquery = bigquerySourceFrom('snapshot', values);
    const missing = ([...(bigquery ? [] : ['exports'] as const), 'label', 'out'] as const).filter((k) => typeof values[k] !== 'string');
    if (missing.length > 0) {
      throw new UsageError(`recon snapshot: ${missing.map((k) => `--${k}`).join(', ')} ${missing.length > 1 ? 'are' : 'is'} required (see recon snapshot --help)`);
    }
    const onProgress = progressReporter();
    const result = await createSnapshot({
      ...(onProgress ? { onProgress } : {}),
      ...(bigquery ? { bigquery } : { exportsDir: values.exports! }),
      ...(engine ? { engine } : {}),
      label: values.label!,
      outDir: values.out!,
      ...(values.config !== undefined ? { configPath: values.config } : {}),
      ...(values['as-of'] !== undefined ? { asOf: parseInstant(values['as-of'], '--as-of') } : {}),
      scope: scopeFromArgs(values),
      arguments: ['snapshot', ...argv],
    });
    if (onProgress) process.stderr.write('\n');
    const t = result.findings.totals;
    io.stdout(`recon snapshot: wrote ${result.dir}/ (${result.manifest.files.length} files + manifest.json)`);
    io.stdout(`label "${result.manifest.label}", as of ${result.manifest.as_of}, scope: ${describeScope(result.manifest.scope)}`);
    io.stdout(
      `${t.violations} violation(s) in scope (${t.error_violations} error, ${t.warn_violations} warn); evidence rows: ` +
        result.evidence.map((e) => `${e.table} ${e.rows}`).join(', '),
    );
    io.stdout(`manifest sha256 ${result.manifest_sha256} (record it to pin this snapshot: recon verify ${result.dir} --manifest-sha256 ...)`);
    if (result.exitCode === 1) io.stderr(`recon snapshot: ${t.error_violations} error-severity violation(s) in scope; see ${path.join(result.dir, 'summary.md')}`);
    if (result.exitCode === 2) {
      const failed = result.findings.invariants.filter((r) => r.error !== undefined);
      io.stderr(`recon snapshot: ${failed.length} check(s) could not run: ${failed.map((r) => `${r.id}: ${r.error}`).join('; ')}`);
    }
    return result.exitCode;
  });
}

const VERIFY_OPTIONS = ['exports', 'manifest-sha256', 'help'] as const satisfies readonly OptionName[];

export const VERIFY_HELP = `Usage: recon verify SNAP [--exports DIR] [--manifest-sha256 HEX]

Recomputes the SHA-256 of every file in the snapshot SNAP and compares it with manifest.json;
names every file that changed, went missing or was added.

  --exports DIR           also re-hash the input files recorded in the manifest, in DIR
  --manifest-sha256 HEX   also check manifest.json itself against a hash recorded elsewhere
                          (recon snapshot prints it)

Exit codes: 0 everything matches, 1 something changed, 2 SNAP has no readable manifest.`;

/** `recon verify`: 0 all hashes match, 1 a file changed/went missing/was added, 2 no readable manifest. */
export async function verifyCommand(argv: string[], io: CommandIo = defaultIo): Promise<number> {
  return guarded('verify', io, async () => {
    const { values, positionals } = parseCommandArgs('verify', argv, VERIFY_OPTIONS, true);
    if (values.help) {
      io.stdout(VERIFY_HELP);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError('recon verify: give exactly one snapshot folder (see recon verify --help)');
    const snap = positionals[0]!;
    const sha = values['manifest-sha256'];
    if (sha !== undefined && !/^[0-9a-fA-F]{64}$/.test(sha)) throw new UsageError('recon verify: --manifest-sha256 must be 64 hex digits');
    const result = await verifySnapshot(snap, {
      ...(values.exports !== undefined ? { exportsDir: values.exports } : {}),
      ...(sha !== undefined ? { expectManifestSha256: sha } : {}),
    });
    const lines = describeVerify(snap, result);
    if (result.ok) {
      for (const l of lines) io.stdout(`recon verify: ${l}`);
      return 0;
    }
    for (const l of lines) io.stderr(`recon verify: ${snap}: ${l}`);
    io.stderr(`recon verify: ${snap}: FAILED, the snapshot does not match its manifest`);
    return 1;
  });
}

const DIFF_OPTIONS = ['out', ...SCOPE_FLAGS, 'strict', 'help'] as const satisfies readonly OptionName[];

export const DIFF_HELP = `Usage: recon diff BEFORE AFTER --out DIR [--strict] [scope options]

Compares two snapshots (recon snapshot) or two audit output folders (recon audit) by
(invariant_id, entity_id): resolved, persisting and introduced violations, money at stake per
currency before and after, the recovery checks no_duplicates_introduced, no_unresolved_drift
and no_new_drift, and (for snapshots) the adjustment/reversal ledger entries that appeared,
flagging any without actor or correlation id. Writes DIR/diff.json and DIR/diff.html.

Snapshots are verified first; two inputs of different scopes or findings schema versions are
refused. A side without manifest.json (an audit output folder) is unverified evidence: said on
stderr and in diff.json. A check skipped or failed on either side is "not comparable": its
violations are neither resolved nor introduced, and the check every_check_comparable fails.

  --out DIR               output folder for diff.json and diff.html
  --strict                also fail when an error-severity violation persists, and refuse
                          (exit 2) a side that is not a verified snapshot
${SCOPE_OPTIONS_HELP.replaceAll('in the data', 'in the violations of either side')}

Exit codes: 0 no error-severity violation introduced (with --strict: and none persisting),
1 otherwise, 2 the inputs could not be compared.`;

/** `recon diff`: 0/1 per CONTRACT.md §5, 2 when the inputs cannot be compared. */
export async function diffCommand(argv: string[], io: CommandIo = defaultIo): Promise<number> {
  return guarded('diff', io, async () => {
    const { values, positionals } = parseCommandArgs('diff', argv, DIFF_OPTIONS, true);
    if (values.help) {
      io.stdout(DIFF_HELP);
      return 0;
    }
    if (positionals.length !== 2) throw new UsageError('recon diff: give two folders, BEFORE and AFTER (see recon diff --help)');
    if (typeof values.out !== 'string') throw new UsageError('recon diff: --out DIR is required (see recon diff --help)');
    const [beforeDir, afterDir] = positionals as [string, string];
    const { diff, exitCode } = await diffSnapshots({ beforeDir, afterDir, outDir: values.out, strict: values.strict ?? false, scope: scopeFromArgs(values) });
    io.stdout(`recon diff: wrote ${path.join(values.out, 'diff.json')} and ${path.join(values.out, 'diff.html')}`);
    io.stdout(
      `${diff.summary.resolved} resolved, ${diff.summary.persisting} persisting, ${diff.summary.introduced} introduced; checks: ` +
        Object.entries(diff.checks)
          .map(([name, c]) => `${name} ${c.passed ? 'pass' : 'FAIL'}`)
          .join(', '),
    );
    for (const w of diff.warnings) io.stderr(`recon diff: warning: ${w}`);
    if (diff.corrective_entries.unaudited > 0) {
      io.stderr(`recon diff: ${diff.corrective_entries.unaudited} corrective ledger entr${diff.corrective_entries.unaudited > 1 ? 'ies' : 'y'} without actor or correlation id`);
    }
    if (exitCode === 1) io.stderr(`recon diff: ${diff.exit_reason}`);
    return exitCode;
  });
}
