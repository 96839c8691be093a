import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

// Timestamps are UTC instants; a test must never pass or fail with the machine's time zone.
process.env.TZ = 'UTC';

/**
 * The longest test files first (as measured on the 2-core machine), so the run never ends on one
 * of them running alone: Vitest orders by the durations of an earlier run, which a fresh clone
 * (CI) does not have, and by file size otherwise, which put the BigQuery engine's tests (45 s of
 * ZetaSQL) last. Files not named keep Vitest's order, after these.
 */
const LONGEST_FIRST = [
  'bigquery-engine-outputs', 'bigquery-engine', 'bigquery', 'snapshot', 'diff', 'property', 'loaders-broken',
  'report-finance.browser', 'fixtures', 'dialect', 'audit', 'invariant-suite', 'cli', 'bigquery-local',
];

class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification) => {
      const i = LONGEST_FIRST.findIndex((name) => f.moduleId.endsWith(`/tests/${name}.test.ts`));
      return i === -1 ? LONGEST_FIRST.length : i;
    };
    const ordered = await super.sort(files);
    return ordered.map((f, i) => ({ f, i })).sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i).map(({ f }) => f);
  }
}

export default defineConfig({
  test: {
    // Vitest's default is one worker less than the cores: on a 2-core machine, one file at a
    // time. The test files spend much of their time waiting on DuckDB (off the JS thread),
    // child processes and a browser, so two files at once keep both cores busy.
    maxWorkers: Math.max(3, availableParallelism() + 1),
    projects: [
      {
        test: {
          name: 'unit',
          include: ['tests/**/*.test.ts'],
          exclude: ['tests/invariants/**', '**/node_modules/**'],
          testTimeout: 120_000,
          sequence: { sequencer: LongestFirst },
          hookTimeout: 300_000,
          isolate: false,
        },
      },
      {
        // The audit itself, exactly: RECON_EXPORTS=DIR npx vitest run --project invariants
        test: {
          name: 'invariants',
          include: ['tests/invariants/**/*.test.ts'],
          globalSetup: ['tests/invariants/global-setup.ts'],
          pool: 'threads',
          isolate: false,
          fileParallelism: false,
          // One worker here, two for 'unit': Vitest needs projects of different widths in different groups.
          sequence: { groupOrder: 1 },
          hookTimeout: 600_000,
        },
      },
    ],
  },
});
