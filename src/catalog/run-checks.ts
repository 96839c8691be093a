import { isoSql } from '../sql.ts';
import type { Invariant } from './types.ts';

/**
 * Checks of the audit itself rather than of the billing data: exports that stopped arriving and
 * waivers that no longer mean anything. They are results like any invariant (a line in the log,
 * a JUnit testcase, a row of violations.csv, a point of the history), so a nightly job cannot
 * stay green on stale data or on exceptions nobody renewed. Kept apart from CATALOG, which is
 * CONTRACT.md §3 row for row.
 */
export const RUN_CHECKS: readonly Invariant[] = [
  {
    id: 'contract.stale_export',
    family: 'contract',
    title: 'Every export with a freshness limit is recent enough',
    severity: 'error',
    entity: 'table',
    needs: [],
    // The audit's own checks are about what reached it and how it was read: the export path's.
    owner: { layer: 'ui_export' },
    runbook:
      'Nightly audit: the newest timestamp of each table named under `freshness` in the config must be within the ' +
      'configured age of the real clock; otherwise the export job stopped and the audit is judging old data.',
    explanation:
      'The audit instant comes from the data, so an export that stopped arriving still audits clean: every check ' +
      'passes on yesterday\'s rows while today\'s drift goes unseen. This check compares the newest timestamp of the ' +
      'table with the clock of the machine running the audit. No money is at stake in the row itself; what is at ' +
      'risk is everything the missing data would have shown.',
    sql: () => `SELECT f.table_name AS entity_id,
        json_object(
          'table', f.table_name,
          'newest', ${isoSql('f.newest')},
          'checked_at', ${isoSql('f.checked_at')},
          'max_age', f.max_age,
          'age_seconds', CAST(epoch(f.checked_at) - epoch(f.newest) AS BIGINT),
          'problem', CASE WHEN NOT f.present THEN 'the table is not in the export'
                          WHEN f.newest IS NULL THEN 'the table has no timestamp'
                          ELSE 'the newest row is older than ' || f.max_age END) AS detail
      FROM recon_freshness f
      WHERE f.newest IS NULL OR f.newest < f.checked_at - to_seconds(f.max_age_seconds)`,
  },
  {
    id: 'waivers.expired',
    family: 'waivers',
    title: 'No waiver in the config has expired',
    severity: 'error',
    entity: 'waiver',
    needs: [],
    // The audit's own checks are about what reached it and how it was read: the export path's.
    owner: { layer: 'ui_export' },
    phase: 'after_waivers',
    runbook:
      'Config hygiene: a waiver past its `expires` date no longer hides anything; renew it with its owner and ticket, ' +
      'or delete it once the drift is fixed.',
    explanation:
      'A waiver records an accepted exception with an end date. Once that date is before the audit instant it ' +
      'stops covering its violations, which fail their own invariant again, and the expired entry itself fails ' +
      'the run so that the exception is renewed or removed on purpose rather than forgotten.',
    sql: () => `SELECT w.waiver AS entity_id,
        json_object('invariant', w.invariant, 'entity_id', w.entity_id, 'reason', w.reason, 'owner', w.owner,
                    'ticket', w.ticket, 'expires', strftime(w.expires, '%Y-%m-%d'),
                    'uncovered_violations', w.matching) AS detail
      FROM recon_waivers w WHERE w.expired`,
  },
  {
    id: 'waivers.stale',
    family: 'waivers',
    title: 'Every waiver in the config still matches a violation',
    severity: 'warn',
    entity: 'waiver',
    needs: [],
    // The audit's own checks are about what reached it and how it was read: the export path's.
    owner: { layer: 'ui_export' },
    phase: 'after_waivers',
    runbook:
      'Config hygiene: a waiver that matched nothing covers drift that was fixed (or names a wrong entity); delete ' +
      'it, so it cannot hide a new violation of the same entity later.',
    explanation:
      'A waiver that no violation matches is dead weight at best; at worst it names the wrong entity, and the ' +
      'violation it was meant to cover is failing unnoticed under another id, or it will silently hide the ' +
      'entity\'s next, unrelated violation. Only waivers whose invariant ran over the whole export are judged.',
    sql: () => `SELECT w.waiver AS entity_id,
        json_object('invariant', w.invariant, 'entity_id', w.entity_id, 'reason', w.reason, 'owner', w.owner,
                    'ticket', w.ticket, 'expires', strftime(w.expires, '%Y-%m-%d')) AS detail
      FROM recon_waivers w WHERE NOT w.expired AND w.judged AND w.matched = 0`,
  },
];
