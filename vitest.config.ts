import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// Timestamps are UTC instants; a test must never pass or fail with the machine's time zone.
process.env.TZ = 'UTC';

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
