import type { TableName } from '../../contract/tables.ts';
import type { Db } from '../../db.ts';

interface Moment {
  column: string;
  /** SQL for the event's name (a fixed text, or built from the row). */
  event: string;
}

interface TimelineSource {
  table: TableName;
  key: string;
  moments: Moment[];
  /** SQL struct of the columns a person needs to read the entry (NULLs are left out). */
  fields: string;
}

const text = (s: string) => `'${s}'`;

const SOURCES: readonly TimelineSource[] = [
  {
    table: 'allocations',
    key: 'allocation_id',
    moments: [
      { column: 'created_at', event: text('allocation created') },
      { column: 'activated_at', event: text('allocation activated') },
      { column: 'released_at', event: text('allocation released') },
      { column: 'updated_at', event: `'allocation updated (status ' || coalesce(status, '?') || ')'` },
    ],
    fields: `{'org_id': org_id, 'status': status, 'gpu_type': gpu_type, 'gpu_count': gpu_count}`,
  },
  {
    table: 'app_instances',
    key: 'app_instance_id',
    moments: [
      { column: 'started_at', event: text('app instance started') },
      { column: 'stopped_at', event: text('app instance stopped') },
    ],
    fields: `{'org_id': org_id, 'status': status, 'app_type': app_type, 'runtime_backend': runtime_backend}`,
  },
  {
    table: 'usage_records',
    key: 'usage_record_id',
    moments: [
      { column: 'start_time', event: text('usage started') },
      { column: 'last_billed_at', event: text('usage billed through') },
      { column: 'end_time', event: text('usage ended') },
    ],
    fields: `{'org_id': org_id, 'usage_source': usage_source, 'allocation_id': allocation_id, 'app_instance_id': app_instance_id,
              'component': component, 'accrued_cost_minor': accrued_cost_minor, 'currency': currency}`,
  },
  {
    table: 'ledger_entries',
    key: 'ledger_entry_id',
    moments: [{ column: 'created_at', event: `'ledger ' || coalesce(entry_type, '?')` }],
    fields: `{'org_id': org_id, 'entry_type': entry_type, 'direction': direction, 'amount_minor': amount_minor, 'currency': currency,
              'usage_record_id': usage_record_id, 'payment_session_id': payment_session_id,
              'reverses_ledger_entry_id': reverses_ledger_entry_id, 'actor': actor}`,
  },
  {
    table: 'payment_sessions',
    key: 'payment_session_id',
    moments: [
      { column: 'created_at', event: text('payment session created') },
      { column: 'completed_at', event: `'payment session ' || coalesce(status, '?')` },
    ],
    fields: `{'org_id': org_id, 'status': status, 'amount_minor': amount_minor, 'currency': currency, 'ledger_entry_id': ledger_entry_id}`,
  },
  {
    table: 'events',
    key: 'event_id',
    moments: [{ column: 'occurred_at', event: `coalesce(event_type, '?')` }],
    fields: `{'allocation_id': allocation_id, 'app_instance_id': app_instance_id, 'payment_session_id': payment_session_id}`,
  },
];

/**
 * `snap_timeline`: every timestamp of every row carrying an id of `snap_corr(id)` or
 * `snap_trace(id)`, one entry each, with the columns a person needs to read it.
 */
export async function materialiseTimeline(db: Db, tables: ReadonlySet<TableName>): Promise<void> {
  const parts: string[] = [];
  for (const src of SOURCES) {
    if (!tables.has(src.table)) continue;
    for (const m of src.moments) {
      parts.push(`SELECT ${m.column} AS ts, '${src.table}' AS tbl, ${src.key} AS id, ${m.event} AS event,
          correlation_id, trace_id, __file AS file, __line AS line,
          json_merge_patch('{}', to_json(${src.fields})) AS fields
        FROM ${src.table}
        WHERE ${m.column} IS NOT NULL
          AND (correlation_id IN (SELECT id FROM snap_corr) OR trace_id IN (SELECT id FROM snap_trace))`);
    }
  }
  await db.run(`CREATE OR REPLACE TEMP TABLE snap_timeline AS ${parts.join('\nUNION ALL\n')}`);
}
