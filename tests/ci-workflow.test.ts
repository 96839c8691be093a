import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, expect, test } from 'vitest';
import { parse } from 'yaml';
import { tempDir } from './helpers/exports.ts';

const exec = promisify(execFile);
const ROOT = path.resolve('.');

interface Step {
  id?: string;
  name?: string;
  if?: string;
  uses?: string;
  run?: string;
  env?: Record<string, string>;
  with?: Record<string, string | number>;
}
interface Workflow {
  on: { schedule: Array<{ cron: string }> };
  jobs: { audit: { env: Record<string, string>; steps: Step[] } };
}

const workflow = parse(await readFile('docs/ci/nightly.yml', 'utf8')) as Workflow;
const steps = workflow.jobs.audit.steps;

/** What the test stands in for: the install is done, the exports come from a fixture. */
const FIXTURE = path.resolve('fixtures/events_drift');
const REPLACED: Record<string, string> = {
  'Install': 'test -d node_modules',
  'fetch-exports': `mkdir -p "$RECON_EXPORTS" && cp -r ${JSON.stringify(FIXTURE)}/. "$RECON_EXPORTS/"`,
};

test('the workflow is valid YAML with a schedule, an npm cache and the audit', () => {
  expect(workflow.on.schedule[0]!.cron).toMatch(/^\S+ \S+ \* \* \*$/);
  expect(steps.find((s) => s.uses?.startsWith('actions/setup-node'))?.with?.['cache']).toBe('npm');
  expect(steps.filter((s) => s.run?.includes('recon -- audit'))).toHaveLength(1);
  // History kept between runs: the cache restores and saves the very folder the audit appends to.
  const restore = steps.find((s) => s.uses?.startsWith('actions/cache/restore'))!;
  const save = steps.find((s) => s.uses?.startsWith('actions/cache/save'))!;
  expect(restore.with?.['path']).toBe(save.with?.['path']);
  expect(steps.find((s) => s.id === 'audit')!.run).toContain(`--history ${String(save.with?.['path'])}`);
});

/** Runs the job's steps in order the way a runner would, in a checkout-like temp folder. */
let work = '';
const ran: string[] = [];
const uploaded: string[] = [];
let summary = '';
let jobFailed = false;

beforeAll(async () => {
  work = await tempDir('recon-ci-');
  for (const entry of ['package.json', 'bin', 'src', 'tests', 'node_modules', 'vitest.config.ts', 'tsconfig.json']) {
    await symlink(path.join(ROOT, entry), path.join(work, entry));
  }
  const runner = path.join(work, '.runner');
  await mkdir(runner);
  const outputFile = path.join(runner, 'output');
  const summaryFile = path.join(runner, 'summary.md');
  const outputs: Record<string, Record<string, string>> = {};
  const expr = (text: string) =>
    text.replace(/\$\{\{\s*([^}]+?)\s*\}\}/g, (_, e: string) => {
      if (e === 'github.run_id') return '4242';
      const out = /^steps\.([\w-]+)\.outputs\.(\w+)$/.exec(e);
      if (out) return outputs[out[1]!]?.[out[2]!] ?? '';
      if (/^vars\.\w+$/.test(e)) return 'test-bucket';
      throw new Error(`the test cannot substitute \${{ ${e} }}`);
    });
  const condition = (cond: string | undefined): boolean => {
    if (cond === undefined) return !jobFailed;
    if (cond === 'always()') return true;
    const m = /^steps\.([\w-]+)\.outputs\.(\w+) (==|!=) '([^']*)'$/.exec(cond);
    if (!m) throw new Error(`the test cannot evaluate if: ${cond}`);
    const value = outputs[m[1]!]?.[m[2]!] ?? '';
    return !jobFailed && (m[3] === '==' ? value === m[4] : value !== m[4]);
  };
  for (const step of steps) {
    const label = step.id ?? step.name ?? step.uses ?? '?';
    if (!condition(step.if)) continue;
    if (step.uses) {
      ran.push(`uses ${step.uses}`);
      const paths = [step.with?.['path'], step.with?.['report_paths']].filter((p): p is string => typeof p === 'string');
      if (step.uses.startsWith('actions/upload-artifact') || step.uses.startsWith('actions/cache/save') || step.uses.includes('junit')) {
        uploaded.push(...paths);
      }
      continue;
    }
    const script = REPLACED[step.id ?? ''] ?? REPLACED[step.name ?? ''] ?? expr(step.run!);
    await writeFile(outputFile, '');
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      ...workflow.jobs.audit.env,
      ...Object.fromEntries(Object.entries(step.env ?? {}).map(([k, v]) => [k, expr(v)])),
      GITHUB_OUTPUT: outputFile,
      GITHUB_STEP_SUMMARY: summaryFile,
    };
    delete env['VITEST'];
    delete env['VITEST_POOL_ID'];
    delete env['VITEST_WORKER_ID'];
    const file = path.join(runner, `${ran.length}.sh`);
    await writeFile(file, script);
    const code = await exec('bash', ['--noprofile', '--norc', '-eo', 'pipefail', file], { cwd: work, env }).then(
      () => 0,
      (err: { code: number }) => err.code,
    );
    ran.push(`run ${label} -> ${code}`);
    for (const line of (await readFile(outputFile, 'utf8')).split('\n').filter(Boolean)) {
      const [k, ...v] = line.split('=');
      (outputs[step.id ?? label] ??= {})[k!] = v.join('=');
    }
    if (code !== 0) jobFailed = true;
  }
  summary = existsSync(summaryFile) ? await readFile(summaryFile, 'utf8') : '';
}, 300_000);

test('its run: steps, in order, audit a fixture with drift and fail the job at the end, and only there', () => {
  expect(ran).toEqual([
    'uses actions/checkout@v4',
    'uses actions/setup-node@v4',
    'run Install -> 0',
    'run fetch-exports -> 0',
    'uses actions/cache/restore@v4',
    'run audit -> 0',
    'run Evidence snapshot of the drift -> 0',
    'run Job summary -> 0',
    'uses actions/cache/save@v4',
    'uses mikepenz/action-junit-report@v5',
    'uses actions/upload-artifact@v4',
    'uses actions/upload-artifact@v4',
    'uses actions/upload-artifact@v4',
    'run Fail on error-severity drift -> 1',
  ]);
});

test('every file it publishes or uploads exists, and summary.md reached the job summary', async () => {
  expect(uploaded.sort()).toEqual(['evidence/', 'recon-history', 'recon-history/', 'reports/', 'reports/junit.xml']);
  for (const p of uploaded) expect(existsSync(path.join(work, p)), p).toBe(true);
  expect(await readdir(path.join(work, 'reports'))).toEqual(expect.arrayContaining(['findings.json', 'junit.xml', 'summary.md', 'index.html']));
  expect(existsSync(path.join(work, 'evidence', 'manifest.json'))).toBe(true);
  expect((await readdir(path.join(work, 'recon-history', 'invariants'))).length).toBe(1);
  expect(summary).toBe(await readFile(path.join(work, 'reports', 'summary.md'), 'utf8'));
  expect(summary).toMatch(/^# billing-recon audit: error-severity violations found/);
});
