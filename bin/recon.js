#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { sourcesDigest } from '../scripts/sources.mjs';

// Exit 1 means "violations found" (CONTRACT.md §4): a crash that escapes main(), such as an
// 'error' event nobody listens to, must still be exit 2 "could not run", never 1.
const crash = (err) => {
  process.stderr.write(`recon: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(2);
};
process.on('uncaughtException', crash);
process.on('unhandledRejection', crash);

// The bundle `npm ci` builds (scripts/build.mjs) starts in a fraction of the time the sources
// take through tsx, but it is used only when it was built from the sources as they are now;
// otherwise (an edited checkout, no build) the sources run as they are, with no build step.
const root = path.join(import.meta.dirname, '..');
const built = (() => {
  try {
    return readFileSync(path.join(root, 'dist', 'sources.sha256'), 'utf8').trim();
  } catch {
    return null;
  }
})();
let cli;
if (built !== null && built === sourcesDigest(root)) {
  process.setSourceMapsEnabled(true);
  cli = await import('../dist/recon.mjs');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import('../src/cli.ts');
}
process.exitCode = await cli.main(process.argv.slice(2));
