import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { InputError, errorMessage } from '../errors.ts';
import { sha256File } from '../shared/hash.ts';
import { SCOPE_DIMENSIONS, describeScope, normaliseScope, scopeRecord, type Scope, type ScopeKey } from '../scope.ts';

const LEGACY_SCOPE_KEYS: readonly ScopeKey[] = ['orgs', 'app_instances', 'correlation_ids'];

/** The one file of a snapshot that is not hashed into itself. */
export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_KIND = 'billing-recon-snapshot';

/** The scope a snapshot was taken in: two snapshots are only comparable within one scope. */
export type SnapshotScope = Scope;

export interface ManifestFile {
  /** Relative to the snapshot folder, with forward slashes. */
  path: string;
  sha256: string;
  bytes: number;
}

export interface ManifestInput {
  table: string;
  source: string;
  format: string;
  rows: number;
  sha256: string;
}

/** Snapshots taken before the other dimensions existed carry only these three. */
const ScopeSchema = z.object({
  orgs: z.array(z.string()),
  app_instances: z.array(z.string()),
  correlation_ids: z.array(z.string()),
  ...Object.fromEntries(
    SCOPE_DIMENSIONS.filter((d) => !LEGACY_SCOPE_KEYS.includes(d.key)).map((d) => [d.key, z.array(z.string()).optional()]),
  ),
});

/** The scope as manifest.json records it. */
export function manifestScope(scope: Scope): Manifest['scope'] {
  return scopeRecord(scope, LEGACY_SCOPE_KEYS) as Manifest['scope'];
}

const ManifestSchema = z.object({
  schema_version: z.literal(1),
  kind: z.literal(MANIFEST_KIND),
  label: z.string(),
  created_at: z.string(),
  as_of: z.string(),
  tool: z.object({ name: z.string(), version: z.string() }),
  command: z.object({ name: z.string(), arguments: z.array(z.string()) }),
  scope: ScopeSchema,
  exports_dir: z.string(),
  config: z.object({ source: z.string(), sha256: z.string() }),
  findings_schema_version: z.number(),
  hash_algorithm: z.literal('sha256'),
  inputs: z.array(z.object({ table: z.string(), source: z.string(), format: z.string(), rows: z.number(), sha256: z.string() })),
  files: z.array(z.object({ path: z.string(), sha256: z.string().regex(/^[0-9a-f]{64}$/), bytes: z.number() })),
});

export type Manifest = z.infer<typeof ManifestSchema>;

export { describeScope, normaliseScope };

export function sameScope(a: Partial<SnapshotScope>, b: Partial<SnapshotScope>): boolean {
  return JSON.stringify(normaliseScope(a)) === JSON.stringify(normaliseScope(b));
}

/**
 * Every regular file under `dir`, as sorted relative paths with forward slashes. Symbolic links
 * are listed as files (their target is hashed), so a link swapped in for a file still changes
 * the hash; directories are walked.
 */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(path.join(dir, rel), { withFileTypes: true });
    for (const e of entries) {
      const child = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(child);
      else out.push(child);
    }
  };
  await walk('');
  return out.sort();
}

/** Hashes every file in `dir` except the manifest itself. */
export async function hashFolder(dir: string): Promise<ManifestFile[]> {
  const files: ManifestFile[] = [];
  for (const rel of await listFiles(dir)) {
    if (rel === MANIFEST_FILE) continue;
    const full = path.join(dir, ...rel.split('/'));
    const { size } = await stat(full);
    files.push({ path: rel, sha256: await sha256File(full), bytes: size });
  }
  return files;
}

/**
 * Reads and validates `SNAP/manifest.json`. A folder without a readable manifest is not a
 * snapshot: InputError (exit 2) with what exactly is wrong.
 */
export async function readManifest(snapDir: string): Promise<Manifest> {
  const file = path.join(snapDir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InputError(`${snapDir}: not a snapshot: cannot read ${MANIFEST_FILE} (${errorMessage(err)})`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InputError(`${file}: not valid JSON (${errorMessage(err)}); the snapshot cannot be verified`, { cause: err });
  }
  const parsed = ManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`);
    throw new InputError(`${file}: not a billing-recon snapshot manifest:\n  ${problems.join('\n  ')}`);
  }
  return parsed.data;
}

/** The manifest's own text, hashed: print it or paste it into the incident ticket to pin the snapshot. */
export function manifestText(manifest: Manifest): string {
  return JSON.stringify(manifest, null, 2) + '\n';
}
