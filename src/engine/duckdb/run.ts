import type { Severity } from '../../contract/violations.ts';
import type { Db } from '../../db.ts';
import { errorMessage } from '../../errors.ts';
import type { Invariant, OwnerRule } from '../../catalog/types.ts';
import { sqlString } from '../../sql.ts';

/** The owning layer of one violation row: the invariant's, unless a refinement of its detail matches. */
function ownerSql(owner: OwnerRule): string {
  const cases = (owner.refine ?? []).map((r) => `WHEN coalesce(${r.when}, false) THEN ${sqlString(r.layer)}`);
  return cases.length ? `CASE ${cases.join(' ')} ELSE ${sqlString(owner.layer)} END` : sqlString(owner.layer);
}

/**
 * Runs one invariant into `violations`: `found` is its rows, the invariant's own query (or, where
 * another engine ran it, a local table of what it found). A failing query is that invariant's
 * error, not the audit's. CONTRACT.md §3 reports one violation per entity: when an exported row is duplicated
 * (which `contract.duplicate_key` reports) a check may see its entity twice, and the copy with
 * the most money at stake is kept, so counts and money are never inflated by the duplicate.
 */
export async function runInvariant(db: Db, inv: Invariant, severity: Severity, found: string): Promise<string | undefined> {
  try {
    await db.run(
      `INSERT INTO violations BY NAME
       SELECT $id AS invariant_id, $severity AS severity, $entity AS entity_type, false AS waived,
              ${ownerSql(inv.owner)} AS owning_layer,
              -- Checks sum in HUGEINT; money at stake beyond BIGINT is named, never a raw cast error.
              * REPLACE (CASE WHEN amount_minor BETWEEN -9223372036854775808 AND 9223372036854775807 THEN amount_minor::BIGINT
                              ELSE error('money at stake for ' || entity_id || ' is ' || amount_minor::VARCHAR ||
                                         ' minor units, beyond the 64-bit range of money amounts (implausible amounts in the export?)') END AS amount_minor)
       FROM (
         -- Columns an invariant does not return are NULL, so every one can be ordered the same way.
         SELECT NULL::BIGINT AS amount_minor, NULL::VARCHAR AS currency, NULL::JSON AS detail WHERE false
         UNION ALL BY NAME
         SELECT * FROM (${found}))
       QUALIFY row_number() OVER (
         PARTITION BY entity_id ORDER BY amount_minor DESC NULLS LAST, currency NULLS LAST, detail::VARCHAR) = 1`,
      { id: inv.id, severity, entity: inv.entity },
    );
    return undefined;
  } catch (err) {
    return errorMessage(err);
  }
}
