import type { TableName } from '../contract/tables.ts';
import type { Db } from '../db.ts';
import type { TimelineIds } from '../snapshot/timeline.ts';

/** The tables whose rows an incident's violations can name, with the violation column naming them. */
const LINKS: ReadonlyArray<{ table: TableName; key: string; entityOnly?: boolean }> = [
  { table: 'usage_records', key: 'usage_record_id' },
  { table: 'ledger_entries', key: 'ledger_entry_id' },
  { table: 'payment_sessions', key: 'payment_session_id' },
  // An allocation or app instance is named by many violations of other incidents; only a
  // violation about the allocation or instance itself is part of this one.
  { table: 'allocations', key: 'allocation_id', entityOnly: true },
  { table: 'app_instances', key: 'app_instance_id', entityOnly: true },
];

/**
 * Narrows `violations` to one incident: violations carrying one of its correlation or trace
 * ids, and violations about a row that carries one (a debit whose own correlation id differs
 * still bills the incident's usage). Ids of either kind are a union here: the runbooks start
 * from "a correlation_id (and trace_id)" of one incident. Unreadable rows stay, as in every scope.
 */
export async function narrowToIncident(db: Db, tables: ReadonlySet<TableName>, ids: TimelineIds): Promise<void> {
  const linked = LINKS.filter((l) => tables.has(l.table)).map(
    (l) =>
      `(${l.entityOnly ? `entity_type = '${l.key.replace(/_id$/, '')}' AND ` : ''}${l.key} IN (
         SELECT ${l.key} FROM ${l.table} WHERE list_contains($c::JSON::VARCHAR[], correlation_id) OR list_contains($t::JSON::VARCHAR[], trace_id)))`,
  );
  await db.run(
    `DELETE FROM violations WHERE NOT coalesce(
       entity_type = 'source_row' OR list_contains($c::JSON::VARCHAR[], correlation_id) OR list_contains($t::JSON::VARCHAR[], trace_id)
       ${linked.map((l) => `OR ${l}`).join('\n       ')}, false)`,
    { c: JSON.stringify(ids.correlationIds), t: JSON.stringify(ids.traceIds) },
  );
}
