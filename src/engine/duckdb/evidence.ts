import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { quoteIdent, TABLES, type TableName } from '../../contract/tables.ts';
import type { Db } from '../../db.ts';
import type { Scope } from '../../scope.ts';
import { PARQUET_OPTIONS } from '../../sql.ts';
import { CORRECTIVE_ENTRY_TYPES, EVIDENCE_TABLES, type EvidenceFile, type EvidenceTable } from '../engine.ts';

const json = (xs: readonly string[]) => JSON.stringify(xs);
/** A bound JSON array as a VARCHAR[] (empty lists cannot be bound as typed lists). */
const list = (param: string) => `from_json($${param}, '["VARCHAR"]')`;

/**
 * Collects, inside DuckDB, the keys of every row that stands behind a violation in scope:
 *
 * - `snap_refs(tbl, id)`: the ids a violation carries (usage record, ledger entry, payment
 *   session, app instance, allocation), the key of a `contract.duplicate_key` violation, the
 *   usage record / payment session a referenced ledger entry names, the credit a referenced
 *   payment session names, and the allocation / app instance of every referenced usage row;
 * - `snap_row_refs(tbl, file, line)`: the exact source rows of `contract.invalid_value`;
 * - `snap_ledger_ids(id)`: the ledger entries referenced above, every entry that names a
 *   referenced usage record or payment session, every corrective entry
 *   (adjustment/reversal) in scope, and one hop of reversal links both ways.
 *
 * Corrective entries are kept even when no violation is left to point at them, because the
 * diff of a before/after pair needs them: a reversal that fixed a duplicate debit leaves no
 * violation behind in the "after" snapshot.
 */
async function collectEvidenceKeys(db: Db, scope: Scope): Promise<void> {
  await db.run(`CREATE OR REPLACE TEMP TABLE snap_refs (tbl VARCHAR, id VARCHAR)`);
  await db.run(`INSERT INTO snap_refs
    SELECT 'usage_records', usage_record_id FROM violations WHERE usage_record_id IS NOT NULL
    UNION SELECT 'ledger_entries', ledger_entry_id FROM violations WHERE ledger_entry_id IS NOT NULL
    UNION SELECT 'payment_sessions', payment_session_id FROM violations WHERE payment_session_id IS NOT NULL
    UNION SELECT 'app_instances', app_instance_id FROM violations WHERE app_instance_id IS NOT NULL
    UNION SELECT 'allocations', allocation_id FROM violations WHERE allocation_id IS NOT NULL
    UNION SELECT json_extract_string(detail, '$.table'), entity_id FROM violations
      WHERE entity_type = 'key' AND json_extract_string(detail, '$.table') IS NOT NULL`);
  await db.run(`CREATE OR REPLACE TEMP TABLE snap_row_refs AS
    SELECT DISTINCT json_extract_string(detail, '$.table') AS tbl, json_extract_string(detail, '$.file') AS file,
           TRY_CAST(json_extract_string(detail, '$.line') AS BIGINT) AS line
    FROM violations WHERE entity_type = 'table_row' AND json_extract_string(detail, '$.table') IS NOT NULL`);

  const refs = (tbl: EvidenceTable) => `(SELECT id FROM snap_refs WHERE tbl = '${tbl}')`;
  // What a referenced ledger entry / payment session / usage row points at is evidence too.
  await db.run(`INSERT INTO snap_refs
    SELECT 'usage_records', usage_record_id FROM ledger_entries
      WHERE usage_record_id IS NOT NULL AND ledger_entry_id IN ${refs('ledger_entries')}
    UNION SELECT 'payment_sessions', payment_session_id FROM ledger_entries
      WHERE payment_session_id IS NOT NULL AND ledger_entry_id IN ${refs('ledger_entries')}
    EXCEPT SELECT tbl, id FROM snap_refs`);
  await db.run(`INSERT INTO snap_refs
    SELECT 'ledger_entries', ledger_entry_id FROM payment_sessions
      WHERE ledger_entry_id IS NOT NULL AND payment_session_id IN ${refs('payment_sessions')}
    UNION SELECT 'allocations', allocation_id FROM usage_records
      WHERE allocation_id IS NOT NULL AND usage_record_id IN ${refs('usage_records')}
    UNION SELECT 'app_instances', app_instance_id FROM usage_records
      WHERE app_instance_id IS NOT NULL AND usage_record_id IN ${refs('usage_records')}
    EXCEPT SELECT tbl, id FROM snap_refs`);

  // Corrective entries in scope: the scope filters apply to the entry, the entry it reverses,
  // or the usage record either of them bills.
  const corrective = CORRECTIVE_ENTRY_TYPES.map((t) => `'${t}'`).join(', ');
  await db.run(
    `CREATE OR REPLACE TEMP TABLE snap_ledger_ids AS
     SELECT ledger_entry_id AS id FROM ledger_entries
     WHERE ledger_entry_id IN ${refs('ledger_entries')}
        OR usage_record_id IN ${refs('usage_records')}
        OR payment_session_id IN ${refs('payment_sessions')}
     UNION
     SELECT l.ledger_entry_id FROM ledger_entries l
       LEFT JOIN ledger_entries t ON t.ledger_entry_id = l.reverses_ledger_entry_id
       LEFT JOIN usage_records u ON u.usage_record_id = coalesce(l.usage_record_id, t.usage_record_id)
     WHERE l.entry_type IN (${corrective}) AND l.ledger_entry_id IS NOT NULL
       AND (len(${list('orgs')}) = 0 OR list_contains(${list('orgs')}, l.org_id))
       AND (len(${list('apps')}) = 0 OR list_contains(${list('apps')}, u.app_instance_id))
       AND (len(${list('cids')}) = 0 OR list_contains(${list('cids')}, l.correlation_id) OR list_contains(${list('cids')}, t.correlation_id))`,
    { orgs: json(scope.orgs), apps: json(scope.app_instances), cids: json(scope.correlation_ids) },
  );
  await db.run(`INSERT INTO snap_ledger_ids
    SELECT ledger_entry_id FROM ledger_entries WHERE reverses_ledger_entry_id IN (SELECT id FROM snap_ledger_ids)
    UNION SELECT reverses_ledger_entry_id FROM ledger_entries
      WHERE reverses_ledger_entry_id IS NOT NULL AND ledger_entry_id IN (SELECT id FROM snap_ledger_ids)
    EXCEPT SELECT id FROM snap_ledger_ids`);
}

/** The SELECT of one evidence table's rows, provenance columns included, in a total order. */
function evidenceSelect(table: EvidenceTable): string {
  const key = quoteIdent(TABLES[table].key!);
  const t = quoteIdent(table);
  const byRow = `EXISTS (SELECT 1 FROM snap_row_refs r WHERE r.tbl = '${table}' AND r.file = t.__file AND r.line = t.__line)`;
  const byKey =
    table === 'ledger_entries'
      ? `t.${key} IN (SELECT id FROM snap_ledger_ids)`
      : `t.${key} IN (SELECT id FROM snap_refs WHERE tbl = '${table}')`;
  return `SELECT t.* FROM ${t} t WHERE ${byKey} OR ${byRow} ORDER BY t.${key} NULLS LAST, t.__file, t.__line`;
}

/** Writes `evidence/<table>.parquet` for every evidence table present in the audit. */
export async function writeEvidence(
  db: Db,
  tables: ReadonlySet<TableName>,
  scope: Scope,
  snapDir: string,
): Promise<EvidenceFile[]> {
  await collectEvidenceKeys(db, scope);
  await mkdir(path.join(snapDir, 'evidence'), { recursive: true });
  const out: EvidenceFile[] = [];
  for (const table of EVIDENCE_TABLES) {
    if (!tables.has(table)) continue;
    const rel = `evidence/${table}.parquet`;
    const select = evidenceSelect(table);
    await db.run(`COPY (${select}) TO $path (${PARQUET_OPTIONS})`, { path: path.join(snapDir, 'evidence', `${table}.parquet`) });
    const n = await db.one<{ n: bigint }>(`SELECT count(*) AS n FROM (${select})`);
    out.push({ table, path: rel, rows: Number(n?.n ?? 0n) });
  }
  return out;
}
