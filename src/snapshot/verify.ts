import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { sha256File } from '../shared/hash.ts';
import { MANIFEST_FILE, hashFolder, readManifest, type Manifest } from './manifest.ts';

export interface FileChange {
  path: string;
  expected_sha256: string;
  actual_sha256: string;
}

export interface InputCheck {
  /** The export directory the inputs were checked against. */
  exports_dir: string;
  changed: FileChange[];
  missing: string[];
}

export interface VerifyResult {
  ok: boolean;
  manifest: Manifest;
  /** SHA-256 of manifest.json as it is on disk now. */
  manifest_sha256: string;
  /** Files in the snapshot, checked. */
  checked: number;
  changed: FileChange[];
  missing: string[];
  added: string[];
  /** Present when the inputs were checked too (`--exports`). */
  inputs?: InputCheck;
  /** Set when an expected manifest hash was given and differs. */
  manifest_mismatch?: { expected: string; actual: string };
  /** Whether manifest.json itself was checked against a hash recorded elsewhere. */
  manifest_pinned: boolean;
}

export interface VerifyOptions {
  /** Also re-hash the input files named in the manifest, found relative to this directory. */
  exportsDir?: string;
  /** The manifest's SHA-256 as recorded elsewhere (e.g. in the incident ticket). */
  expectManifestSha256?: string;
}

/**
 * Recomputes the SHA-256 of every file in a snapshot and compares it with the manifest: each
 * file that changed, went missing or was added is named by its relative path. A folder without
 * a readable manifest throws InputError (exit 2).
 */
export async function verifySnapshot(snapDir: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const manifest = await readManifest(snapDir);
  const manifestSha = createHash('sha256').update(await readFile(path.join(snapDir, MANIFEST_FILE))).digest('hex');
  const actual = new Map((await hashFolder(snapDir)).map((f) => [f.path, f]));
  const expected = new Map(manifest.files.map((f) => [f.path, f]));

  const changed: FileChange[] = [];
  const missing: string[] = [];
  for (const [p, want] of expected) {
    const got = actual.get(p);
    if (!got) missing.push(p);
    else if (got.sha256 !== want.sha256) changed.push({ path: p, expected_sha256: want.sha256, actual_sha256: got.sha256 });
  }
  const added = [...actual.keys()].filter((p) => !expected.has(p));

  const result: VerifyResult = {
    ok: false,
    manifest,
    manifest_sha256: manifestSha,
    checked: expected.size,
    changed,
    missing: missing.sort(),
    added: added.sort(),
    manifest_pinned: opts.expectManifestSha256 !== undefined,
  };

  if (opts.exportsDir !== undefined) {
    const inputs: InputCheck = { exports_dir: opts.exportsDir, changed: [], missing: [] };
    for (const input of manifest.inputs) {
      const full = path.join(opts.exportsDir, ...input.source.split('/'));
      const exists = await stat(full).then((s) => s.isFile(), () => false);
      if (!exists) {
        inputs.missing.push(input.source);
        continue;
      }
      const sha = await sha256File(full);
      if (sha !== input.sha256) inputs.changed.push({ path: input.source, expected_sha256: input.sha256, actual_sha256: sha });
    }
    result.inputs = inputs;
  }
  const want = opts.expectManifestSha256?.toLowerCase();
  if (want !== undefined && want !== manifestSha) result.manifest_mismatch = { expected: want, actual: manifestSha };

  result.ok =
    changed.length === 0 &&
    missing.length === 0 &&
    added.length === 0 &&
    (result.inputs === undefined || (result.inputs.changed.length === 0 && result.inputs.missing.length === 0)) &&
    result.manifest_mismatch === undefined;
  return result;
}

/** The lines a person reads: one per problem, relative paths. */
export function describeVerify(snapDir: string, r: VerifyResult): string[] {
  const lines: string[] = [];
  for (const c of r.changed) lines.push(`changed: ${c.path} (sha256 ${c.actual_sha256}, manifest says ${c.expected_sha256})`);
  for (const p of r.missing) lines.push(`missing: ${p}`);
  for (const p of r.added) lines.push(`added: ${p} (not in the manifest)`);
  if (r.inputs) {
    for (const c of r.inputs.changed) lines.push(`input changed: ${c.path} in ${r.inputs.exports_dir} (sha256 ${c.actual_sha256}, manifest says ${c.expected_sha256})`);
    for (const p of r.inputs.missing) lines.push(`input missing: ${p} in ${r.inputs.exports_dir}`);
  }
  if (r.manifest_mismatch) {
    lines.push(`manifest changed: ${MANIFEST_FILE} has sha256 ${r.manifest_mismatch.actual}, expected ${r.manifest_mismatch.expected}`);
  }
  if (r.ok) {
    lines.push(
      `${snapDir}: OK, ${r.checked} file(s) match the manifest` +
        (r.inputs ? ` and ${r.manifest.inputs.length} input file(s) match ${r.inputs.exports_dir}` : '') +
        ` (label "${r.manifest.label}", as of ${r.manifest.as_of}; manifest sha256 ${r.manifest_sha256})`,
    );
    // The hashes inside the manifest prove nothing if the manifest itself was rewritten.
    if (!r.manifest_pinned) {
      lines.push(`${MANIFEST_FILE} itself was not checked: compare sha256 ${r.manifest_sha256} with the one recon snapshot printed, or pass --manifest-sha256`);
    }
  }
  return lines;
}
