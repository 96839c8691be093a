import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'lossless-json';
import { beforeAll, describe, expect, test } from 'vitest';
import type { CommandIo } from '../src/cli/io.ts';
import { diffCommand, snapshotCommand } from '../src/cli/snapshot.ts';
import { copyFixture, editFile, tempDir } from './helpers/exports.ts';

/**
 * The two incident runbooks' remediations, performed on copies of committed fixtures exactly as
 * an engineer would (append-only ledger corrections with actor and correlation id; data fixes
 * on usage rows), then judged by `recon snapshot` before and after and `recon diff`: every
 * recovery criterion must pass, also with --strict, and the resolved money must reconcile with
 * the corrective entries.
 */

const silent: CommandIo = { stdout: () => {}, stderr: () => {} };

async function snapshot(exportsDir: string, label: string, extra: string[]): Promise<string> {
  const dir = path.join(await tempDir('recon-remediation-snap-'), label);
  const err: string[] = [];
  const code = await snapshotCommand(['--exports', exportsDir, '--label', label, '--out', dir, ...extra], { stdout: () => {}, stderr: (l) => err.push(l) });
  if (code === 2) throw new Error(err.join('\n'));
  return dir;
}

interface DiffJson {
  resolved: Array<{ invariant_id: string; entity_id: string }>;
  persisting: unknown[];
  introduced: unknown[];
  checks: Record<string, { passed: boolean; details: string }>;
  money: Record<string, Record<string, number>>;
  reconciliation: { available: boolean; by_currency: Array<{ currency: string; resolved_minor: number; corrective_minor: number; difference_minor: number }>; explanations: Array<{ item: string; reason: string }> };
  without_tenant: { applies: boolean; resolved: number; persisting: number; introduced: number; violations: Array<{ invariant_id: string; entity_id: string; status: string }> };
  corrective_entries: { entries: Array<{ ledger_entry_id: string; missing: string[] }>; unaudited: number };
  exit_code: number;
}

async function diff(before: string, after: string): Promise<DiffJson> {
  const out = await tempDir('recon-remediation-diff-');
  const code = await diffCommand([before, after, '--out', out, '--strict'], silent);
  // Money stays exact in diff.json (JSON integers); all amounts here are small.
  const doc = parse(await readFile(path.join(out, 'diff.json'), 'utf8'), null, (v) => Number(v)) as DiffJson;
  expect(code).toBe(0);
  return doc;
}

const keys = (xs: Array<{ invariant_id: string; entity_id: string }>) => xs.map((x) => `${x.invariant_id} ${x.entity_id}`);
const everyCheckPasses = { no_duplicates_introduced: true, no_unresolved_drift: true, no_new_drift: true, every_check_comparable: true };
const verdicts = (d: DiffJson) => Object.fromEntries(Object.entries(d.checks).map(([k, c]) => [k, c.passed]));

/** Replaces the row whose first field is `id` (these fixtures quote nothing). */
const setRow = (id: string, edit: (fields: string[]) => void) => (text: string) =>
  text
    .split('\n')
    .map((line) => {
      const f = line.split(',');
      if (f[0] !== id) return line;
      edit(f);
      return f.join(',');
    })
    .join('\n');

describe('billing-worker runbook on the demo, tenant org_8', () => {
  // Ledger columns: ledger_entry_id,org_id,requested_by_user_id,project_id,entry_type,direction,
  // amount_minor,currency,usage_record_id,payment_session_id,reverses_ledger_entry_id,
  // idempotency_key,actor,created_at,correlation_id,trace_id
  const FIX = [
    // the retried debit of ur_707 (EUR 4.80, key debit:ur_707 on le_728 and le_1399): reversed
    'le_fix_1,org_8,u_8_1,p_8_1,reversal,credit,480,EUR,,,le_1399,reverse:le_1399,ops@example.com,2026-11-20T11:55:00Z,corr-inc-42,',
    // the replayed credit of ps_116 (EUR 468.00, le_726 and le_1401): reversed
    'le_fix_2,org_8,u_8_2,,reversal,debit,46800,EUR,,,le_1401,reverse:le_1401,ops@example.com,2026-11-20T11:55:30Z,corr-inc-42,',
    // le_1380 reused org_5's key debit:ur_1480: reversed and re-posted under a key of its own
    'le_fix_3,org_8,u_8_1,p_8_1,reversal,credit,120,EUR,,,le_1380,reverse:le_1380,ops@example.com,2026-11-20T11:56:00Z,corr-inc-42,',
    'le_fix_4,org_8,u_8_1,p_8_1,usage_debit,debit,120,EUR,ur_1480,,,debit:ur_1480:org_8,,2026-11-20T11:56:30Z,corr-inc-42,',
  ];
  let diffDoc: DiffJson;

  beforeAll(async () => {
    const before = await copyFixture(path.resolve('fixtures/demo'), 'recon-remediation-demo-');
    const after = await copyFixture(path.resolve('fixtures/demo'), 'recon-remediation-demo-');
    await editFile(after, 'ledger_entries.csv', (t) => `${t.trimEnd()}\n${FIX.join('\n')}\n`);
    // The orphan ur_1479 opened at 11:12 on alloc_95, released at 08:12: the runbook closes
    // orphans at the allocation's released_at. It metered nothing after the release, so it
    // becomes a zero-length, zero-cost interval at released_at.
    await editFile(after, 'usage_records.csv', setRow('ur_1479', (f) => {
      f[12] = '2026-11-20T08:12:00Z'; // start_time
      f[13] = '2026-11-20T08:12:00Z'; // end_time
      f[14] = '2026-11-20T08:12:00Z'; // last_billed_at
    }));
    // Same audit time on both sides: the remediation entries are posted before it.
    const scope = ['--org', 'org_8', '--as-of', '2026-11-20T12:00:00Z'];
    diffDoc = await diff(await snapshot(before, 'before', scope), await snapshot(after, 'after', scope));
  });

  test('every recovery criterion passes, with --strict: exit 0', () => {
    expect(verdicts(diffDoc)).toEqual(everyCheckPasses);
    expect(diffDoc.exit_code).toBe(0);
    expect(keys(diffDoc.resolved)).toEqual([
      'ledger.duplicate_credit ps_116',
      'ledger.duplicate_debit ur_707',
      'ledger.duplicate_idempotency_key le_1380',
      'ledger.duplicate_idempotency_key le_1399',
      'ledger.duplicate_idempotency_key le_728',
      'usage.debit_mismatch ur_707',
      'usage.orphan_open ur_1479',
    ]);
    expect(diffDoc.persisting).toEqual([]);
    expect(diffDoc.introduced).toEqual([]);
    expect(diffDoc.corrective_entries.entries.map((e) => e.ledger_entry_id)).toEqual(['le_fix_1', 'le_fix_2', 'le_fix_3']);
    expect(diffDoc.corrective_entries.unaudited).toBe(0);
  });

  test("another tenant's repeated payment-session row stays in scope, but apart: it does not fail the check", () => {
    expect(diffDoc.without_tenant).toEqual({
      applies: true,
      resolved: 0,
      persisting: 1,
      introduced: 0,
      violations: [{ invariant_id: 'contract.duplicate_key', entity_id: 'ps_115', status: 'persisting', severity: 'error' }],
    });
  });

  test('resolved money counts each movement once and equals the corrective entries: EUR 474.00', () => {
    expect(diffDoc.money['resolved']).toEqual({ EUR: 47400 });
    expect(diffDoc.money['after']).toEqual({});
    expect(diffDoc.reconciliation).toEqual({
      available: true,
      by_currency: [{ currency: 'EUR', resolved_minor: 47400, corrective_minor: 47400, difference_minor: 0 }],
      explanations: [],
    });
  });
});

describe('app-runtime runbook on control_plane_unclassified', () => {
  let diffDoc: DiffJson;

  beforeAll(async () => {
    const fixture = path.resolve('fixtures/control_plane_unclassified');
    const after = await copyFixture(fixture, 'recon-remediation-cp-');
    // The runbook: a component is control plane exactly when its name is one; a row without a
    // component is workload. Columns: component = 7, control_plane_component = 8.
    const flags: Record<string, string> = { ur_9: 'true', ur_10: 'false', ur_12: 'false', ur_13: 'true', ur_15: 'false', ur_16: 'false' };
    await editFile(after, 'usage_records.csv', (t) =>
      Object.entries(flags).reduce((text, [id, flag]) => setRow(id, (f) => void (f[8] = flag))(text), t),
    );
    diffDoc = await diff(await snapshot(fixture, 'before', []), await snapshot(after, 'after', []));
  });

  test('every recovery criterion passes, with --strict: exit 0', () => {
    expect(verdicts(diffDoc)).toEqual(everyCheckPasses);
    expect(keys(diffDoc.resolved)).toEqual(['ur_10', 'ur_12', 'ur_13', 'ur_15', 'ur_16', 'ur_9'].map((id) => `app_runtime.control_plane_classification ${id}`));
    expect(diffDoc.persisting).toEqual([]);
    expect(diffDoc.introduced).toEqual([]);
    expect(diffDoc.without_tenant.applies).toBe(false);
  });

  test('a data fix posts no ledger entry: the reconciliation says so for each resolved movement', () => {
    expect(diffDoc.corrective_entries.entries).toEqual([]);
    const [usd] = diffDoc.reconciliation.by_currency;
    expect(usd).toMatchObject({ currency: 'USD', corrective_minor: 0 });
    expect(usd!.difference_minor).toBe(usd!.resolved_minor);
    expect(diffDoc.reconciliation.explanations.map((e) => e.item)).toEqual(['ur_10', 'ur_12', 'ur_13', 'ur_15', 'ur_16', 'ur_9'].map((id) => `usage_record:${id}`));
    for (const e of diffDoc.reconciliation.explanations) expect(e.reason).toMatch(/resolved without a corrective entry/);
  });
});
