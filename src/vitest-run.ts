import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { Reporter, TestCase } from 'vitest/node';
import { startVitest } from 'vitest/node';
import { DatabaseError } from './errors.ts';
import type { Findings } from './findings/types.ts';
import { junitXml, type CaseOutcome } from './junit.ts';
import { findingsJson } from './findings/io.ts';
import { verdictOf } from './findings/verdict.ts';
import { PACKAGE_ROOT as ROOT } from './package-root.ts';


/** Ours: keeps each invariant test's outcome, for junit.xml and to check Vitest and findings agree. */
class OutcomeReporter implements Reporter {
  readonly outcomes = new Map<string, CaseOutcome>();
  onTestCaseResult(testCase: TestCase): void {
    this.outcomes.set(testCase.name, { state: testCase.result().state, durationMs: testCase.diagnostic()?.duration ?? 0 });
  }
}

/** One verdict: errors fail, skips skip, warnings, waivers and tolerated counts pass. */
function expectedState(r: Findings['invariants'][number]): CaseOutcome['state'] {
  const v = verdictOf(r);
  return v === 'skip' ? 'skipped' : v === 'error' ? 'failed' : 'passed';
}

/**
 * Runs tests/invariants programmatically against findings the CLI already computed and writes
 * junit.xml from its outcomes: one implementation of every check, whichever door the user came
 * in by. Only our reporter is attached, so nothing of Vitest's reaches the console. Throws if a test's outcome disagrees with the findings, which would
 * mean the suite and the audit no longer read the same results.
 */
export async function runInvariantSuite(findings: Findings, junitFile: string): Promise<void> {
  const work = await mkdtemp(path.join(tmpdir(), 'recon-vitest-'));
  const findingsFile = path.join(work, 'findings.json');
  await writeFile(findingsFile, findingsJson(findings));
  const reporter = new OutcomeReporter();
  // Vitest's own console output (cursor codes on a terminal, banners) never reaches ours; what it
  // says is kept to explain a run that went wrong.
  let said = '';
  const sink = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      if (said.length < 20_000) said += chunk.toString();
      done();
    },
  });
  // Vitest and our config (which pins TZ) run in this process: put back what they change.
  const savedEnv = {
    RECON_FINDINGS: process.env['RECON_FINDINGS'],
    NO_COLOR: process.env['NO_COLOR'],
    TZ: process.env['TZ'],
    FORCE_COLOR: process.env['FORCE_COLOR'],
  };
  const savedExitCode = process.exitCode;
  process.env['RECON_FINDINGS'] = findingsFile;
  // Failure messages go into junit.xml; colour and cursor codes would be noise there.
  process.env['NO_COLOR'] = '1';
  delete process.env['FORCE_COLOR'];
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
        reporters: [reporter],
      },
      undefined,
      { stdout: sink, stderr: sink },
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
  await writeFile(junitFile, junitXml(findings, reporter.outcomes));
  const disagree = findings.invariants.filter((r) => reporter.outcomes.get(r.id)?.state !== expectedState(r));
  if (disagree.length > 0) {
    throw new DatabaseError(
      `the Vitest suite and the findings disagree on ${disagree.map((r) => `${r.id} (test ${reporter.outcomes.get(r.id)?.state ?? 'missing'}, findings ${r.status})`).join(', ')}` +
        (said.trim() ? `\nVitest said:\n${said.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').trim()}` : ''),
    );
  }
}
