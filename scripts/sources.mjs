// Shared by the build (scripts/build.mjs) and the launcher (bin/recon.js), which must agree on
// what "the sources the bundle was built from" means.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * A digest of every TypeScript file under src/ (names and contents). The launcher runs the bundle
 * only when it was built from exactly these sources; an edited checkout runs the sources as they
 * are, so nobody ever runs code that differs from what they read.
 */
export function sourcesDigest(root) {
  const src = path.join(root, 'src');
  const files = readdirSync(src, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.relative(src, path.join(e.parentPath, e.name)))
    .sort();
  const hash = createHash('sha256');
  for (const rel of files) hash.update(`${rel}\0`).update(readFileSync(path.join(src, rel))).update('\0');
  return hash.digest('hex');
}
