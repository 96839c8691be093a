import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError, errorMessage } from '../errors.ts';
import type { BigQuerySource } from '../sources/bigquery.ts';
import { SCOPE_PARSE_OPTIONS } from '../scope.ts';

/**
 * Every option of every command, once: a flag parses the same way wherever it appears, and a
 * command says which of them it takes (`parseCommandArgs(command, argv, ['out', 'help'])`).
 */
export const OPTIONS = {
  exports: { type: 'string' },
  bigquery: { type: 'string' },
  'bigquery-endpoint': { type: 'string' },
  'max-bytes-billed': { type: 'string' },
  engine: { type: 'string' },
  out: { type: 'string' },
  'as-of': { type: 'string' },
  config: { type: 'string' },
  ...SCOPE_PARSE_OPTIONS,
  'memory-limit': { type: 'string' },
  'temp-dir': { type: 'string' },
  select: { type: 'string', multiple: true },
  exclude: { type: 'string', multiple: true },
  since: { type: 'string' },
  until: { type: 'string' },
  'warn-error': { type: 'boolean' },
  history: { type: 'string' },
  baseline: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  json: { type: 'boolean' },
  label: { type: 'string' },
  'manifest-sha256': { type: 'string' },
  strict: { type: 'boolean' },
  seed: { type: 'string' },
  tenants: { type: 'string' },
  'usage-rows': { type: 'string' },
  format: { type: 'string' },
  inject: { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

export type OptionName = keyof typeof OPTIONS;

/** The options a command takes, as parseArgs wants them. */
export function optionsOf<const N extends readonly OptionName[]>(names: N): Pick<typeof OPTIONS, N[number]> {
  return Object.fromEntries(names.map((n) => [n, OPTIONS[n]])) as Pick<typeof OPTIONS, N[number]>;
}

/** Parses argv without ever exiting: bad arguments become a UsageError (exit 2). */
export function parseCommandArgs<const N extends readonly OptionName[]>(command: string, argv: string[], names: N, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options: optionsOf(names), allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError(`recon ${command}: ${errorMessage(err)} (see recon ${command} --help)`);
  }
}

/**
 * `--bigquery PROJECT.DATASET` with its companions, as `audit` and `snapshot` both take them;
 * undefined without `--bigquery`. Progress goes to stderr.
 */
export function bigquerySourceFrom(
  command: string,
  values: { exports?: unknown; bigquery?: unknown; 'bigquery-endpoint'?: unknown; 'max-bytes-billed'?: unknown },
): BigQuerySource | undefined {
  if (typeof values.bigquery !== 'string') return undefined;
  if (values.exports !== undefined) throw new UsageError(`recon ${command}: give --exports DIR or --bigquery PROJECT.DATASET, not both`);
  const maxBytes = values['max-bytes-billed'];
  if (typeof maxBytes === 'string' && !/^[1-9][0-9]*$/.test(maxBytes)) {
    throw new UsageError(`recon ${command}: --max-bytes-billed: "${maxBytes}" is not a whole number of bytes`);
  }
  return {
    dataset: values.bigquery,
    ...(typeof values['bigquery-endpoint'] === 'string' ? { endpoint: values['bigquery-endpoint'] } : {}),
    ...(typeof maxBytes === 'string' ? { maxBytesBilled: BigInt(maxBytes) } : {}),
    log: (line) => process.stderr.write(`${line}\n`),
  };
}

/**
 * `--engine duckdb|bigquery`: where the catalog runs. BigQuery needs the dataset it runs in
 * (`--bigquery`); undefined means the default, DuckDB.
 */
export function engineFrom(command: string, values: { engine?: unknown; bigquery?: unknown }): 'duckdb' | 'bigquery' | undefined {
  if (values.engine === undefined) return undefined;
  if (values.engine !== 'duckdb' && values.engine !== 'bigquery') {
    throw new UsageError(`recon ${command}: --engine ${String(values.engine)}: not an engine (duckdb or bigquery)`);
  }
  if (values.engine === 'bigquery' && typeof values.bigquery !== 'string') {
    throw new UsageError(`recon ${command}: --engine bigquery runs the checks inside a dataset: give it with --bigquery PROJECT.DATASET`);
  }
  return values.engine;
}
