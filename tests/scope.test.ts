import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test, vi } from 'vitest';
import { auditExports } from '../src/audit.ts';
import { main } from '../src/cli/main.ts';
import { UsageError } from '../src/errors.ts';
import { applyScopeTo, normaliseScope, validateScopeAgainstExports } from '../src/scope.ts';
import { parseFindings } from '../src/findings/io.ts';
import { diffSnapshots } from '../src/snapshot/diff.ts';
import { createSnapshot } from '../src/snapshot/snapshot.ts';
import { auditOnce, fixture } from './helpers/audits.ts';
import { tempDir } from './helpers/exports.ts';

/**
 * Scope by every identifier of the runbooks, on fixtures/demo (32 known violations, see its
 * drift.json): each option alone, a union of repeats, an intersection of two flags, and a value
 * matching nothing (exit 2 with the nearest existing values).
 */

const DEMO = fixture('demo');
// The demo's one violation naming no tenant: a repeated payment session id.
const NO_TENANT = 'contract.duplicate_key ps_115';
const CORR_UR707 = 'corr-41b2acf1ec3ee9ac';
const TRACE_PS116 = 'eab0b6a6c3679011a7fd15063ba67bca';

const ORG_8 = [
  'ledger.duplicate_credit ps_116',
  'ledger.duplicate_debit ur_707',
  'ledger.duplicate_idempotency_key le_1380',
  'ledger.duplicate_idempotency_key le_1399',
  'ledger.duplicate_idempotency_key le_728',
  'usage.debit_mismatch ur_707',
  'usage.orphan_open ur_1479',
];

const scoped = {
  org: { scope: { orgs: ['org_8'] }, expected: [NO_TENANT, ...ORG_8].sort() },
  orgUnion: { scope: { orgs: ['org_8', 'org_3'] }, expected: [NO_TENANT, ...ORG_8, 'ledger.balance_projection org_3|u_3_1|GBP'].sort() },
  orgAndProject: {
    scope: { orgs: ['org_8'], projects: ['p_8_1'] },
    expected: ORG_8.filter((v) => !v.endsWith('ps_116')),
  },
  project: {
    scope: { projects: ['p_6_1'] },
    expected: [
      'app_runtime.missing_usage app_88',
      'app_runtime.orphan_open ur_1461',
      'app_runtime.orphan_open ur_1462',
      'app_runtime.source_attribution ur_210',
      'usage.outside_allocation_window ur_606',
    ],
  },
  user: {
    scope: { users: ['u_1_3'] },
    expected: [
      'app_runtime.control_plane_classification ur_274',
      'ledger.unaudited_adjustment le_1411',
      'payments.completed_without_credit ps_62',
      'usage.unbilled_closed ur_1054',
    ],
  },
  allocation: { scope: { allocations: ['alloc_60'] }, expected: ['usage.duplicate_open ur_1488', 'usage.duplicate_open ur_1503'] },
  appInstance: { scope: { app_instances: ['app_27'] }, expected: ['app_runtime.orphan_open ur_1461', 'app_runtime.orphan_open ur_1462'] },
  usageSource: {
    scope: { usage_sources: ['app_runtime'] },
    expected: [
      'app_runtime.anchor_mismatch ur_1309',
      'app_runtime.control_plane_classification ur_274',
      'app_runtime.orphan_open ur_1461',
      'app_runtime.orphan_open ur_1462',
    ],
  },
  // `T` is the contract's text for true: normalised, not a typo.
  controlPlane: { scope: { control_plane_components: ['T'] }, expected: ['app_runtime.anchor_mismatch ur_1309', 'app_runtime.orphan_open ur_1461'] },
  correlation: {
    scope: { correlation_ids: [CORR_UR707] },
    expected: ['ledger.duplicate_debit ur_707', 'ledger.duplicate_idempotency_key le_1399', 'ledger.duplicate_idempotency_key le_728', 'usage.debit_mismatch ur_707'],
  },
  trace: { scope: { trace_ids: [TRACE_PS116] }, expected: ['ledger.duplicate_credit ps_116'] },
} as const;

/** Whole audits for a few scopes (findings, blast radius); the rest narrow one audit's violations. */
const AUDITED = ['org', 'orgAndProject', 'controlPlane'] as const;
const audits = auditOnce({
  all: { exportsDir: DEMO },
  ...Object.fromEntries(AUDITED.map((name) => [name, { exportsDir: DEMO, scope: scoped[name].scope }])),
});

async function found(name: keyof typeof scoped): Promise<string[]> {
  const audited = (AUDITED as readonly string[]).includes(name);
  const db = audits.run(audited ? name : 'all').db;
  const table = audited ? 'violations' : `scoped_${name}`;
  if (!audited) {
    // The audit's own narrowing, validation included, on a copy of the unscoped violations.
    const run = audits.run('all');
    await db.run(`CREATE OR REPLACE TEMP TABLE ${table} AS SELECT * FROM violations`);
    const scope = await validateScopeAgainstExports((key, values) => run.engine.unmatchedScopeValues(key, values), normaliseScope(scoped[name].scope), 'audit');
    await applyScopeTo(db, table, scope);
  }
  const rows = await db.all<{ v: string }>(`SELECT invariant_id || ' ' || entity_id AS v FROM ${table} ORDER BY 1`);
  return rows.map((r) => r.v);
}

describe('scope options narrow the findings (repeats are a union, flags intersect)', () => {
  for (const [name, s] of Object.entries(scoped) as Array<[keyof typeof scoped, (typeof scoped)[keyof typeof scoped]]>) {
    test(`${name}: ${JSON.stringify(s.scope)}`, async () => {
      expect(await found(name)).toEqual(s.expected);
      if (!(AUDITED as readonly string[]).includes(name)) return;
      const f = audits.run(name).findings;
      expect(f.totals.violations).toBe(s.expected.length);
      expect(f.blast_radius.violations + f.blast_radius.unattributed_violations).toBe(s.expected.length);
    });
  }

  test('findings.json records every narrowing dimension, booleans normalised', () => {
    expect(audits.run('controlPlane').findings.scope).toEqual({ orgs: [], app_instances: [], control_plane_components: ['true'] });
    expect(audits.run('orgAndProject').findings.scope).toEqual({ orgs: ['org_8'], app_instances: [], projects: ['p_8_1'] });
  });
});

describe('a scope value that matches nothing is exit 2 with "did you mean"', () => {
  test('--org org_A on exports holding org_a (issue 9): exit 2, the nearest tenant named', async () => {
    const out = await tempDir('recon-scope-');
    const errors: string[] = [];
    const err = vi.spyOn(console, 'error').mockImplementation((m: string) => void errors.push(m));
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    let code: number;
    try {
      code = await main(['audit', '--exports', fixture('clean'), '--out', out, '--org', 'org_A']);
    } finally {
      err.mockRestore();
      log.mockRestore();
    }
    expect(code).toBe(2);
    expect(errors.join('\n')).toBe('recon: recon audit: --org "org_A" matches nothing in the exports; did you mean "org_a"?');
  });

  test('every dimension checks its values in DuckDB and offers the nearest ones', async () => {
    const attempt = (scope: Record<string, string[]>) => auditExports({ exportsDir: fixture('clean'), scope, command: 'snapshot' });
    await expect(attempt({ projects: ['P_A1'] })).rejects.toThrow('recon snapshot: --project "P_A1" matches nothing in the exports; did you mean "p_a1"?');
    await expect(attempt({ users: ['u_a9'] })).rejects.toThrow(/--user "u_a9" matches nothing in the exports; did you mean "u_a1" or "u_a2" or "u_b1"\?/);
    await expect(attempt({ allocations: ['alloc1'] })).rejects.toThrow(/--allocation "alloc1" matches nothing in the exports; did you mean "alloc_1"/);
    await expect(attempt({ app_instances: ['app_1', 'APP_9'] })).rejects.toThrow(/--app-instance "APP_9" matches nothing in the exports; did you mean "app_1"/);
    await expect(attempt({ usage_sources: ['app-runtime'] })).rejects.toThrow('--usage-source "app-runtime" matches nothing in the exports; did you mean "app_runtime"?');
    await expect(attempt({ control_plane_components: ['maybe'] })).rejects.toThrow('--control-plane-component "maybe" is not a boolean; did you mean "true" or "false"?');
    await expect(attempt({ correlation_ids: ['corr-a7'] })).rejects.toThrow(/--correlation-id "corr-a7" matches nothing in the exports; did you mean "corr-a1" or "corr-a2" or "corr-a6"\?/);
    // Nothing near: no guess, still an error. Two bad flags: both named in one message.
    const both = attempt({ trace_ids: ['zzzzzzzzzzzz'], orgs: ['org_q'] });
    await expect(both).rejects.toBeInstanceOf(UsageError);
    await expect(both).rejects.toThrow(
      'recon snapshot: --org "org_q" matches nothing in the exports; did you mean "org_a" or "org_b"?\n' +
        'recon snapshot: --trace-id "zzzzzzzzzzzz" matches nothing in the exports',
    );
  });
});

describe('snapshot and diff take the same scope', () => {
  test('a snapshot by user records it; a diff narrows both sides further and refuses a typo', async () => {
    const root = await tempDir('recon-scope-snap-');
    const remediation = path.resolve('fixtures/remediation');
    const before = path.join(root, 'before');
    const after = path.join(root, 'after');
    const snap = (exportsDir: string, outDir: string) =>
      createSnapshot({ exportsDir, outDir, label: outDir, scope: { users: ['u_b1'] }, now: () => new Date('2026-12-02T00:00:00Z') });
    const b = await snap(path.join(remediation, 'before'), before);
    await snap(path.join(remediation, 'after-partial'), after);
    expect(b.manifest.scope).toEqual({ orgs: [], app_instances: [], correlation_ids: [], users: ['u_b1'] });
    const findings = parseFindings(await readFile(path.join(before, 'findings.json'), 'utf8'));
    expect(findings.scope).toEqual({ orgs: [], app_instances: [], users: ['u_b1'] });

    const whole = await diffSnapshots({ beforeDir: before, afterDir: after, outDir: path.join(root, 'd1') });
    const narrowed = await diffSnapshots({ beforeDir: before, afterDir: after, outDir: path.join(root, 'd2'), scope: { usage_sources: ['allocation'] } });
    const keys = (d: typeof whole.diff) => [...d.resolved, ...d.introduced, ...d.persisting.map((p) => p.after)].map((v) => `${v.invariant_id} ${v.entity_id} ${v.usage_source}`).sort();
    expect(keys(whole.diff).some((k) => !k.endsWith(' allocation'))).toBe(true);
    expect(keys(narrowed.diff).length).toBeGreaterThan(0);
    expect(keys(narrowed.diff).every((k) => k.endsWith(' allocation'))).toBe(true);
    expect(narrowed.diff.narrowed_to).toEqual({ usage_sources: ['allocation'] });
    await expect(diffSnapshots({ beforeDir: before, afterDir: after, outDir: path.join(root, 'd3'), scope: { orgs: ['ORG_B'] } })).rejects.toThrow(
      'recon diff: --org "ORG_B" matches nothing in the violations of either side; did you mean "org_b"?',
    );
  });
});
