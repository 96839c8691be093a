import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { InputError, errorMessage } from '../errors.ts';
import type { Findings } from '../findings/types.ts';
import { parseFindings } from '../findings/io.ts';
import { MANIFEST_FILE, describeScope, normaliseScope, sameScope, type Manifest } from './manifest.ts';
import type { DiffSide } from './diff-document.ts';
import { describeVerify, verifySnapshot } from './verify.ts';

/** The two inputs of a diff: each read, a snapshot verified, and the pair checked comparable. */

export const exists = (p: string) => stat(p).then(() => true, () => false);

export interface LoadedSide {
  side: DiffSide;
  /** Invariants that did not run on this side (skipped, or their query failed), with the reason. */
  notRun: Map<string, string>;
  /** Why this side is not verified evidence (no manifest), said loudly; null for a verified snapshot. */
  unverified: string | null;
  violationsFile: string;
  /** Evidence ledger rows (snapshots only). */
  ledgerFile: string | null;
}

async function readFindingsFile(dir: string, role: string): Promise<Findings> {
  const file = path.join(dir, 'findings.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InputError(`recon diff: ${role} ${dir}: cannot read findings.json (${errorMessage(err)})`, { cause: err });
  }
  try {
    return parseFindings(text);
  } catch (err) {
    throw new InputError(`recon diff: ${role} ${file}: not valid JSON (${errorMessage(err)})`, { cause: err });
  }
}

/**
 * Recognises a snapshot (manifest.json) or an audit output folder (findings.json and
 * violations.parquet). A snapshot must pass verification: evidence that was altered after the
 * fact is refused, not compared.
 */
async function loadSide(dir: string, role: 'BEFORE' | 'AFTER'): Promise<LoadedSide> {
  const isDir = await stat(dir).then((s) => s.isDirectory(), () => false);
  if (!isDir) throw new InputError(`recon diff: ${role} ${dir} is not a folder`);
  const violationsFile = path.join(dir, 'violations.parquet');
  let manifest: Manifest | null = null;
  let manifestSha: string | null = null;
  if (await exists(path.join(dir, MANIFEST_FILE))) {
    const verified = await verifySnapshot(dir);
    if (!verified.ok) {
      throw new InputError(
        `recon diff: ${role} snapshot ${dir} fails verification; refusing to compare altered evidence:\n  ${describeVerify(dir, verified).join('\n  ')}`,
      );
    }
    manifest = verified.manifest;
    manifestSha = verified.manifest_sha256;
  } else if (!(await exists(path.join(dir, 'findings.json')))) {
    throw new InputError(
      `recon diff: ${role} ${dir} is neither a snapshot (no ${MANIFEST_FILE}) nor an audit output folder (no findings.json)`,
    );
  }
  if (!(await exists(violationsFile))) throw new InputError(`recon diff: ${role} ${dir} has no violations.parquet`);
  const findings = await readFindingsFile(dir, role);
  const findingsScope = findings.scope;
  const scope = normaliseScope(manifest ? manifest.scope : findingsScope);
  const ledgerFile = manifest ? path.join(dir, 'evidence', 'ledger_entries.parquet') : null;
  return {
    side: {
      dir,
      kind: manifest ? 'snapshot' : 'audit',
      label: manifest?.label ?? null,
      created_at: manifest?.created_at ?? null,
      as_of: findings.as_of,
      tool: findings.tool,
      findings_schema_version: findings.schema_version,
      config_sha256: findings.config_sha256,
      scope,
      integrity: manifest ? 'verified' : 'UNVERIFIED (no manifest.json)',
      manifest_sha256: manifestSha,
      violations: 0,
    },
    unverified: manifest
      ? null
      : `${role} ${dir} is not a verified snapshot (no ${MANIFEST_FILE}` +
        ((await exists(path.join(dir, 'evidence'))) ? '; it holds evidence/, so it looks like a snapshot whose manifest was removed' : '') +
        `): its findings and violations could have been edited and nothing would show it`,
    notRun: new Map(
      findings.invariants.flatMap((r) =>
        r.status === 'skipped' || r.error !== undefined ? [[r.id, r.error !== undefined ? `could not run: ${r.error}` : `skipped: ${r.skipped_reason ?? 'no reason given'}`] as const] : [],
      ),
    ),
    violationsFile,
    ledgerFile: ledgerFile && (await exists(ledgerFile)) ? ledgerFile : null,
  };
}

/**
 * Loads BEFORE and AFTER and refuses a pair that cannot be compared (another findings schema,
 * another scope; with `strict`, a side that is not a verified snapshot). The warnings say what
 * the diff of such a pair cannot vouch for.
 */
export async function loadSides(beforeDir: string, afterDir: string, strict: boolean): Promise<{ before: LoadedSide; after: LoadedSide; warnings: string[] }> {
  const before = await loadSide(beforeDir, 'BEFORE');
  const after = await loadSide(afterDir, 'AFTER');
  if (before.side.findings_schema_version !== after.side.findings_schema_version) {
    throw new InputError(
      `recon diff: findings schema_version differs (BEFORE ${before.side.findings_schema_version}, AFTER ${after.side.findings_schema_version}); ` +
        're-run both audits with one version of recon',
    );
  }
  if (!sameScope(before.side.scope, after.side.scope)) {
    throw new InputError(
      `recon diff: the two inputs cover different scopes, so a violation missing from one may simply be out of its scope:\n` +
        `  BEFORE ${before.side.dir}: ${describeScope(before.side.scope)}\n  AFTER  ${after.side.dir}: ${describeScope(after.side.scope)}\n` +
        'take both snapshots with the same --org, --app-instance and --correlation-id',
    );
  }

  const unverified = [before.unverified, after.unverified].filter((u): u is string => u !== null);
  if (strict && unverified.length > 0) {
    throw new InputError(`recon diff: --strict compares verified snapshots only:\n  ${unverified.join('\n  ')}`);
  }
  return { before, after, warnings: unverified.map((u) => `UNVERIFIED: ${u}`) };
}
