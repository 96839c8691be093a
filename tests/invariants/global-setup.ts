import { readFile } from 'node:fs/promises';
import type { TestProject } from 'vitest/node';
import { auditExports } from '../../src/audit.ts';
import { findingsJson } from '../../src/outputs.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** findings.json text (bigints as JSON integers) of the audit under test. */
    reconFindings: string;
  }
}

/**
 * Loads the exports once and hands the findings to every test file. `recon audit` has already
 * run the catalog and passes its findings through RECON_FINDINGS, so the checks never run twice;
 * plain Vitest (`RECON_EXPORTS=DIR`) runs the audit here.
 */
export default async function setup(project: TestProject): Promise<void> {
  const findingsFile = process.env['RECON_FINDINGS'];
  if (findingsFile) {
    project.provide('reconFindings', await readFile(findingsFile, 'utf8'));
    return;
  }
  const exportsDir = process.env['RECON_EXPORTS'];
  if (!exportsDir) {
    throw new Error('RECON_EXPORTS is not set: run the audit suite as `RECON_EXPORTS=DIR npx vitest run tests/invariants`');
  }
  const run = await auditExports({
    exportsDir,
    ...(process.env['RECON_CONFIG'] ? { configPath: process.env['RECON_CONFIG'] } : {}),
    ...(process.env['RECON_AS_OF'] ? { asOf: process.env['RECON_AS_OF'] } : {}),
  });
  try {
    project.provide('reconFindings', findingsJson(run.findings));
  } finally {
    run.db.close();
  }
}
