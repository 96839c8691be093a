// Bundles the CLI into dist/recon.mjs (run by `npm ci`/`npm install` as the `prepare` script).
// Loading ~90 TypeScript modules through tsx's loader costs about 2 s at every start; the bundle
// loads in a fraction of that. Dependencies stay external, so node_modules is used as installed.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { sourcesDigest } from './sources.mjs';

const root = path.join(import.meta.dirname, '..');
const dist = path.join(root, 'dist');
rmSync(path.join(dist, 'chunks'), { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
const digest = sourcesDigest(root);
await build({
  entryPoints: { recon: path.join(root, 'src', 'cli', 'main.ts') },
  outdir: dist,
  outExtension: { '.js': '.mjs' },
  // A module the CLI imports on demand (the Arrow reader) is a chunk of its own, so its
  // dependencies load only when it does.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20.19',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
});
// Written last: a bundle without its digest (an interrupted build) is never used.
writeFileSync(path.join(dist, 'sources.sha256'), `${digest}\n`);
