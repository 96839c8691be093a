#!/usr/bin/env node
// The sources are TypeScript; tsx runs them as they are, so a checkout needs no build step.
import { register } from 'tsx/esm/api';

// Exit 1 means "violations found" (CONTRACT.md §4): a crash that escapes main(), such as an
// 'error' event nobody listens to, must still be exit 2 "could not run", never 1.
const crash = (err) => {
  process.stderr.write(`recon: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(2);
};
process.on('uncaughtException', crash);
process.on('unhandledRejection', crash);

register();
const { main } = await import('../src/cli.ts');
process.exitCode = await main(process.argv.slice(2));
