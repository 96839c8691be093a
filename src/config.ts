import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { TABLES, TABLE_NAMES, isTableName } from './contract/tables.ts';
import { ConfigError, errorMessage } from './errors.ts';

/** `off` disables an invariant: it is reported skipped, never run. */
const SeveritySetting = z.enum(['error', 'warn', 'off']);

/** Money in minor units: a JSON integer, or a digit string for amounts beyond 2^53. */
const MinorUnits = z.union([z.int().nonnegative(), z.string().regex(/^[0-9]+$/, 'an integer count of minor units')]);

/**
 * A limit an invariant's violations may reach before they count: "above" is strict, so a limit
 * of 5 tolerates exactly 5. Any one limit exceeded trips the rule.
 */
const Limit = z
  .strictObject({
    count: z.int().nonnegative().optional(),
    /** Money at stake per currency, in minor units (`{ "USD": 10000 }` is USD 100.00). */
    money: z.record(z.string().regex(/^[A-Z]{3}$/, 'an ISO-4217 code'), MinorUnits).optional(),
    /** Violations as a percentage of the rows of the table the invariant's entity lives in. */
    percent: z.number().min(0).max(100).optional(),
  })
  .refine((l) => l.count !== undefined || l.money !== undefined || l.percent !== undefined, 'give count, money or percent');

export type Limit = z.infer<typeof Limit>;

/** `90s`, `45m`, `2h`, `1d`: how old the newest row of a table may be. */
export const DURATION = /^([0-9]+)(s|m|h|d)$/;
const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86400 } as const;

export function durationSeconds(text: string): number {
  const m = DURATION.exec(text);
  if (!m) throw new ConfigError(`"${text}" is not a duration such as 90m, 2h or 1d`);
  return Number(m[1]) * UNIT_SECONDS[m[2] as keyof typeof UNIT_SECONDS];
}

export const ConfigSchema = z.strictObject({
  /** Per table, canonical column name → the name used in the user's export. */
  columns: z
    .partialRecord(z.enum(TABLE_NAMES), z.record(z.string(), z.string().min(1)))
    .default({})
    .superRefine((tables, ctx) => {
      for (const [table, map] of Object.entries(tables)) {
        if (!isTableName(table) || !map) continue;
        const known = new Set(TABLES[table].columns.map((c) => c.name));
        for (const canonical of Object.keys(map)) {
          if (!known.has(canonical)) {
            ctx.addIssue({
              code: 'custom',
              path: [table, canonical],
              message: `unknown column of ${table}; known: ${[...known].join(', ')}`,
            });
          }
        }
      }
    }),
  /** Per table, canonical table name → the table's name in the BigQuery dataset (`--bigquery`). */
  tables: z.partialRecord(z.enum(TABLE_NAMES), z.string().regex(/^[A-Za-z0-9_]+$/, 'a BigQuery table name')).default({}),
  thresholds: z
    .strictObject({
      billing_lag_minutes: z.int().positive().default(60),
      allocation_window_tolerance_minutes: z.int().nonnegative().default(5),
    })
    .prefault({}),
  /** Component names that are control plane; `app_runtime.control_plane_classification` checks against them. */
  control_plane_components: z
    .array(z.string().min(1))
    .min(1)
    .default(['scheduler', 'head', 'control', 'controller']),
  /** invariant id → severity override; `off` disables it. */
  severity: z.record(z.string(), SeveritySetting).default({}),
  /**
   * Per invariant: severity and thresholds. Violations up to `fail_above` (or `warn_above`) are
   * tolerated and the invariant passes; above `warn_above` it warns, above `fail_above` it fails.
   */
  invariants: z
    .record(
      z.string(),
      z.strictObject({
        severity: SeveritySetting.optional(),
        warn_above: Limit.optional(),
        fail_above: Limit.optional(),
      }),
    )
    .default({}),
  /** Per table, how old its newest timestamp may be against the real clock (`contract.stale_export`). */
  freshness: z.partialRecord(z.enum(TABLE_NAMES), z.string().regex(DURATION, 'a duration such as 90m, 2h or 1d')).default({}),
  /** Where each audit appends its per-invariant results and violation identities (a folder of Parquet files). */
  history: z
    .strictObject({
      path: z.string().min(1).optional(),
      /** How many past runs the trend shows. */
      trend_runs: z.int().min(1).max(100).default(7),
    })
    .prefault({}),
  /** Accepted, documented exceptions: the violation stays visible but no longer fails the audit. */
  waivers: z
    .array(
      z.strictObject({
        invariant: z.string().min(1),
        entity_id: z.string().min(1).optional(),
        reason: z.string().min(1),
        /** Who answers for the exception, and the ticket that tracks its fix. */
        owner: z.string().min(1).optional(),
        ticket: z.string().min(1).optional(),
        expires: z.iso.date().optional(),
      }),
    )
    .default([]),
  /**
   * URL templates for observability links in the reports; `{correlation_id}`, `{trace_id}` and
   * `{query}` (the URL-encoded LogQL) are substituted.
   */
  links: z
    .strictObject({
      grafana: z.string().optional(),
      loki: z.string().optional(),
      tempo: z.string().optional(),
    })
    .prefault({}),
  /** How many violations per invariant findings.json and the reports show. */
  sample_size: z.int().min(1).max(1000).default(20),
});

export type Config = z.infer<typeof ConfigSchema>;

export interface LoadedConfig {
  config: Config;
  /** Where it came from, for messages; `(defaults)` when no file was given. */
  source: string;
  sha256: string;
}

function hashConfig(config: Config): string {
  return createHash('sha256').update(JSON.stringify(config)).digest('hex');
}

/** Validates a config object; every problem is reported with the path of the bad field. */
export function parseConfig(raw: unknown, source = '(inline)'): LoadedConfig {
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${source}: ${i.path.map(String).join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`invalid config ${source}:\n${lines.join('\n')}`);
  }
  return { config: result.data, source, sha256: hashConfig(result.data) };
}

/** Config files looked for in the working directory when neither --config nor RECON_CONFIG names one. */
export const CONFIG_FILE_NAMES = ['recon.config.json', 'recon.config.yaml', 'recon.config.yml'] as const;

/**
 * Which config file applies: `--config`, else `$RECON_CONFIG`, else the one `recon.config.*` in
 * `cwd`. Two candidates in one folder are refused rather than one silently winning.
 */
export function discoverConfig(explicit: string | undefined, cwd = process.cwd(), env = process.env): string | undefined {
  if (explicit) return explicit;
  if (env['RECON_CONFIG']) return env['RECON_CONFIG'];
  const found = CONFIG_FILE_NAMES.filter((n) => existsSync(path.join(cwd, n)));
  if (found.length > 1) throw new ConfigError(`${found.join(' and ')} both exist in ${cwd}: keep one, or pass --config FILE`);
  return found[0] ? path.join(cwd, found[0]) : undefined;
}

/** Reads a JSON or YAML (by extension) config file; with no file, the defaults. */
export async function loadConfig(file?: string): Promise<LoadedConfig> {
  if (!file) return parseConfig({}, '(defaults)');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config ${file}: ${errorMessage(err)}`, { cause: err });
  }
  const yaml = /\.ya?ml$/i.test(file);
  let raw: unknown;
  try {
    // Editors on Windows save a UTF-8 BOM, which JSON.parse (and a YAML key) would trip on.
    const body = text.replace(/^\uFEFF/, '');
    // Loaded only for a YAML file: every command reads its config, few read YAML.
    raw = yaml ? (await import('yaml')).parse(body, { prettyErrors: true }) : JSON.parse(body);
  } catch (err) {
    throw new ConfigError(`${file}: not valid ${yaml ? 'YAML' : 'JSON'}: ${errorMessage(err)}`, { cause: err });
  }
  return parseConfig(raw ?? {}, file);
}

/** The name the user's export uses for a canonical column. */
export function sourceColumn(config: Config, table: string, canonical: string): string {
  return (isTableName(table) ? config.columns[table]?.[canonical] : undefined) ?? canonical;
}
