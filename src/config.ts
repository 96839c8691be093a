import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { TABLES, TABLE_NAMES, isTableName } from './contract/tables.ts';
import { ConfigError, errorMessage } from './errors.ts';

const Severity = z.enum(['error', 'warn']);

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
  /** invariant id → severity override. */
  severity: z.record(z.string(), Severity).default({}),
  /** Accepted, documented exceptions: the violation stays visible but no longer fails the audit. */
  waivers: z
    .array(
      z.strictObject({
        invariant: z.string().min(1),
        entity_id: z.string().min(1).optional(),
        reason: z.string().min(1),
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

export async function loadConfig(file?: string): Promise<LoadedConfig> {
  if (!file) return parseConfig({}, '(defaults)');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config ${file}: ${errorMessage(err)}`, { cause: err });
  }
  let raw: unknown;
  try {
    // Editors on Windows save a UTF-8 BOM, which JSON.parse refuses.
    raw = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (err) {
    throw new ConfigError(`${file}: not valid JSON: ${errorMessage(err)}`, { cause: err });
  }
  return parseConfig(raw, file);
}

/** The name the user's export uses for a canonical column. */
export function sourceColumn(config: Config, table: string, canonical: string): string {
  return (isTableName(table) ? config.columns[table]?.[canonical] : undefined) ?? canonical;
}
