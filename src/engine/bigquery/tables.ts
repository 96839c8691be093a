import type { TableField } from '@google-cloud/bigquery';
import { TABLE_NAMES, TABLES, type ColumnSpec, type ColumnType, type TableName } from '../../contract/tables.ts';
import { sourceColumn, type Config } from '../../config.ts';
import { bigquery as d } from '../../dialect/bigquery.ts';
import { InputError } from '../../errors.ts';
import { bigQueryError } from '../../sources/bigquery.ts';
import type { BigQuerySession } from './session.ts';

/**
 * The column types the catalog's GoogleSQL can read as they are. Where `--bigquery` (read, then
 * audit locally) types text and NUMERIC row by row, in the warehouse a check cannot reject a row:
 * a table of other types is refused whole, with what to do instead.
 */
const ENGINE_TYPES: Readonly<Record<ColumnType, ReadonlySet<string>>> = {
  string: new Set(['STRING']),
  timestamp: new Set(['TIMESTAMP']),
  bigint: new Set(['INT64', 'INTEGER']),
  int: new Set(['INT64', 'INTEGER']),
  bool: new Set(['BOOL', 'BOOLEAN']),
};

export interface WarehouseTable {
  table: TableName;
  /** The table's name in the dataset (config `tables` may map it). */
  name: string;
  /** The source column of each contract column, in contract order. */
  columns: Array<{ contract: string; source: string }>;
  /** What BigQuery said of the table when it was found: the audit's record of what it read. */
  meta: { lastModifiedTime: string | null; numRows: string | null };
  /** Whether the table carries the loaders' provenance (`__file`, `__line`), as an export loaded by this tool does. */
  provenance: boolean;
}

/** Finds the contract tables of the dataset and checks their columns before any query runs. */
export async function findWarehouseTables(session: BigQuerySession, config: Config): Promise<WarehouseTable[]> {
  const dataset = session.bigquery.dataset(session.datasetId);
  try {
    await dataset.getMetadata();
  } catch (err) {
    throw bigQueryError(err, `dataset ${session.ref}`);
  }
  const found: WarehouseTable[] = [];
  const missing: string[] = [];
  for (const table of TABLE_NAMES) {
    const name = config.tables[table] ?? table;
    const where = `table ${session.ref}.${name}`;
    let schema: TableField[];
    let info: WarehouseTable['meta'];
    try {
      const [meta] = await dataset.table(name).getMetadata();
      const m = meta as { schema?: { fields?: TableField[] }; lastModifiedTime?: string; numRows?: string };
      schema = m.schema?.fields ?? [];
      info = { lastModifiedTime: m.lastModifiedTime ?? null, numRows: m.numRows ?? null };
    } catch (err) {
      if ((err as { code?: number }).code === 404) {
        if (TABLES[table].required) missing.push(name);
        continue;
      }
      throw bigQueryError(err, where);
    }
    const byName = new Map(schema.map((f) => [f.name?.toLowerCase(), f]));
    const problems: string[] = [];
    const columns: WarehouseTable['columns'] = [];
    for (const col of TABLES[table].columns as readonly ColumnSpec[]) {
      const source = sourceColumn(config, table, col.name);
      const f = byName.get(source.toLowerCase());
      const label = source === col.name ? `"${source}"` : `"${source}" (mapped to ${col.name})`;
      if (!f) problems.push(`missing column ${label}`);
      else if (f.mode === 'REPEATED' || !ENGINE_TYPES[col.type].has(f.type ?? '')) {
        problems.push(`column ${label} is ${f.mode === 'REPEATED' ? `REPEATED ${f.type}` : f.type}, not ${[...ENGINE_TYPES[col.type]][0]}`);
      } else columns.push({ contract: col.name, source: f.name! });
    }
    if (problems.length > 0) {
      throw new InputError(
        `bigquery: ${where}: ${problems.join('; ')}; --engine bigquery reads typed columns only ` +
          `(--bigquery without --engine reads and types them locally, rejecting bad rows one by one)`,
      );
    }
    // Provenance is used only as the loaders write it: text and an integer line.
    const provenance = byName.get('__file')?.type === 'STRING' && ['INT64', 'INTEGER'].includes(byName.get('__line')?.type ?? '');
    found.push({ table, name, columns, meta: info, provenance });
  }
  if (missing.length > 0) {
    throw new InputError(`bigquery: dataset ${session.ref}: required table${missing.length > 1 ? 's' : ''} not found: ${missing.join(', ')}`);
  }
  return found;
}

/**
 * The CTE that presents a warehouse table to the catalog under its contract name and columns.
 * A table without provenance gets its table as `__file` and, as `__line`, a fingerprint of the
 * row's contract columns and of its rank among identical copies: a stable id for a row whose key
 * is null, distinct for each copy, with no global ordering (which would run on one BigQuery
 * worker: the window is partitioned by the row's content).
 */
export function tableCte(t: WarehouseTable, dataset: string): string {
  // Every job reads every table as of one instant (`@read_at`, taken when the engine opens), so a
  // load landing during the audit cannot reach one check and not another.
  const from = `${d.ident(`${dataset}.${t.name}`)} FOR SYSTEM_TIME AS OF TIMESTAMP(@read_at)`;
  const cols = t.columns.map((c) => (c.source === c.contract ? d.ident(c.source) : `${d.ident(c.source)} AS ${d.ident(c.contract)}`));
  if (t.provenance) return `${t.table} AS (SELECT ${[...cols, '`__file`', '`__line`'].join(', ')} FROM ${from})`;
  const content = `TO_JSON_STRING(STRUCT(${t.columns.map((c) => d.ident(c.source)).join(', ')}))`;
  const line = `FARM_FINGERPRINT(CONCAT(${content}, '#', CAST(ROW_NUMBER() OVER (PARTITION BY ${content}) AS STRING)))`;
  return `${t.table} AS (SELECT ${[...cols, `${d.string(`bigquery:${dataset}.${t.name}`)} AS \`__file\``, `${line} AS \`__line\``].join(', ')} FROM ${from})`;
}
