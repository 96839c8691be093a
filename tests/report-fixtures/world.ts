import { fileURLToPath } from 'node:url';
import { auditExports } from '../../src/audit.ts';
import { parseConfig } from '../../src/config.ts';
import type { Db } from '../../src/db.ts';
import type { Engine } from '../../src/engine/engine.ts';
import type { Findings, InvariantResult } from '../../src/findings/types.ts';
import { VIOLATION_COLUMNS } from '../../src/contract/violations.ts';
import type { Config } from '../../src/config.ts';

/**
 * A hand-made drifted world for the report tests: the contract tables of fixtures/clean, plus
 * extra rows and a hand-written `violations` table whose identifiers are hostile (markup, path
 * traversal, very long, non-ASCII, differing only in case or punctuation). The findings are
 * derived from that table the way the audit derives them, so pages and index agree.
 */

export const CLEAN = fileURLToPath(new URL('../../fixtures/clean/', import.meta.url));

export const HOSTILE = {
  script: '<script>alert(1)</script>',
  img: '"><img src=x onerror=alert(1)>',
  traversal: '../../etc/passwd',
  absolute: '/etc/passwd',
  dots: '..',
  long: `org-${'x'.repeat(3000)}`,
  unicode: 'Zürich-公司',
  caseA: 'Org-Case',
  caseB: 'org-case',
  punctA: 'org.case',
  punctB: 'org/case',
  empty: '',
} as const;

/** An org with more violations of one invariant than a page lists. */
export const BUSY_ORG = 'org_busy';
export const BUSY_COUNT = 120;
export const HOSTILE_APP = '<b>app</b>"\'&';
export const HOSTILE_PROJECT = '<script>proj</script>';
/** A correlation id that would break out of a LogQL string if not escaped. */
export const HOSTILE_CORRELATION = 'c"} |= "x\\';

export type Row = Partial<Record<(typeof VIOLATION_COLUMNS)[number]['name'], string | number | boolean | null>>;

export async function insertViolations(db: Db, rows: Row[]): Promise<void> {
  const names = VIOLATION_COLUMNS.map((c) => c.name);
  const sql = `INSERT INTO violations (${names.join(', ')}) VALUES (${names.map((_, i) => `$${i + 1}`).join(', ')})`;
  for (const r of rows) {
    await db.run(
      sql,
      names.map((n) => {
        const v = r[n];
        if (v === undefined) return n === 'waived' ? false : null;
        if (n === 'amount_minor' && typeof v === 'number') return BigInt(v);
        return v;
      }),
    );
  }
}

/** Findings recomputed from the `violations` table (counts and money per invariant, samples empty). */
export async function findingsFrom(db: Db, base: Findings): Promise<Findings> {
  const counts = await db.all<{ invariant_id: string; severity: string; open: bigint; waived: bigint }>(
    `SELECT invariant_id, min(severity) AS severity, count(*) FILTER (WHERE NOT waived) AS open, count(*) FILTER (WHERE waived) AS waived
     FROM violations GROUP BY 1 ORDER BY 1`,
  );
  const money = await db.all<{ invariant_id: string; currency: string; amount: bigint }>(
    `SELECT invariant_id, currency, sum(amount_minor)::BIGINT AS amount FROM violations
     WHERE NOT waived AND amount_minor IS NOT NULL AND currency IS NOT NULL GROUP BY ALL ORDER BY 1, 2`,
  );
  const invariants: InvariantResult[] = counts.map((c) => {
    const byCurrency: Record<string, bigint> = {};
    for (const m of money) if (m.invariant_id === c.invariant_id) byCurrency[m.currency] = m.amount;
    return {
      id: c.invariant_id,
      title: c.invariant_id,
      family: c.invariant_id.split('.')[0] as InvariantResult['family'],
      severity: c.severity as 'error' | 'warn',
      entity: 'usage_record',
      status: Number(c.open) > 0 ? 'fail' : 'waived',
      violations: Number(c.open),
      waived_violations: Number(c.waived),
      amount_minor_by_currency: byCurrency,
      sample: [],
    };
  });
  const total: Record<string, bigint> = {};
  for (const m of money) total[m.currency] = (total[m.currency] ?? 0n) + m.amount;
  const sum = (f: (r: InvariantResult) => number) => invariants.reduce((a, r) => a + f(r), 0);
  return {
    ...base,
    invariants,
    totals: {
      ...base.totals,
      invariants: invariants.length,
      failed: invariants.filter((r) => r.status === 'fail').length,
      violations: sum((r) => r.violations),
      error_violations: sum((r) => (r.severity === 'error' ? r.violations : 0)),
      warn_violations: sum((r) => (r.severity === 'warn' ? r.violations : 0)),
      waived_violations: sum((r) => r.waived_violations),
      amount_minor_by_currency: total,
    },
  };
}

export interface World {
  db: Db;
  engine: Engine;
  findings: Findings;
  config: Config;
  /** Every org id that has violations. */
  orgs: string[];
  /** Every app instance id that has violations. */
  apps: string[];
}

/**
 * Builds the hostile world. `links` are optional observability URL templates.
 */
export async function hostileWorld(links: Config['links'] = {}): Promise<World> {
  const loaded = parseConfig({ links }, '(test)');
  const run = await auditExports({ exportsDir: CLEAN, config: loaded });
  const db = run.db;
  await db.run(`DELETE FROM violations`);

  const orgs = [...Object.values(HOSTILE), BUSY_ORG, 'org_a'];
  const rows: Row[] = [];
  orgs.forEach((org, i) => {
    rows.push({
      invariant_id: 'usage.unbilled_closed', severity: 'error', entity_type: 'usage_record', entity_id: `ur_h${i}`,
      org_id: org, project_id: i % 2 ? HOSTILE_PROJECT : `${org}/p1`, usage_record_id: `ur_h${i}`, usage_source: 'allocation',
      amount_minor: 1000 + i, currency: 'USD', correlation_id: i === 0 ? HOSTILE_CORRELATION : `corr-${i}`, trace_id: `trace-${i}`,
      detail: JSON.stringify({ accrued_cost_minor: 1000 + i, note: org }),
    });
    rows.push({
      invariant_id: 'usage.debit_mismatch', severity: 'error', entity_type: 'usage_record', entity_id: `ur_m${i}`,
      org_id: org, project_id: `${org}/p2`, usage_record_id: `ur_m${i}`, usage_source: 'app_runtime', app_instance_id: HOSTILE_APP,
      amount_minor: 300, currency: 'EUR', correlation_id: null, trace_id: `trace-m${i}`,
      // the shape src/catalog/usage.ts writes: debited 1300 against 1000 accrued, an over-charge
      detail: JSON.stringify({
        accrued_cost_minor: 1000, currency: 'EUR', debited_minor: 1300, difference_minor: 300,
        by_currency: [{ currency: 'EUR', expected_minor: 1000, debited_minor: 1300, ledger_entry_ids: ['le_1', 'le_2'] }],
      }),
    });
  });
  // The app instance's id itself is hostile, so it needs attribution and usage in the contract tables.
  await db.run(
    `INSERT INTO app_instances (app_instance_id, org_id, project_id, app_type, operating_mode, control_plane_scope, runtime_backend, status, started_at, correlation_id, trace_id)
     VALUES ($1, $2, 'p_x', 'ray', 'dedicated', 'instance', 'ray', 'running', '2026-11-20T09:00:00Z', $3, 'trace-app-x')`,
    [HOSTILE_APP, HOSTILE.script, HOSTILE_CORRELATION],
  );
  await db.run(
    `INSERT INTO usage_records (usage_record_id, usage_source, app_instance_id, org_id, project_id, requested_by_user_id, component, control_plane_component,
       start_time, end_time, accrued_cost_minor, currency)
     VALUES ('ur_app_x1', 'app_runtime', $1, $2, 'p_x', 'u_x', 'head', true, '2026-11-20T09:00:00Z', NULL, 120, 'EUR'),
            ('ur_app_x2', 'app_runtime', $1, $2, 'p_x', 'u_x', 'worker', false, '2026-11-20T09:00:00Z', '2026-11-20T10:00:00Z', 1000, 'EUR')`,
    [HOSTILE_APP, HOSTILE.script],
  );
  await db.run(
    `INSERT INTO ledger_entries (ledger_entry_id, org_id, requested_by_user_id, project_id, entry_type, direction, amount_minor, currency, usage_record_id, created_at)
     VALUES ('le_x1', $1, 'u_x', 'p_x', 'usage_debit', 'debit', 1300, 'EUR', 'ur_app_x2', '2026-11-20T10:01:00Z')`,
    [HOSTILE.script],
  );
  // Open items of the unicode tenant, for the aging view.
  await db.run(
    `INSERT INTO usage_records (usage_record_id, usage_source, allocation_id, org_id, project_id, requested_by_user_id, start_time, accrued_cost_minor, currency)
     VALUES ('ur_open1', 'allocation', 'alloc_u', $1, 'p_u', 'u_u', '2026-11-20T11:20:00Z', 50, 'USD'),
            ('ur_open2', 'allocation', 'alloc_u', $1, 'p_u', 'u_u', '2026-11-20T03:00:00Z', 900, 'USD'),
            ('ur_open3', 'allocation', 'alloc_u', $1, 'p_u', 'u_u', '2026-11-10T03:00:00Z', 7000, 'USD')`,
    [HOSTILE.unicode],
  );
  await db.run(
    `INSERT INTO payment_sessions (payment_session_id, org_id, requested_by_user_id, status, amount_minor, currency, created_at)
     VALUES ('ps_u1', $1, 'u_u', 'open', 2500, 'EUR', '2026-11-19T11:00:00Z')`,
    [HOSTILE.unicode],
  );
  for (let i = 0; i < BUSY_COUNT; i++) {
    rows.push({
      invariant_id: 'ledger.duplicate_credit', severity: 'error', entity_type: 'payment_session', entity_id: `ps_busy_${String(i).padStart(3, '0')}`,
      org_id: BUSY_ORG, payment_session_id: `ps_busy_${i}`, amount_minor: 100 + i, currency: 'USD',
      correlation_id: `corr-busy-${i}`, detail: JSON.stringify({ credits: 2 }),
    });
  }
  rows.push({
    invariant_id: 'usage.billing_lag', severity: 'warn', entity_type: 'usage_record', entity_id: 'ur_1',
    org_id: 'org_a', project_id: 'p_a1', usage_record_id: 'ur_1', waived: true, waiver_reason: 'known <lag> during migration',
    detail: JSON.stringify({ lag_minutes: 90 }),
  });
  rows.push({
    invariant_id: 'contract.rejected_row', severity: 'error', entity_type: 'source_row', entity_id: 'usage_records:usage_records.csv:9',
    detail: JSON.stringify({ table: 'usage_records', line: 9 }),
  });
  await insertViolations(db, rows);
  const findings = await findingsFrom(db, run.findings);
  return { db, engine: run.engine, findings, config: loaded.config, orgs, apps: [HOSTILE_APP] };
}
