import { readFile } from 'node:fs/promises';
import type { TestProject } from 'vitest/node';

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
    throw new Error('RECON_EXPORTS is not set: run the audit suite as `RECON_EXPORTS=DIR npx vitest run --project invariants`');
  }
  // Imported here, not above: `recon audit` starts this suite after every audit, and the audit's
  // module graph (loaders, DuckDB, the BigQuery client) would only slow that start.
  const { auditExports } = await import('../../src/audit.ts');
  const { findingsJson } = await import('../../src/findings/io.ts');
  // The same knobs as `recon audit`, as environment variables (README: "Environment").
  const list = (name: string) => (process.env[name] ? process.env[name].split(',').map((p) => p.trim()).filter(Boolean) : undefined);
  const select = list('RECON_SELECT');
  const exclude = list('RECON_EXCLUDE');
  const run = await auditExports({
    exportsDir,
    // Unset, the config is discovered as the CLI does: RECON_CONFIG, else ./recon.config.{json,yaml}.
    ...(process.env['RECON_CONFIG'] ? { configPath: process.env['RECON_CONFIG'] } : {}),
    ...(process.env['RECON_AS_OF'] ? { asOf: process.env['RECON_AS_OF'] } : {}),
    ...(select ? { select } : {}),
    ...(exclude ? { exclude } : {}),
    warnError: ['1', 'true'].includes(process.env['RECON_WARN_ERROR'] ?? ''),
  });
  try {
    project.provide('reconFindings', findingsJson(run.findings));
  } finally {
    run.db.close();
  }
}
