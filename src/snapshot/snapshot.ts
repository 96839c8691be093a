import { createHash } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { auditExports, exitCodeFor, type AuditOptions } from '../audit.ts';
import type { BigQuerySource } from '../sources/bigquery.ts';
import { UsageError } from '../errors.ts';
import type { Findings } from '../findings/types.ts';
import { writeAuditOutputs } from '../outputs/files.ts';
import type { ScopeKey } from '../scope.ts';
import { TOOL } from '../version.ts';
import type { EvidenceFile } from '../engine/engine.ts';
import {
  MANIFEST_FILE,
  MANIFEST_KIND,
  hashFolder,
  manifestText,
  manifestScope,
  normaliseScope,
  type Manifest,
  type SnapshotScope,
} from './manifest.ts';
import { writeTimeline } from './timeline.ts';

export interface SnapshotOptions {
  /** Where the tables come from: an export directory, or a BigQuery dataset read into DuckDB. */
  exportsDir?: string;
  bigquery?: BigQuerySource;
  /** Where the catalog runs (AuditOptions.engine). */
  engine?: 'duckdb' | 'bigquery';
  label: string;
  /** The snapshot folder; must not exist yet or be empty. */
  outDir: string;
  configPath?: string;
  asOf?: string;
  scope?: Partial<Record<ScopeKey, readonly string[]>>;
  /** The command line, recorded in the manifest as given. */
  arguments?: string[];
  /** Clock for `created_at` (tests). */
  now?: () => Date;
  onProgress?: AuditOptions['onProgress'];
}

export interface SnapshotResult {
  dir: string;
  manifest: Manifest;
  /** SHA-256 of manifest.json as written. */
  manifest_sha256: string;
  findings: Findings;
  evidence: EvidenceFile[];
  /** What `recon audit` would return for the same findings: 0, 1 or 2. */
  exitCode: 0 | 1 | 2;
}

/**
 * A snapshot is evidence: it is written once, into a fresh folder, never over an older one.
 * Checked before the (possibly long) audit; the folder itself is created only when there is
 * something to write.
 */
async function ensureFreshFolder(dir: string): Promise<void> {
  const entries = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    if (err.code === 'ENOTDIR') throw new UsageError(`recon snapshot: --out ${dir} is a file, not a folder`);
    throw err;
  });
  if (entries.length > 0) {
    throw new UsageError(`recon snapshot: --out ${dir} already exists and is not empty; a snapshot is written once, into a new folder`);
  }
}

/**
 * `recon snapshot` (CONTRACT.md §5): runs the audit in scope and keeps, in a fresh folder,
 * the audit outputs, the evidence rows behind the violations as Parquet, an incident timeline
 * and a manifest with the SHA-256 of every input and every file written. Everything but
 * manifest.json is byte-for-byte reproducible from the same exports and arguments.
 *
 * Layout:
 *   findings.json, violations.csv, violations.parquet, summary.md   (the audit outputs)
 *   evidence/{usage_records,ledger_entries,payment_sessions,app_instances,allocations}.parquet
 *   timeline.json
 *   manifest.json                                                    (written last)
 */
export async function createSnapshot(opts: SnapshotOptions): Promise<SnapshotResult> {
  const label = opts.label.trim();
  if (!label) throw new UsageError('recon snapshot: --label must not be empty');
  const asked: SnapshotScope = normaliseScope(opts.scope);
  await ensureFreshFolder(opts.outDir);

  const run = await auditExports({
    ...(opts.bigquery ? { bigquery: opts.bigquery } : {}),
    ...(opts.engine ? { engine: opts.engine } : {}),
    ...(opts.exportsDir !== undefined ? { exportsDir: opts.exportsDir } : {}),
    ...(opts.configPath !== undefined ? { configPath: opts.configPath } : {}),
    ...(opts.asOf !== undefined ? { asOf: opts.asOf } : {}),
    scope: asked,
    command: 'snapshot',
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
  // The audit normalised the values (a boolean flag's spelling): the manifest records those.
  const scope = run.scope;
  try {
    await mkdir(opts.outDir, { recursive: true });
    await writeAuditOutputs(run, opts.outDir);
    const evidence = await run.engine.writeEvidence(scope, opts.outDir);
    await writeTimeline(run.engine, path.join(opts.outDir, 'timeline.json'));

    const findings = run.findings;
    const manifest: Manifest = {
      schema_version: 1,
      kind: MANIFEST_KIND,
      label,
      created_at: (opts.now?.() ?? new Date()).toISOString(),
      as_of: findings.as_of,
      tool: { name: TOOL.name, version: TOOL.version },
      command: { name: 'snapshot', arguments: [...(opts.arguments ?? [])] },
      scope: manifestScope(scope),
      // A dataset is named as its inputs are (`bigquery:PROJECT.DATASET.TABLE`), so no one
      // mistakes it for a folder that `recon verify --exports` could re-hash.
      exports_dir: opts.bigquery ? `bigquery:${opts.bigquery.dataset}` : path.resolve(opts.exportsDir ?? ''),
      config: { source: run.config.source, sha256: findings.config_sha256 },
      findings_schema_version: findings.schema_version,
      hash_algorithm: 'sha256',
      inputs: findings.inputs.map((i) => ({ table: i.table, source: i.source, format: i.format, rows: i.rows, sha256: i.sha256 })),
      files: await hashFolder(opts.outDir),
    };
    const text = manifestText(manifest);
    await writeFile(path.join(opts.outDir, MANIFEST_FILE), text);
    return {
      dir: opts.outDir,
      manifest,
      manifest_sha256: createHash('sha256').update(text).digest('hex'),
      findings,
      evidence,
      exitCode: exitCodeFor(findings),
    };
  } finally {
    run.db.close();
  }
}
