import { TABLES, type ColumnSpec, type TableSpec } from '../contract/tables.ts';
import { REJECTS_TABLE } from '../contract/rejects.ts';
import type { Dialect } from '../dialect/dialect.ts';
import { DETAIL_LIST_LIMIT, dialectOf, type Invariant, type SqlContext } from './types.ts';

const SCOPE = ['org_id', 'project_id', 'requested_by_user_id', 'allocation_id', 'app_instance_id', 'usage_record_id', 'ledger_entry_id', 'payment_session_id', 'usage_source', 'correlation_id', 'trace_id'];

/** The scope columns a table has, selected as themselves; the others are left NULL. */
function scopeColumns(d: Dialect, table: TableSpec): Array<[string, string]> {
  const names = new Set(table.columns.map((c) => c.name));
  return SCOPE.filter((c) => names.has(c)).map((c) => [c, d.ident(c)]);
}

/** One SQL condition per rule of `contract.invalid_value`, with the words a person reads. */
function problems(d: Dialect, col: ColumnSpec, isKey: boolean): Array<[condition: string, problem: string]> {
  const c = d.ident(col.name);
  const out: Array<[string, string]> = [];
  if (col.notNull) out.push([`${c} IS NULL`, 'is null but required']);
  // Free text keeps its blanks, but an id of only spaces would pass as a tenant or a key.
  if (col.type === 'string' && (isKey || (col.notNull && col.name.endsWith('_id')))) out.push([`${d.trimSpaces(c)} = ''`, 'is blank (only whitespace) but required']);
  if (col.enum) out.push([`${c} NOT IN (${col.enum.map(d.string).join(', ')})`, `is not one of ${col.enum.join(', ')}`]);
  if (col.currency) out.push([`NOT ${d.fullMatch(c, '[A-Z]{3}')}`, 'is not a 3-letter ISO-4217 code']);
  if (col.min === 'positive') out.push([`${c} <= 0`, 'must be greater than 0']);
  if (col.min === 'nonNegative') out.push([`${c} < 0`, 'must not be negative']);
  return out;
}

function entityId(d: Dialect, table: TableSpec): string {
  const location = `${d.string(table.name + ':')} || __file || ':' || ${d.concatText('__line')}`;
  const key = table.key && d.ident(table.key);
  return key ? `CASE WHEN ${key} IS NULL OR ${d.trimSpaces(key)} = '' THEN ${location} ELSE ${key} END` : location;
}

/** The result of a family of per-table checks when no table is present. */
const noViolations = (d: Dialect) => `SELECT ${d.castText('NULL')} AS entity_id LIMIT 0`;

function invalidValueSql(ctx: SqlContext): string {
  const d = dialectOf(ctx);
  const parts = Object.values(TABLES)
    .filter((table) => ctx.tables.has(table.name))
    .map((table) => {
      const rules = table.columns.flatMap((col) => problems(d, col, col.name === table.key).map(([cond, problem]) => ({ col, cond, problem })));
      const checks = rules.map(
        ({ col, cond, problem }) =>
          `CASE WHEN ${cond} THEN ${d.struct([
            ['column', d.string(col.name)],
            ['value', d.castText(d.ident(col.name))],
            ['problem', d.string(problem)],
          ])} END`,
      );
      return {
        columns: [
          ['entity_id', 'entity_id'],
          ...scopeColumns(d, table),
          ['detail', d.jsonObject([['table', d.string(table.name)], ['file', '__file'], ['line', '__line'], ['problems', 'to_json(problems)']])],
        ] as Array<[string, string]>,
        // Only a row some rule holds for gets its list of problems: building the list for every
        // row was most of the cost of this check.
        rest: `      FROM (SELECT *, ${entityId(d, table)} AS entity_id,
                   ${d.nonNullList(checks)} AS problems
            FROM ${d.ident(table.name)}
            WHERE ${rules.map((r) => `(${r.cond})`).join(' OR ') || 'false'})`,
      };
    });
  return parts.length ? d.unionAllByName(parts) : noViolations(d);
}

function duplicateKeySql(ctx: SqlContext): string {
  const d = dialectOf(ctx);
  const parts = Object.values(TABLES).flatMap((table) => {
    if (!ctx.tables.has(table.name) || !table.key) return [];
    const key = d.ident(table.key);
    const location = `__file || ':' || ${d.concatText('__line')}`;
    // Keys are counted first so locations are listed only for the few that repeat.
    return [{
      columns: [
        ['entity_id', key],
        ['detail', d.jsonObject([['table', d.string(table.name)], ['count', 'count(*)'], ['locations', d.cappedList(location, '__file, __line', DETAIL_LIST_LIMIT)]])],
      ] as Array<[string, string]>,
      rest: `      FROM ${d.ident(table.name)}
      WHERE ${key} IN (SELECT ${key} FROM ${d.ident(table.name)} WHERE ${key} IS NOT NULL GROUP BY ${key} HAVING count(*) > 1)
      GROUP BY ${key}`,
    }];
  });
  return parts.length ? d.unionAllByName(parts) : noViolations(d);
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
    sql: (ctx) => {
      const d = dialectOf(ctx);
      return `SELECT table_name || ':' || file || ':' || ${d.concatText('line')} AS entity_id,
        ${d.jsonObject([['table', 'table_name'], ['file', 'file'], ['line', 'line'], ['problems', 'to_json(problems)']])} AS detail
      FROM ${REJECTS_TABLE}`;
    },
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
