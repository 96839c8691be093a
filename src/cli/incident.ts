import path from 'node:path';
import { parseCommandArgs, type OptionName } from './options.ts';
import { parseInstant } from '../contract/instant.ts';
import { UsageError } from '../errors.ts';
import { runIncident } from '../incident/incident.ts';

const OPTIONS = ['correlation-id', 'trace-id', 'exports', 'out', 'as-of', 'config', 'help'] as const satisfies readonly OptionName[];

export const INCIDENT_HELP = `Usage: recon incident --correlation-id ID [--trace-id ID] --exports DIR --out DIR [options]

What the runbooks ask the on-call engineer to capture, in one command. Audits the exports,
keeps the violations of this incident (rows carrying one of its ids, and violations about
such rows), and writes into DIR:
  incident.html          one self-contained page: timeline of every row carrying the ids
                         (allocations, app instances, events, usage, ledger entries, payments)
                         in time order, the violations, blast radius, money at stake (each
                         movement once), LogQL and logcli commands with the incident's time
                         range and the configured Grafana/Loki/Tempo links ({from}, {to},
                         {from_ms}, {to_ms} in a link template are that range), follow-up tasks
                         by owning layer, and what to tell each customer
  incident.md            the same for the ticket
  findings.json, violations.csv, violations.parquet, summary.md, customers/<org>.md
                         the audit outputs of the incident's violations

  --correlation-id ID     the incident's correlation id (repeatable)
  --trace-id ID           its trace id (repeatable); ids of either kind are a union here
  --exports DIR           export directory (one source per table, CONTRACT.md §1)
  --out DIR               output folder
  --as-of INSTANT         audit time (default: the latest timestamp in the exports)
  --config FILE           recon.config.json (link templates, thresholds, ...)

An id found in no row of the exports is an error (exit 2) naming the nearest existing ids.
Exit codes: 0 no error-severity violation in the incident, 1 some, 2 it could not run.`;

/** `recon incident`: returns the exit code. */
export async function incidentCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs('incident', argv, OPTIONS);
  if (values.help) {
    console.log(INCIDENT_HELP);
    return 0;
  }
  const correlationIds = values['correlation-id'] ?? [];
  const traceIds = values['trace-id'] ?? [];
  if (correlationIds.length + traceIds.length === 0) throw new UsageError('recon incident: give --correlation-id ID and/or --trace-id ID (see recon incident --help)');
  const missing = (['exports', 'out'] as const).filter((k) => typeof values[k] !== 'string');
  if (missing.length) throw new UsageError(`recon incident: ${missing.map((k) => `--${k}`).join(' and ')} required (see recon incident --help)`);
  const result = await runIncident({
    exportsDir: values.exports!,
    outDir: values.out!,
    correlationIds,
    traceIds,
    ...(values.config !== undefined ? { configPath: values.config } : {}),
    ...(values['as-of'] !== undefined ? { asOf: parseInstant(values['as-of'], '--as-of') } : {}),
  });
  const m = result.model;
  console.log(`recon incident: wrote ${path.join(values.out!, 'incident.html')} and incident.md`);
  console.log(`${m.timelineTotal} timeline entries, ${m.violationsTotal} violation(s); blast radius: ${m.blast.label} (${m.blast.reason})`);
  if (result.exitCode === 1) console.error(`recon incident: ${result.findings.totals.error_violations} error-severity violation(s) in this incident`);
  return result.exitCode;
}
