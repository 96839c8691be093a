import { parseCommandArgs, type OptionName } from './options.ts';
import { errorMessage, ReconError, UsageError } from '../errors.ts';
import {
  DRIFT_CATALOG,
  DRIFT_KINDS,
  EXPORT_FORMATS,
  GENERATE_DEFAULTS,
  generateExports,
  isDriftKind,
  type DriftKind,
  type ExportFormat,
  type GenerateOptions,
} from '../generate/index.ts';

const OPTIONS = ['out', 'seed', 'tenants', 'usage-rows', 'format', 'inject', 'as-of', 'help'] as const satisfies readonly OptionName[];

function usage(): string {
  const d = GENERATE_DEFAULTS;
  const kinds = DRIFT_KINDS.map((k) => `  ${k.padEnd(34)} ${DRIFT_CATALOG[k].description}`).join('\n');
  return `Usage: recon generate --out DIR [options]

Writes a deterministic synthetic export of all seven tables, with the requested drift injected,
and DIR/expected.json: every (invariant_id, entity_id) violation that drift causes.

Options:
  --out DIR             where to write (created if missing)
  --seed N              integer seed; the same seed gives byte-identical files (default ${d.seed})
  --tenants N           number of orgs (default ${d.tenants})
  --usage-rows N        usage_records rows of the clean world (default ${d.usageRows})
  --format F            ${EXPORT_FORMATS.join(' | ')} (default ${d.format})
  --as-of INSTANT       latest timestamp of the exports, ISO-8601 (default ${d.asOf})
  --inject KIND=COUNT   inject drift; repeatable; KIND alone means 1; all=COUNT injects every kind
  -h, --help            show this help

Drift kinds:
${kinds}
`;
}

function integer(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new UsageError(`generate: --${name} must be an integer, got "${text}"`);
  return Number(text);
}

function parseInject(specs: readonly string[]): Partial<Record<DriftKind, number>> {
  const inject: Partial<Record<DriftKind, number>> = {};
  for (const spec of specs) {
    const [kind = '', countText] = spec.split('=', 2);
    const count = integer('inject', countText ?? '1') ?? 1;
    if (count < 0) throw new UsageError(`generate: --inject ${spec}: the count must not be negative`);
    const kinds = kind === 'all' ? DRIFT_KINDS : [kind];
    for (const k of kinds) {
      if (!isDriftKind(k)) throw new UsageError(`generate: --inject ${spec}: unknown drift kind "${k}"; see --help for the list`);
      inject[k] = count;
    }
  }
  return inject;
}

function toOptions(argv: string[]): GenerateOptions | 'help' {
  const { values } = parseCommandArgs('generate', argv, OPTIONS);
  if (values.help) return 'help';
  if (!values.out) throw new UsageError('generate: --out DIR is required');
  const format = values.format ?? GENERATE_DEFAULTS.format;
  if (!(EXPORT_FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(`generate: --format must be one of ${EXPORT_FORMATS.join(', ')}, got "${format}"`);
  }
  const opts: GenerateOptions = { outDir: values.out, format: format as ExportFormat, inject: parseInject(values.inject ?? []) };
  const seed = integer('seed', values.seed);
  const tenants = integer('tenants', values.tenants);
  const usageRows = integer('usage-rows', values['usage-rows']);
  if (seed !== undefined) opts.seed = seed;
  if (tenants !== undefined) opts.tenants = tenants;
  if (usageRows !== undefined) opts.usageRows = usageRows;
  if (values['as-of'] !== undefined) opts.asOf = values['as-of'];
  return opts;
}

/**
 * `recon generate`: returns the exit code (0 written; 2 bad arguments, a world too small for the
 * drift asked for, or a failure writing it). Never calls `process.exit`, so it can be tested directly.
 */
export async function generateCommand(argv: string[]): Promise<number> {
  try {
    const opts = toOptions(argv);
    if (opts === 'help') {
      process.stdout.write(usage());
      return 0;
    }
    const result = await generateExports(opts);
    const kinds = new Set(result.expected.map((e) => e.kind)).size;
    process.stdout.write(
      `wrote ${result.format} exports of ${Object.keys(result.files).length} tables to ${result.outDir} ` +
        `(${result.rows.usage_records} usage rows, as of ${result.asOf}, seed ${result.seed})\n` +
        `wrote ${result.expectedFile} (${result.expected.length} expected violations from ${kinds} drift kinds)\n`,
    );
    return 0;
  } catch (err) {
    process.stderr.write(err instanceof ReconError ? `${err.message}\n` : `generate: failed: ${errorMessage(err)}\n`);
    return 2;
  }
}
