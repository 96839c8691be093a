#!/usr/bin/env node
// The sources are TypeScript; tsx runs them as they are, so a checkout needs no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli.ts');
process.exitCode = await main(process.argv.slice(2));
