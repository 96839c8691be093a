import { quoteIdent, TABLES, type ColumnSpec, type TableSpec } from '../contract/tables.ts';
import { REJECTS_TABLE } from '../contract/rejects.ts';
import { sqlList, sqlString } from '../sql.ts';
import { DETAIL_LIST_LIMIT, type Invariant, type SqlContext } from './types.ts';

const SCOPE = ['org_id', 'project_id', 'requested_by_user_id', 'allocation_id', 'app_instance_id', 'usage_record_id', 'ledger_entry_id', 'payment_session_id', 'usage_source', 'correlation_id', 'trace_id'];

/** The scope columns a table has, selected as themselves; the others are left NULL. */
function scopeColumns(table: TableSpec): string {
  const names = new Set(table.columns.map((c) => c.name));
  return SCOPE.filter((c) => names.has(c)).map(quoteIdent).join(', ');
}

/** One SQL condition per rule of `contract.invalid_value`, with the words a person reads. */
function problems(col: ColumnSpec, isKey: boolean): Array<[condition: string, problem: string]> {
  const c = quoteIdent(col.name);
  const out: Array<[string, string]> = [];
  if (col.notNull) out.push([`${c} IS NULL`, 'is null but required']);
  // Free text keeps its blanks, but an id of only spaces would pass as a tenant or a key.
  if (col.type === 'string' && (isKey || (col.notNull && col.name.endsWith('_id')))) out.push([`trim(${c}) = ''`, 'is blank (only whitespace) but required']);
  if (col.enum) out.push([`${c} NOT IN (${sqlList(col.enum)})`, `is not one of ${col.enum.join(', ')}`]);
  if (col.currency) out.push([`NOT regexp_full_match(${c}, '[A-Z]{3}')`, 'is not a 3-letter ISO-4217 code']);
  if (col.min === 'positive') out.push([`${c} <= 0`, 'must be greater than 0']);
  if (col.min === 'nonNegative') out.push([`${c} < 0`, 'must not be negative']);
  return out;
}

function entityId(table: TableSpec): string {
  const location = `${sqlString(table.name + ':')} || __file || ':' || __line`;
  const key = table.key && quoteIdent(table.key);
  return key ? `CASE WHEN ${key} IS NULL OR trim(${key}) = '' THEN ${location} ELSE ${key} END` : location;
}

function invalidValueSql(ctx: SqlContext): string {
  const parts: string[] = [];
  for (const table of Object.values(TABLES)) {
    if (!ctx.tables.has(table.name)) continue;
    const checks = table.columns.flatMap((col) =>
      problems(col, col.name === table.key).map(
        ([cond, problem]) =>
          `CASE WHEN ${cond} THEN {'column': ${sqlString(col.name)}, 'value': ${quoteIdent(col.name)}::VARCHAR, 'problem': ${sqlString(problem)}} END`,
      ),
    );
    const scope = scopeColumns(table);
    parts.push(`SELECT entity_id, ${scope ? scope + ', ' : ''}
        json_object('table', ${sqlString(table.name)}, 'file', __file, 'line', __line, 'problems', to_json(problems)) AS detail
      FROM (SELECT *, ${entityId(table)} AS entity_id,
                   list_filter([${checks.join(', ')}], p -> p IS NOT NULL) AS problems
            FROM ${quoteIdent(table.name)})
      WHERE len(problems) > 0`);
  }
  return parts.length ? parts.join('\nUNION ALL BY NAME\n') : `SELECT NULL::VARCHAR AS entity_id WHERE false`;
}

function duplicateKeySql(ctx: SqlContext): string {
  const parts: string[] = [];
  for (const table of Object.values(TABLES)) {
    if (!ctx.tables.has(table.name) || !table.key) continue;
    const key = quoteIdent(table.key);
    // Keys are counted first so locations are listed only for the few that repeat.
    parts.push(`SELECT ${key} AS entity_id,
        json_object('table', ${sqlString(table.name)}, 'count', count(*),
                    'locations', list(__file || ':' || __line ORDER BY __file, __line)[1:${DETAIL_LIST_LIMIT}]) AS detail
      FROM ${quoteIdent(table.name)}
      WHERE ${key} IN (SELECT ${key} FROM ${quoteIdent(table.name)} WHERE ${key} IS NOT NULL GROUP BY ${key} HAVING count(*) > 1)
      GROUP BY ${key}`);
  }
  return parts.length ? parts.join('\nUNION ALL BY NAME\n') : `SELECT NULL::VARCHAR AS entity_id WHERE false`;
}

export const contractInvariants: readonly Invariant[] = [
  {
    id: 'contract.rejected_row',
    family: 'contract',
    title: 'Every source row could be read and typed',
    severity: 'error',
    owner: { layer: 'ui_export' },
    entity: 'source_row',
    needs: [],
    runbook: 'Before any reconciliation: the exports must be complete, or every query below undercounts.',
    explanation:
      'A row in an export file could not be read (wrong number of fields, broken JSON) or a value could not be typed ' +
      '(text in an amount, an impossible timestamp). The row is left out of every other check and listed here with its ' +
      'file, line and column, so nothing disappears silently: a dropped usage row is unbilled money, a dropped debit an ' +
      'over-statement of the balance.',
    sql: () => `SELECT table_name || ':' || file || ':' || line AS entity_id,
        json_object('table', table_name, 'file', file, 'line', line, 'problems', to_json(problems)) AS detail
      FROM ${REJECTS_TABLE}`,
  },
  {
    id: 'contract.invalid_value',
    family: 'contract',
    title: 'Required, enumerated and money columns hold valid values',
    severity: 'error',
    owner: { layer: 'ui_export' },
    entity: 'table_row',
    needs: [],
    runbook: 'Before any reconciliation: statuses, sources and amounts must mean what the runbook queries assume.',
    explanation:
      'A row was read, but a required column is empty, a status or type is not one the contract knows, a currency is ' +
      'not a 3-letter code, or an amount is negative (or zero where only positive amounts are allowed). Checks that ' +
      'rely on that column cannot judge the row correctly until it is fixed.',
    sql: invalidValueSql,
  },
  {
    id: 'contract.duplicate_key',
    family: 'contract',
    title: 'Every key is unique',
    severity: 'error',
    owner: { layer: 'ui_export' },
    entity: 'key',
    needs: [],
    runbook: 'Before any reconciliation: one id, one row; a repeated id makes every join on it ambiguous.',
    explanation:
      'The same id appears on more than one row of a table. The other checks count each id once, as its first row in ' +
      'the export, so whatever a later copy says differently (another amount, another status) is seen only here; the ' +
      'export or the source table is wrong and must be fixed before the other results can be trusted for this id.',
    sql: duplicateKeySql,
  },
];
