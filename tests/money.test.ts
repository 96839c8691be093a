import { join } from 'node:path';
import { listValue } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { auditExports, type AuditRun } from '../src/audit.ts';
import { Db } from '../src/db.ts';
import { majorUnitsSql, moneyItems } from '../src/findings/money.ts';
import { summaryMarkdown } from '../src/outputs.ts';
import { minorToDecimal } from '../src/findings/format.ts';
import { detailText } from '../src/findings/verdict.ts';

describe('amount_major: exact major units in SQL, the same text as minorToDecimal', () => {
  test('EUR, JPY, BHD, negatives, the BIGINT extremes, no currency', async () => {
    const db = await Db.open();
    try {
      const cases: Array<[bigint | null, string | null]> = [
        [2560n, 'EUR'], [5n, 'EUR'], [-5n, 'EUR'], [0n, 'EUR'], [1500n, 'JPY'], [-1500n, 'JPY'], [1500n, 'BHD'], [2534n, 'GBP'],
        [2n ** 63n - 1n, 'EUR'], [-(2n ** 63n), 'USD'], [7n, null], [null, 'EUR'],
      ];
      const rows = await db.all<{ i: number; m: string | null }>(
        `SELECT i, ${majorUnitsSql('a', 'c')} AS m FROM (SELECT unnest($a::BIGINT[]) AS a, unnest($c::VARCHAR[]) AS c, unnest(range(${cases.length})) AS i) ORDER BY i`,
        { a: listValue(cases.map(([a]) => a)), c: listValue(cases.map(([, c]) => c)) },
      );
      expect(rows.map((r) => r.m)).toEqual(cases.map(([a, c]) => (a === null || c === null ? null : minorToDecimal(a, c))));
      expect(rows.map((r) => r.m).slice(0, 10)).toEqual([
        '25.60', '0.05', '-0.05', '0.00', '1500', '-1500', '1.500', '25.34', '92233720368547758.07', '-92233720368547758.08',
      ]);
    } finally {
      db.close();
    }
  });
});

describe('de-duplicated money on the demo (CONTRACT.md §3: each money movement once)', () => {
  let run: AuditRun;
  beforeAll(async () => {
    run = await auditExports({ exportsDir: join(import.meta.dirname, '..', 'fixtures', 'demo') });
  });
  afterAll(() => run?.db.close());

  test('every counted money movement, priced once at the largest amount that names it', async () => {
    const items = await moneyItems(run.db);
    expect(items.map((i) => [i.item, i.currency, i.amount_minor, i.severity, i.invariant_ids.join(' ')])).toEqual([
      ['payment_session:ps_62', 'EUR', 49000n, 'error', 'payments.completed_without_credit'],
      ['payment_session:ps_116', 'EUR', 46800n, 'error', 'ledger.duplicate_credit'],
      // a warning only: the payment event never announced ps_8's credit
      ['payment_session:ps_8', 'EUR', 26300n, 'warn', 'events.payment_event_mismatch'],
      ['ledger_entry:le_1407', 'EUR', 4791n, 'error', 'ledger.dangling_reference'],
      ['usage_record:ur_210', 'EUR', 2560n, 'error', 'app_runtime.source_attribution'],
      ['ledger_entry:le_1411', 'EUR', 1200n, 'warn', 'ledger.unaudited_adjustment'],
      ['payment_session:ps_22', 'EUR', 1200n, 'error', 'payments.failed_reconcile'],
      ['usage_record:ur_1462', 'EUR', 693n, 'error', 'app_runtime.orphan_open'],
      ['usage_record:ur_1015', 'EUR', 640n, 'error', 'usage.debit_mismatch'],
      // the EUR 4.80 double debit of ur_707: three invariants, one movement
      ['usage_record:ur_707', 'EUR', 480n, 'error', 'ledger.duplicate_debit ledger.duplicate_idempotency_key usage.debit_mismatch'],
      ['usage_record:ur_1339', 'EUR', 320n, 'error', 'ledger.debit_wrong_account'],
      ['usage_record:ur_1054', 'EUR', 160n, 'error', 'usage.unbilled_closed'],
      ['usage_record:ur_1480', 'EUR', 120n, 'error', 'ledger.duplicate_idempotency_key'],
      ['usage_record:ur_1309', 'EUR', 100n, 'error', 'app_runtime.anchor_mismatch'],
      ['usage_record:ur_1461', 'EUR', 15n, 'error', 'app_runtime.orphan_open'],
      ['usage_record:ur_274', 'EUR', 0n, 'error', 'app_runtime.control_plane_classification'],
      ['ledger.balance_projection:org_3|u_3_1|GBP', 'GBP', 2534n, 'error', 'ledger.balance_projection'],
    ]);
    const sum = (cur: string, sev?: string) => items.filter((i) => i.currency === cur && (!sev || i.severity === sev)).reduce((a, i) => a + i.amount_minor, 0n);
    expect(run.findings.totals).toMatchObject({
      amount_minor_by_currency: { EUR: sum('EUR'), GBP: 2534n },
      error_amount_minor_by_currency: { EUR: sum('EUR', 'error'), GBP: 2534n },
      warn_amount_minor_by_currency: { EUR: sum('EUR', 'warn') },
      money_items: items.length,
    });
    expect(run.findings.totals.amount_minor_by_currency).toEqual({ EUR: 134379n, GBP: 2534n });
    // the per-invariant sums overlap by ur_707's two extra pricings (2 × EUR 4.80)
    expect(run.findings.totals.overlapping_amount_minor_by_currency).toEqual({ EUR: 134379n + 960n, GBP: 2534n });
  });

  test("org_8: EUR 474.00 at stake once, EUR 483.60 counted per invariant", async () => {
    const items = await moneyItems(run.db, 'violations', `org_id = 'org_8'`);
    expect(items.map((i) => [i.item, i.amount_minor])).toEqual([
      ['payment_session:ps_116', 46800n],
      ['usage_record:ur_707', 480n],
      ['usage_record:ur_1480', 120n],
    ]);
  });

  test('summary.md and the Vitest/JUnit failure table speak formatted money, never raw minor units', () => {
    const md = summaryMarkdown(run.findings);
    expect(md).toContain('Money at stake, each money movement counted once (17 movements): **EUR 1,343.79, GBP 25.34** — errors EUR 1,068.79, GBP 25.34; warnings only EUR 275.00.');
    expect(md).toContain('together EUR 1,353.39, GBP 25.34');
    expect(md).toContain('| FAIL | `usage.debit_mismatch` Debits of closed usage equal its accrued cost, in its currency | error | 2 | EUR 11.20 |');
    expect(md).not.toMatch(/\b135339\b|minor units/);
    const mismatch = run.findings.invariants.find((r) => r.id === 'usage.debit_mismatch')!;
    const table = detailText(mismatch);
    expect(table).toContain('2 violations, EUR 11.20');
    expect(table).toContain('EUR 4.80');
    expect(table).toMatch(/accrued cost: EUR 4\.80; debited: EUR 9\.60/);
    expect(table).not.toMatch(/accrued_cost_minor|= 480/);
  });
});
