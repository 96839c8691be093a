import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseInstant } from '../contract/instant.ts';
import { TABLE_NAMES, TABLES, quoteIdent, type TableName } from '../contract/tables.ts';
import { Db } from '../db.ts';
import { UsageError } from '../errors.ts';
import { DRIFT_CATALOG, DRIFT_KINDS, injectDrift, isDriftKind, type DriftKind, type ExpectedViolation } from './drift.ts';
import { buildWorld, MIN_USAGE_ROWS } from './world.ts';

export { DRIFT_CATALOG, DRIFT_KINDS, isDriftKind, type DriftKind, type ExpectedViolation };

export const EXPORT_FORMATS = ['csv', 'parquet', 'ndjson'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export const GENERATE_DEFAULTS = {
  seed: 1,
  tenants: 12,
  usageRows: 10_000,
  format: 'csv',
  asOf: '2026-11-20T12:00:00Z',
} as const satisfies Partial<GenerateOptions>;

export interface GenerateOptions {
  /** Created if missing; this world's files replace any earlier export of the same tables. */
  outDir: string;
  /** Any safe integer; the same seed always yields byte-identical files. */
  seed?: number;
  /** Number of orgs. */
  tenants?: number;
  /** usage_records rows of the clean world (exact); drift adds or removes a few. */
  usageRows?: number;
  format?: ExportFormat;
  /** The latest timestamp of the exports (so the audit's default as_of), whole seconds. */
  asOf?: string;
  /** Drift kind → number of injections. */
  inject?: Partial<Record<DriftKind, number>>;
}

export interface GenerateResult {
  outDir: string;
  format: ExportFormat;
  asOf: string;
  seed: number;
  /** Table → file written. */
  files: Record<TableName, string>;
  rows: Record<TableName, number>;
  /** The violations the injected drift causes, as written to `expected.json`. */
  expected: ExpectedViolation[];
  expectedFile: string;
}

const FILE_EXTENSION: Readonly<Record<ExportFormat, string>> = { csv: 'csv', parquet: 'parquet', ndjson: 'ndjson' };
const COPY_OPTIONS: Readonly<Record<ExportFormat, string>> = {
  csv: `(FORMAT csv, HEADER true)`,
  parquet: `(FORMAT parquet)`,
  ndjson: `(FORMAT json)`,
};

/**
 * Writes a deterministic synthetic export of all seven tables to `outDir`, with the requested
 * drift injected, and `expected.json`: every `(invariant_id, entity_id)` violation the drift
 * causes, with the drift kind, sorted by invariant then entity. Without drift every invariant of
 * CONTRACT.md §3 holds and `expected.json` is `[]`.
 */
export async function generateExports(opts: GenerateOptions): Promise<GenerateResult> {
  const o = resolveOptions(opts);
  const db = await Db.open();
  try {
    await buildWorld(db, o);
    const expected = sortExpected(await injectDrift(db, o.inject));
    await assertLatestTimestamp(db, o.asOf);

    await mkdir(o.outDir, { recursive: true });
    const files = {} as Record<TableName, string>;
    const rows = {} as Record<TableName, number>;
    for (const name of TABLE_NAMES) {
      // A stale export of the same table in another format would make the export directory ambiguous.
      for (const other of EXPORT_FORMATS) {
        if (other !== o.format) await rm(join(o.outDir, `${name}.${FILE_EXTENSION[other]}`), { force: true });
      }
      files[name] = join(o.outDir, `${name}.${FILE_EXTENSION[o.format]}`);
      rows[name] = await exportTable(db, name, o.format, files[name]);
    }
    const expectedFile = join(o.outDir, 'expected.json');
    await writeFile(expectedFile, JSON.stringify(expected, null, 2) + '\n');
    return { outDir: o.outDir, format: o.format, asOf: o.asOf, seed: o.seed, files, rows, expected, expectedFile };
  } finally {
    db.close();
  }
}

interface ResolvedOptions {
  outDir: string;
  seed: number;
  tenants: number;
  usageRows: number;
  format: ExportFormat;
  asOf: string;
  inject: Partial<Record<DriftKind, number>>;
}

function resolveOptions(opts: GenerateOptions): ResolvedOptions {
  const d = GENERATE_DEFAULTS;
  if (!opts.outDir) throw new UsageError('generate: an output directory is required');
  const seed = opts.seed ?? d.seed;
  if (!Number.isSafeInteger(seed)) throw new UsageError(`generate: seed must be an integer, got ${seed}`);
  const tenants = opts.tenants ?? d.tenants;
  if (!Number.isSafeInteger(tenants) || tenants < 1) throw new UsageError(`generate: tenants must be a positive integer, got ${tenants}`);
  const usageRows = opts.usageRows ?? d.usageRows;
  if (!Number.isSafeInteger(usageRows) || usageRows < MIN_USAGE_ROWS) {
    throw new UsageError(`generate: usage rows must be an integer >= ${MIN_USAGE_ROWS}, got ${usageRows}`);
  }
  const format = opts.format ?? d.format;
  if (!(EXPORT_FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(`generate: format must be one of ${EXPORT_FORMATS.join(', ')}, got ${format}`);
  }
  const inject: Partial<Record<DriftKind, number>> = {};
  for (const [kind, count] of Object.entries(opts.inject ?? {})) {
    if (!isDriftKind(kind)) throw new UsageError(`generate: unknown drift kind ${kind}; known: ${DRIFT_KINDS.join(', ')}`);
    if (!Number.isSafeInteger(count) || count < 0) throw new UsageError(`generate: count for ${kind} must be a non-negative integer, got ${count}`);
    inject[kind] = count;
  }
  return { outDir: opts.outDir, seed, tenants, usageRows, format, asOf: normalizeInstant(opts.asOf ?? d.asOf), inject };
}

/**
 * `asOf` as `YYYY-MM-DDTHH:MM:SSZ`. Sub-second instants are refused: text exports render whole
 * seconds, and the latest rendered timestamp must equal `asOf` exactly.
 */
function normalizeInstant(text: string): string {
  let instant: string;
  try {
    instant = parseInstant(text, '--as-of');
  } catch {
    throw new UsageError(`generate: as-of must be an ISO-8601 instant as the exports carry them (e.g. 2026-11-20T12:00:00Z), got ${text}`);
  }
  if (instant.includes('.')) throw new UsageError(`generate: as-of must be whole seconds, got ${text}`);
  return instant;
}

function sortExpected(rows: ExpectedViolation[]): ExpectedViolation[] {
  const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  const sorted = rows
    .map((r) => ({ invariant_id: r.invariant_id, entity_id: r.entity_id, kind: r.kind }))
    .sort((a, b) => cmp(a.invariant_id, b.invariant_id) || cmp(a.entity_id, b.entity_id));
  // Two injections reporting the same violation would mean they touched the same entity.
  for (let i = 1; i < sorted.length; i++) {
    const [a, b] = [sorted[i - 1], sorted[i]];
    if (a && b && a.invariant_id === b.invariant_id && a.entity_id === b.entity_id) {
      throw new Error(`internal: drift ${a.kind} and ${b.kind} both produce ${a.invariant_id} for ${a.entity_id}`);
    }
  }
  return sorted;
}

/** The audit's default as_of is the latest timestamp in the exports; it must be `asOf`, whatever drift did. */
async function assertLatestTimestamp(db: Db, asOf: string): Promise<void> {
  const parts = TABLE_NAMES.flatMap((name) =>
    TABLES[name].columns.filter((c) => c.type === 'timestamp').map((c) => `SELECT max(${quoteIdent(c.name)}) AS t FROM ${quoteIdent(name)}`),
  );
  const row = await db.one<{ ok: boolean }>(`SELECT max(t) = $as_of::TIMESTAMPTZ AS ok FROM (${parts.join(' UNION ALL ')})`, { as_of: asOf });
  if (!row?.ok) throw new Error(`internal: the latest timestamp of the generated exports is not ${asOf}`);
}

/** Writes one table's canonical columns, in contract order; returns its row count. */
async function exportTable(db: Db, name: TableName, format: ExportFormat, file: string): Promise<number> {
  const table = TABLES[name];
  const columns = table.columns.map((c) => {
    const col = quoteIdent(c.name);
    // Parquet keeps native UTC timestamps; text formats get ISO-8601 with Z.
    if (c.type === 'timestamp' && format !== 'parquet') return `strftime(${col}, '%Y-%m-%dT%H:%M:%SZ') AS ${col}`;
    return col;
  });
  // `_ord` is unique but for rows copied by duplicate_key drift, which are identical.
  await db.run(
    `COPY (SELECT ${columns.join(', ')} FROM ${quoteIdent(name)} ORDER BY _ord) TO $file ${COPY_OPTIONS[format]}`,
    { file },
  );
  const row = await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM ${quoteIdent(name)}`);
  return Number(row?.n ?? 0n);
}
