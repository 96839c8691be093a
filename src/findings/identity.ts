/**
 * A violation's identity across runs: the invariant and the entity it reports (CONTRACT.md §5).
 * A diff matches two snapshots by it and the history marks violations new since a baseline by
 * it, so both say "the same violation" in the same way.
 */
export const IDENTITY_COLUMNS = ['invariant_id', 'entity_id'] as const;

/** `invariant_id, entity_id`: to partition, order or select by identity. */
export const IDENTITY_SQL = IDENTITY_COLUMNS.join(', ');

/** SQL: rows `a` and `b` (aliases of violations-shaped relations) are the same violation. */
export function sameViolationSql(a: string, b: string): string {
  return `${a}.invariant_id = ${b}.invariant_id AND ${a}.entity_id IS NOT DISTINCT FROM ${b}.entity_id`;
}
