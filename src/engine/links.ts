import type { TableName } from '../contract/tables.ts';

/** Tables whose rows name a tenant: the denominator of "how many tenants are affected". */
export const ORG_TABLES: readonly TableName[] = ['allocations', 'app_instances', 'usage_records', 'ledger_entries', 'payment_sessions', 'balances'];

/**
 * The tables whose rows an incident's violations can name, with the violation column naming
 * them; `entityOnly` where only a violation about that very entity counts (an allocation's id on
 * a usage violation does not make it the allocation's).
 */
export const INCIDENT_LINKS: ReadonlyArray<{ table: TableName; key: string; entityOnly?: boolean }> = [
  { table: 'usage_records', key: 'usage_record_id' },
  { table: 'ledger_entries', key: 'ledger_entry_id' },
  { table: 'payment_sessions', key: 'payment_session_id' },
  { table: 'allocations', key: 'allocation_id', entityOnly: true },
  { table: 'app_instances', key: 'app_instance_id', entityOnly: true },
];
