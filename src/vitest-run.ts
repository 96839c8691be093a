import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Reporter, TestCase } from 'vitest/node';
import { startVitest } from 'vitest/node';
import { DatabaseError } from './errors.ts';
import type { Findings } from './invariants/types.ts';
import { findingsJson } from './outputs.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

type CaseState = 'passed' | 'failed' | 'skipped' | 'pending';

/** Ours: keeps each invariant test's outcome, so the CLI can check Vitest and findings agree. */
class OutcomeReporter implements Reporter {
  readonly outcomes = new Map<string, CaseState>();
  onTestCaseResult(testCase: TestCase): void {
    this.outcomes.set(testCase.name, testCase.result().state);
  }
}

function expectedState(r: Findings['invariants'][number]): CaseState {
  if (r.status === 'skipped') return 'skipped';
  return r.error !== undefined || r.violations > 0 ? 'failed' : 'passed';
}

/**
 * Runs tests/invariants programmatically against findings the CLI already computed, writing
 * junit.xml with Vitest's own JUnit reporter: one implementation of every check, whichever door
 * the user came in by. Throws if a test's outcome disagrees with the findings, which would
 * mean the suite and the audit no longer read the same results.
 */
export async function runInvariantSuite(findings: Findings, junitFile: string): Promise<void> {
  const work = await mkdtemp(path.join(tmpdir(), 'recon-vitest-'));
  const findingsFile = path.join(work, 'findings.json');
  await writeFile(findingsFile, findingsJson(findings));
  const reporter = new OutcomeReporter();
  // Vitest and our config (which pins TZ) run in this process: put back what they change.
  const savedEnv = { RECON_FINDINGS: process.env['RECON_FINDINGS'], NO_COLOR: process.env['NO_COLOR'], TZ: process.env['TZ'] };
  const savedExitCode = process.exitCode;
  process.env['RECON_FINDINGS'] = findingsFile;
  // Failure messages go into junit.xml; colour codes would be noise there.
  process.env['NO_COLOR'] = '1';
  try {
    const vitest = await startVitest(
      'test',
      ['tests/invariants'],
      {
        root: ROOT,
        config: path.join(ROOT, 'vitest.config.ts'),
        project: 'invariants',
        run: true,
        watch: false,
        reporters: [['junit', { outputFile: junitFile, suiteName: 'billing-recon invariants' }], reporter],
      },
    );
    await vitest.close();
  } finally {
    for (const [key, value] of Object.entries(savedEnv)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
    // Vitest sets process.exitCode on failing tests; the audit's exit code is ours to decide.
    process.exitCode = savedExitCode;
    await rm(work, { recursive: true, force: true });
  }
  const disagree = findings.invariants.filter((r) => reporter.outcomes.get(r.id) !== expectedState(r));
  if (disagree.length > 0) {
    throw new DatabaseError(
      `the Vitest suite and the findings disagree on ${disagree.map((r) => `${r.id} (test ${reporter.outcomes.get(r.id) ?? 'missing'}, findings ${r.status})`).join(', ')}`,
    );
  }
}
