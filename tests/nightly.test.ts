import { appendFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import type { AuditOptions } from '../src/audit.ts';
import { parseConfig } from '../src/config.ts';
import { verdictOf, exitCodeFor } from '../src/findings/verdict.ts';
import { auditOnce, fixture } from './helpers/audits.ts';
import { copyFixture } from './helpers/exports.ts';

/**
 * fixtures/events_drift plus one quiet payment session (8 sessions), so the two failed_reconcile
 * sessions are exactly 25% of the table. Its known drift: payments.failed_reconcile ps_5 (USD 30.00)
 * and ps_6 (EUR 20.00); payments.completed_without_credit ps_7 (USD 15.00); events.payment_event_mismatch
 * ps_2 (EUR 50.00) and ps_6 (EUR 20.00); events.allocation_status_mismatch alloc_1, alloc_6.
 */
let drift = '';
beforeAll(async () => {
  drift = await copyFixture(fixture('events_drift'));
  await appendFile(path.join(drift, 'payment_sessions.csv'), 'ps_9,org_a,u_a1,stripe,cs_9,expired,100,USD,,2026-11-20T01:00:00Z,,corr-ps9,trace-ps9\n');
});

const on = (config: unknown, extra: Partial<AuditOptions> = {}): AuditOptions => ({
  get exportsDir() {
    return drift;
  },
  config: parseConfig(config),
  ...extra,
});

const audits = auditOnce({
  waivers: on({
    waivers: [
      { invariant: 'payments.failed_reconcile', entity_id: 'ps_5', reason: 'provider refund pending', owner: 'finance-oncall', ticket: 'FIN-101', expires: '2027-01-31' },
      { invariant: 'payments.failed_reconcile', entity_id: 'ps_6', reason: 'was being retried', owner: 'payments-team', ticket: 'FIN-88', expires: '2026-11-01' },
      { invariant: 'ledger.duplicate_credit', entity_id: 'ps_404', reason: 'old incident', owner: 'payments-team', ticket: 'FIN-12' },
    ],
  }),
  // Every threshold kind exactly at its limit: tolerated.
  at: on({
    invariants: {
      'payments.failed_reconcile': { fail_above: { count: 2 } },
      'events.payment_event_mismatch': { fail_above: { money: { EUR: 7000 } } },
      'payments.completed_without_credit': { fail_above: { percent: 12.5 } },
      'events.allocation_status_mismatch': { warn_above: { percent: 100 / 3 + 0.0001 } },
    },
  }),
  // ...and one step above it.
  above: on({
    invariants: {
      'payments.failed_reconcile': { fail_above: { count: 1 } },
      'events.payment_event_mismatch': { fail_above: { money: { EUR: 6999 } } },
      'payments.completed_without_credit': { fail_above: { percent: 12.49 } },
      'events.allocation_status_mismatch': { warn_above: { count: 1 }, fail_above: { count: 2 } },
    },
  }),
  select: on(
    { severity: { 'payments.completed_without_credit': 'off' } },
    { select: ['payments', 'events.*'], exclude: ['events.payment_event_mismatch'] },
  ),
  // usage_records' newest timestamp is 11:50, payment_sessions' 11:15.
  fresh: on({ freshness: { usage_records: '2h', payment_sessions: '30m' } }, { now: () => new Date('2026-11-20T13:50:00Z') }),
  stale: on({ freshness: { usage_records: '2h' } }, { now: () => new Date('2026-11-20T13:50:01Z') }),
  warnError: on({}, { select: ['events'], warnError: true }),
});

describe('waivers', () => {
  test('a waiver suppresses its violation; an expired one fails the run and says so; one that matched nothing is stale', async () => {
    const { result, violations, run } = audits;
    const reconcile = result('waivers', 'payments.failed_reconcile');
    expect([reconcile.violations, reconcile.waived_violations]).toEqual([1, 1]);
    expect((await violations('waivers', 'payments.failed_reconcile')).map((v) => [v.entity_id, v.waived, v.waiver_reason])).toEqual([
      ['ps_5', true, 'provider refund pending · FIN-101 · owner finance-oncall'],
      ['ps_6', false, null],
    ]);
    const expired = await violations('waivers', 'waivers.expired');
    expect(expired.map((v) => v.entity_id)).toEqual(['waivers[1]']);
    expect(expired[0]!.detail).toMatchObject({ invariant: 'payments.failed_reconcile', entity_id: 'ps_6', owner: 'payments-team', ticket: 'FIN-88', expires: '2026-11-01' });
    expect(verdictOf(result('waivers', 'waivers.expired'))).toBe('error');
    const stale = await violations('waivers', 'waivers.stale');
    expect(stale.map((v) => [v.entity_id, (v.detail as { entity_id: string }).entity_id])).toEqual([['waivers[2]', 'ps_404']]);
    expect(verdictOf(result('waivers', 'waivers.stale'))).toBe('warn');
    expect(exitCodeFor(run('waivers').findings)).toBe(1);
  });

  test('with no waivers the waiver checks pass', () => {
    expect(audits.result('fresh', 'waivers.expired').status).toBe('pass');
    expect(audits.result('fresh', 'waivers.stale').status).toBe('pass');
  });
});

describe('thresholds', () => {
  test('at the limit (count, money, percent) violations are tolerated: pass, with the reason', () => {
    const { result, run } = audits;
    for (const id of ['payments.failed_reconcile', 'events.payment_event_mismatch', 'payments.completed_without_credit', 'events.allocation_status_mismatch']) {
      const r = result('at', id);
      expect([id, r.status, verdictOf(r), r.threshold?.outcome]).toEqual([id, 'pass', 'pass', 'tolerated']);
      expect(r.violations, id).toBeGreaterThan(0);
    }
    expect(exitCodeFor(run('at').findings)).toBe(0);
  });

  test('one step above the limit they trip: count and money and percent fail, a warn_above warns', () => {
    const { result } = audits;
    expect(result('above', 'payments.failed_reconcile').threshold?.reason).toBe('above fail threshold: count 2 > 1');
    expect(result('above', 'events.payment_event_mismatch').threshold?.reason).toBe('above fail threshold: EUR 70.00 > EUR 69.99');
    expect(result('above', 'payments.completed_without_credit').threshold?.reason).toBe('above fail threshold: 12.50% of 8 rows > 12.49%');
    for (const id of ['payments.failed_reconcile', 'events.payment_event_mismatch', 'payments.completed_without_credit']) {
      expect([id, verdictOf(result('above', id)), result('above', id).severity]).toEqual([id, 'error', 'error']);
    }
    const alloc = result('above', 'events.allocation_status_mismatch');
    expect([verdictOf(alloc), alloc.threshold?.reason]).toEqual(['warn', 'above warn threshold: count 2 > 1']);
  });

  test('a tripped threshold sets the severity of the rows in violations too', async () => {
    const rows = await audits.violations('above', 'events.payment_event_mismatch');
    expect(rows.map((v) => v.severity)).toEqual(['error', 'error']);
  });
});

describe('select, exclude and severity off', () => {
  test('deselected checks are skipped and say why', () => {
    const { run } = audits;
    const skipped = Object.fromEntries(run('select').findings.invariants.filter((r) => r.status === 'skipped').map((r) => [r.id, r.skipped_reason]));
    expect(skipped['payments.completed_without_credit']).toBe('disabled in the config (severity: off)');
    expect(skipped['events.payment_event_mismatch']).toBe('excluded (--exclude events.payment_event_mismatch)');
    expect(skipped['usage.missing_open']).toBe('not selected (--select payments,events.*)');
    const ran = run('select').findings.invariants.filter((r) => r.status !== 'skipped').map((r) => r.id);
    expect(ran).toEqual(['payments.failed_reconcile', 'events.allocation_status_mismatch']);
  });

  test('--warn-error turns warnings into failures', () => {
    const r = audits.result('warnError', 'events.allocation_status_mismatch');
    expect([r.severity, verdictOf(r)]).toEqual(['error', 'error']);
    expect(exitCodeFor(audits.run('warnError').findings)).toBe(1);
  });
});

describe('freshness (contract.stale_export)', () => {
  test('a table exactly at its age limit is fresh; an older one fails with a clear finding', async () => {
    const stale = await audits.violations('fresh', 'contract.stale_export');
    expect(stale.map((v) => [v.entity_id, v.detail])).toEqual([
      [
        'payment_sessions',
        {
          table: 'payment_sessions',
          newest: '2026-11-20T11:15:00Z',
          checked_at: '2026-11-20T13:50:00Z',
          max_age: '30m',
          age_seconds: 9300,
          problem: 'the newest row is older than 30m',
        },
      ],
    ]);
    expect(verdictOf(audits.result('fresh', 'contract.stale_export'))).toBe('error');
  });

  test('one second past the limit the table is stale', async () => {
    expect(await audits.entityIds('stale', 'contract.stale_export')).toEqual(['usage_records']);
  });

  test('without freshness limits the check passes', () => {
    expect(audits.result('waivers', 'contract.stale_export').status).toBe('pass');
  });
});

const WINDOW = { since: '2026-11-17T00:00:00Z', until: '2026-11-19T00:00:00Z' };
const windows = auditOnce({ full: { exportsDir: fixture('demo') }, windowed: { exportsDir: fixture('demo'), window: WINDOW } });

describe('--since/--until', () => {
  test('a windowed audit equals the full audit restricted to the window', async () => {
    const full = windows.run('full');
    // The restriction, written independently: each windowed entity's own activity times.
    const expected = await full.db.all<{ invariant_id: string; entity_id: string }>(
      `SELECT invariant_id, entity_id FROM violations v WHERE CASE entity_type
         WHEN 'usage_record' THEN v.usage_record_id IS NULL OR v.usage_record_id IN (
           SELECT usage_record_id FROM usage_records WHERE start_time < $until::TIMESTAMPTZ AND coalesce(end_time, 'infinity'::TIMESTAMPTZ) >= $since::TIMESTAMPTZ)
         WHEN 'ledger_entry' THEN v.ledger_entry_id IS NULL OR v.ledger_entry_id IN (
           SELECT ledger_entry_id FROM ledger_entries WHERE created_at >= $since::TIMESTAMPTZ AND created_at < $until::TIMESTAMPTZ)
         WHEN 'payment_session' THEN v.payment_session_id IS NULL OR v.payment_session_id IN (
           SELECT payment_session_id FROM payment_sessions WHERE created_at >= $since::TIMESTAMPTZ AND created_at < $until::TIMESTAMPTZ
           UNION SELECT payment_session_id FROM payment_sessions WHERE completed_at >= $since::TIMESTAMPTZ AND completed_at < $until::TIMESTAMPTZ
           UNION SELECT payment_session_id FROM ledger_entries WHERE created_at >= $since::TIMESTAMPTZ AND created_at < $until::TIMESTAMPTZ)
         ELSE true END
       ORDER BY ALL`,
      WINDOW,
    );
    const actual = await windows.run('windowed').db.all<{ invariant_id: string; entity_id: string }>(
      `SELECT invariant_id, entity_id FROM violations ORDER BY ALL`,
    );
    expect(actual).toEqual(expected);
    const all = await full.db.one<{ n: bigint }>(`SELECT count(*) AS n FROM violations`);
    // The window must actually cut something, or this test proves nothing.
    expect(actual.length).toBeGreaterThan(0);
    expect(actual.length).toBeLessThan(Number(all!.n));
  });

  test('checks that cannot be windowed say so, and the findings carry the window', () => {
    const findings = windows.run('windowed').findings;
    expect(findings.window).toEqual({ since: '2026-11-17T00:00:00Z', until: '2026-11-19T00:00:00Z' });
    expect(windows.result('windowed', 'usage.missing_open').window).toEqual({
      windowed: false,
      note: 'not windowed: a allocation has no activity time, so every violation is kept',
    });
    expect(windows.result('windowed', 'ledger.duplicate_debit').window?.windowed).toBe(true);
    expect(windows.result('full', 'ledger.duplicate_debit').window).toBeUndefined();
  });
});

test('findings from a YAML config discovered in the working directory', async () => {
  const { discoverConfig, loadConfig } = await import('../src/config.ts');
  const dir = await copyFixture(fixture('clean'));
  await appendFile(path.join(dir, 'recon.config.yaml'), 'freshness:\n  usage_records: 2h\nwaivers:\n  - invariant: usage.billing_lag\n    reason: known\n    owner: sre\n    ticket: OPS-1\n');
  const file = discoverConfig(undefined, dir, {});
  expect(file).toBe(path.join(dir, 'recon.config.yaml'));
  const loaded = await loadConfig(file);
  expect(loaded.config.freshness).toEqual({ usage_records: '2h' });
  expect(loaded.config.waivers[0]).toMatchObject({ owner: 'sre', ticket: 'OPS-1' });
  expect(discoverConfig(undefined, dir, { RECON_CONFIG: 'elsewhere.json' })).toBe('elsewhere.json');
  expect(discoverConfig('given.json', dir, { RECON_CONFIG: 'elsewhere.json' })).toBe('given.json');
  await appendFile(path.join(dir, 'recon.config.json'), '{}');
  expect(() => discoverConfig(undefined, dir, {})).toThrow(/recon.config.json and recon.config.yaml both exist/);
  expect(await readFile(path.join(dir, 'recon.config.json'), 'utf8')).toBe('{}');
});

describe('console', () => {
  const stream = (isTTY: boolean) => {
    const chunks: string[] = [];
    return { chunks, s: { isTTY, write: (c: string) => chunks.push(c) > 0 } as unknown as NodeJS.WriteStream };
  };

  test('colour only on a terminal without NO_COLOR; the same lines otherwise', async () => {
    const { AuditConsole } = await import('../src/console.ts');
    const findings = audits.run('waivers').findings;
    const lines = (tty: boolean, env: NodeJS.ProcessEnv) => {
      const out = stream(tty);
      const err = stream(tty);
      const c = new AuditConsole({ out: out.s, err: err.s, env });
      c.invariants(findings);
      c.summary(findings);
      return out.chunks.join('');
    };
    const plain = lines(false, {});
    expect(lines(true, { NO_COLOR: '1' })).toBe(plain);
    const coloured = lines(true, {});
    expect(coloured).toContain('\x1b[31mFAIL  \x1b[0m payments.failed_reconcile');
    expect(coloured.replace(/\x1b\[[0-9;]*m/g, '')).toBe(plain);
    expect(plain).toMatch(/^FAIL {3}payments\.failed_reconcile +1 {2}EUR 20\.00 {2}\(1 waived\)$/m);
    expect(plain).toMatch(/^FAIL {3}waivers\.expired +1$/m);
    expect(plain).toMatch(/^WARN {3}waivers\.stale +1$/m);
    expect(plain.trimEnd().split('\n').at(-1)).toBe('PASS=24 WARN=3 ERROR=3 SKIP=0 WAIVED=0  errors: EUR 20.00, USD 15.00  warnings: EUR 70.00');
  });
});
