import type { Db } from '../db.ts';
import { CORRECTIVE_ENTRY_TYPES } from '../engine/engine.ts';
import { isoSql, sqlList } from '../sql.ts';
import type { CorrectiveEntry, DiffDocument, Reconciliation } from './diff-document.ts';
import type { LoadedSide } from './diff-sides.ts';

/** The corrective ledger entries that appeared between two snapshots, and what they account for. */

/**
 * Resolved money against the corrective entries (adjustments and reversals that appeared), per
 * currency. Each entry is matched to the money item it corrects: a reversal to the item of the
 * entry it reverses, an adjustment to the usage record or payment session it names, else to
 * itself. Whatever does not match is listed with the reason, so the two figures reconcile.
 */
export async function reconcile(db: Db, corrective: DiffDocument['corrective_entries'], afterLedger: string | null): Promise<Reconciliation> {
  if (!corrective.available || afterLedger === null) return { available: false, by_currency: [], explanations: [] };
  const ids = corrective.entries.map((e) => e.ledger_entry_id);
  await db.run(`CREATE TABLE corrections AS
    SELECT c.ledger_entry_id, c.entry_type, c.amount_minor, c.currency,
           coalesce('usage_record:' || coalesce(c.usage_record_id, t.usage_record_id),
                    'payment_session:' || coalesce(c.payment_session_id, t.payment_session_id),
                    'ledger_entry:' || coalesce(t.ledger_entry_id, c.ledger_entry_id)) AS item
    FROM (SELECT * FROM read_parquet($after) WHERE list_contains(from_json($ids, '["VARCHAR"]'), ledger_entry_id)
          QUALIFY row_number() OVER (PARTITION BY ledger_entry_id ORDER BY __file, __line) = 1) c
    LEFT JOIN (SELECT * FROM read_parquet($after) QUALIFY row_number() OVER (PARTITION BY ledger_entry_id ORDER BY __file, __line) = 1) t
      ON t.ledger_entry_id = c.reverses_ledger_entry_id`, { after: afterLedger, ids: JSON.stringify(ids) });
  const byCurrency = await db.all<{ currency: string; resolved_minor: bigint; corrective_minor: bigint }>(
    `WITH r AS (SELECT currency, sum(before_minor)::HUGEINT AS amount FROM items WHERE status = 'resolved' AND before_minor IS NOT NULL GROUP BY 1),
          c AS (SELECT currency, sum(abs(amount_minor::HUGEINT))::HUGEINT AS amount FROM corrections WHERE currency IS NOT NULL AND amount_minor IS NOT NULL GROUP BY 1)
     SELECT coalesce(r.currency, c.currency) AS currency, coalesce(r.amount, 0)::HUGEINT AS resolved_minor, coalesce(c.amount, 0)::HUGEINT AS corrective_minor
     FROM r FULL OUTER JOIN c USING (currency) ORDER BY 1`,
  );
  const explanations = await db.all<{ item: string; currency: string; amount_minor: bigint; reason: string }>(
    `WITH c AS (SELECT item, currency, sum(abs(amount_minor::HUGEINT))::HUGEINT AS amount, string_agg(ledger_entry_id, ', ' ORDER BY ledger_entry_id) AS entries
                FROM corrections WHERE currency IS NOT NULL AND amount_minor IS NOT NULL GROUP BY 1, 2),
          r AS (SELECT item, currency, before_minor AS amount FROM items WHERE status = 'resolved' AND before_minor IS NOT NULL)
     SELECT coalesce(r.item, c.item) AS item, coalesce(r.currency, c.currency) AS currency,
            CASE WHEN c.item IS NULL THEN r.amount WHEN r.item IS NULL THEN -c.amount ELSE r.amount - c.amount END::HUGEINT AS amount_minor,
            CASE WHEN c.item IS NULL THEN 'resolved without a corrective entry (an adjustment or reversal): fixed by a re-posted debit or credit, or by a change to the data'
                 WHEN r.item IS NULL THEN 'corrective entry ' || c.entries || ' corrects no money item this diff resolved (a goodwill or other adjustment, or a movement still at stake)'
                 ELSE 'corrective entry ' || c.entries || ' differs from the money resolved for this item' END AS reason
     FROM r FULL OUTER JOIN c ON c.item = r.item AND c.currency = r.currency
     WHERE c.item IS NULL OR r.item IS NULL OR r.amount <> c.amount
     ORDER BY 2, 1`,
  );
  return {
    available: true,
    by_currency: byCurrency.map((r) => {
      const resolved = BigInt(r.resolved_minor);
      const corr = BigInt(r.corrective_minor);
      return { currency: r.currency, resolved_minor: resolved, corrective_minor: corr, difference_minor: resolved - corr };
    }),
    explanations: explanations.map((e) => ({ ...e, amount_minor: BigInt(e.amount_minor) })),
  };
}

export async function correctiveEntries(db: Db, before: LoadedSide, after: LoadedSide): Promise<DiffDocument['corrective_entries']> {
  if (before.side.kind !== 'snapshot' || after.side.kind !== 'snapshot') {
    return {
      available: false,
      reason:
        'unavailable: corrective ledger entries are read from the evidence of two snapshots; ' +
        `${[before, after].filter((s) => s.side.kind === 'audit').map((s) => s.side.dir).join(' and ')} ${
          before.side.kind === after.side.kind ? 'are audit output folders' : 'is an audit output folder'
        } (use recon snapshot)`,
      entries: [],
      unaudited: 0,
    };
  }
  if (!before.ledgerFile || !after.ledgerFile) {
    return { available: false, reason: 'unavailable: a snapshot has no evidence/ledger_entries.parquet', entries: [], unaudited: 0 };
  }
  const types = sqlList(CORRECTIVE_ENTRY_TYPES);
  const rows = await db.all<Omit<CorrectiveEntry, 'missing'>>(
    `SELECT a.ledger_entry_id, a.entry_type, a.direction, a.amount_minor, a.currency, a.org_id, a.requested_by_user_id,
            a.usage_record_id, a.payment_session_id, a.reverses_ledger_entry_id,
            nullif(trim(a.actor), '') AS actor, nullif(trim(a.correlation_id), '') AS correlation_id, a.trace_id,
            ${isoSql('a.created_at')} AS created_at,
            a.__file || ':' || a.__line AS source
     FROM read_parquet($after) a
     WHERE a.entry_type IN (${types}) AND a.ledger_entry_id IS NOT NULL
       AND a.ledger_entry_id NOT IN (SELECT ledger_entry_id FROM read_parquet($before) WHERE ledger_entry_id IS NOT NULL)
     ORDER BY a.created_at, a.ledger_entry_id, a.__file, a.__line`,
    { before: before.ledgerFile, after: after.ledgerFile },
  );
  const entries: CorrectiveEntry[] = rows.map((r) => ({
    ...r,
    missing: [...(r.actor === null ? ['actor'] : []), ...(r.correlation_id === null ? ['correlation_id'] : [])],
  }));
  return { available: true, entries, unaudited: entries.filter((e) => e.missing.length > 0).length };
}
