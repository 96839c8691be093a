import { afterAll, beforeAll } from 'vitest';
import { REJECTS_TABLE } from '../../src/contract/rejects.ts';
import { PROVENANCE_COLUMNS, TABLES, type ColumnType } from '../../src/contract/tables.ts';
import type { Db } from '../../src/db.ts';
import { duckDbTable, fromCell, startZetaSql, type TypeProto, type ZetaSql, type ZetaTable } from '../../src/sources/zetasql.ts';

/**
 * ZetaSQL (src/sources/zetasql.ts) for a test file: `analyzeError` resolves and type-checks
 * GoogleSQL against the contract tables, `evaluate` runs a query over the tables a DuckDB
 * session holds. One server per test file, started before its tests.
 */

/** A contract column type, or the `problems` list of a rejected row (REJECTS_DDL). */
type CatalogType = ColumnType | 'problems';

const GOOGLE_SQL_TYPE: Readonly<Record<CatalogType, TypeProto>> = {
  string: { typeKind: 'TYPE_STRING' },
  bigint: { typeKind: 'TYPE_INT64' },
  int: { typeKind: 'TYPE_INT64' },
  timestamp: { typeKind: 'TYPE_TIMESTAMP' },
  bool: { typeKind: 'TYPE_BOOL' },
  problems: {
    typeKind: 'TYPE_ARRAY',
    arrayType: {
      elementType: {
        typeKind: 'TYPE_STRUCT',
        structType: { field: ['column', 'value', 'message'].map((fieldName) => ({ fieldName, fieldType: { typeKind: 'TYPE_STRING' } })) },
      },
    },
  },
};

/** The contract's columns of a table as the loaders type them, with their provenance. */
function columnsOf(table: keyof typeof TABLES): Array<{ name: string; type: CatalogType }> {
  return [
    ...TABLES[table].columns.map((c) => ({ name: c.name, type: c.type })),
    { name: PROVENANCE_COLUMNS[0].name, type: 'string' },
    { name: PROVENANCE_COLUMNS[1].name, type: 'bigint' },
  ];
}

/**
 * What the catalog's GoogleSQL reads: the contract tables and the context the DuckDB runner
 * materialises beside them (src/catalog/setup.ts), typed as BigQuery would hold them.
 */
export const CATALOG_TABLES: Readonly<Record<string, Array<{ name: string; type: CatalogType }>>> = {
  ...Object.fromEntries(Object.keys(TABLES).map((t) => [t, columnsOf(t as keyof typeof TABLES)])),
  effective_ledger_entries: columnsOf('ledger_entries'),
  recon_reversed_entry_ids: [{ name: 'ledger_entry_id', type: 'string' }],
  recon_settings: [
    { name: 'as_of', type: 'timestamp' },
    { name: 'billing_lag_minutes', type: 'bigint' },
    { name: 'allocation_window_tolerance_minutes', type: 'bigint' },
  ],
  recon_control_plane_components: [{ name: 'name', type: 'string' }],
  [REJECTS_TABLE]: [
    { name: 'table_name', type: 'string' },
    { name: 'file', type: 'string' },
    { name: 'line', type: 'bigint' },
    { name: 'problems', type: 'problems' },
  ],
};

const CATALOG: readonly ZetaTable[] = Object.entries(CATALOG_TABLES).map(([name, columns]) => ({
  name,
  columns: columns.map((c) => ({ name: c.name, type: GOOGLE_SQL_TYPE[c.type] })),
}));

export interface ZetaSqlForTests {
  /** The analyzer's error for a GoogleSQL statement over CATALOG_TABLES, or undefined when it resolves and type-checks. */
  analyzeError(sql: string): Promise<string | undefined>;
  /** Runs a GoogleSQL query over the tables `db` holds (those of CATALOG_TABLES it has), as row objects. */
  evaluate(sql: string, db: Db): Promise<Array<Record<string, unknown>>>;
  /** The server itself, e.g. to share with a local BigQuery endpoint (`startLocalBigQuery({ zetaSql })`). */
  server(): ZetaSql;
}

/** Starts ZetaSQL's server before the file's tests and stops it after. */
export function useZetaSql(): ZetaSqlForTests {
  let zeta: ZetaSql | undefined;
  beforeAll(async () => {
    zeta = await startZetaSql();
  });
  afterAll(async () => {
    await zeta?.close();
  });

  return {
    analyzeError: (sql) => zeta!.analyzeError(sql, CATALOG),

    async evaluate(sql, db) {
      const present = new Set(
        (await db.all<{ name: string }>(`SELECT table_name AS name FROM information_schema.tables`)).map((r) => r.name),
      );
      const tables: ZetaTable[] = [];
      for (const name of Object.keys(CATALOG_TABLES)) if (present.has(name)) tables.push(await duckDbTable(db, name));
      const result = await zeta!.evaluate(sql, tables);
      const names = result.columns.map((c) => c.name);
      return result.rows.map((r) => Object.fromEntries(r.map((c, i) => [names[i], fromCell(c)])));
    },

    server: () => zeta!,
  };
}
