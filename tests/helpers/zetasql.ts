import { execFile, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { LanguageOptions, ZetaSQLClient } from '@fivetrandevelopers/zetasql';
import type { EvaluateQueryRequest } from '@fivetrandevelopers/zetasql/lib/types/zetasql/local_service/EvaluateQueryRequest.js';
import type { EvaluateQueryResponse__Output } from '@fivetrandevelopers/zetasql/lib/types/zetasql/local_service/EvaluateQueryResponse.js';
import type { TypeProto } from '@fivetrandevelopers/zetasql/lib/types/zetasql/TypeProto.js';
import type { ValueProto, ValueProto__Output } from '@fivetrandevelopers/zetasql/lib/types/zetasql/ValueProto.js';
import { afterAll, beforeAll } from 'vitest';
import { REJECTS_TABLE } from '../../src/contract/rejects.ts';
import { PROVENANCE_COLUMNS, TABLES, type ColumnType } from '../../src/contract/tables.ts';
import type { Db } from '../../src/db.ts';

/**
 * ZetaSQL, BigQuery's SQL front end and reference engine, as a local gRPC server: `analyze`
 * resolves names and checks types of GoogleSQL against the contract tables, `evaluate` runs a
 * query over rows given with it. One server per test file, started before its tests.
 */

/** A contract column type, or the `problems` list of a rejected row (REJECTS_DDL). */
type CatalogType = ColumnType | 'problems';

const PROBLEM_FIELDS = ['column', 'value', 'message'] as const;

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
        structType: { field: PROBLEM_FIELDS.map((fieldName) => ({ fieldName, fieldType: { typeKind: 'TYPE_STRING' } })) },
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

/** A cell as ZetaSQL's ValueProto; an unset value is NULL. */
function toCell(type: CatalogType, value: unknown): ValueProto {
  if (value === null || value === undefined) return {};
  switch (type) {
    case 'string':
      return { stringValue: String(value) };
    case 'bigint':
    case 'int':
      return { int64Value: String(value) };
    case 'bool':
      return { boolValue: Boolean(value) };
    case 'timestamp': {
      // Read from DuckDB as epoch microseconds, so no instant is rounded on the way.
      const us = value as bigint;
      const seconds = us >= 0n ? us / 1_000_000n : -((-us + 999_999n) / 1_000_000n);
      return { timestampValue: { seconds: String(seconds), nanos: Number(us - seconds * 1_000_000n) * 1000 } };
    }
    case 'problems': {
      // Read from DuckDB as JSON text: one object per problem.
      const problems = JSON.parse(value as string) as Array<Record<string, string | null>>;
      return { arrayValue: { element: problems.map((p) => ({ structValue: { field: PROBLEM_FIELDS.map((f) => toCell('string', p[f])) } })) } };
    }
  }
}

/** A result cell as JavaScript: INT64 as bigint, JSON as its text. */
function fromCell(cell: ValueProto__Output): unknown {
  switch (cell.value) {
    case undefined:
      return null;
    case 'int64Value':
      return BigInt(cell.int64Value!.toString());
    case 'arrayValue':
      return cell.arrayValue!.element.map(fromCell);
    default:
      return cell[cell.value];
  }
}

export interface ZetaSql {
  /** The analyzer's error for a GoogleSQL statement, or undefined when it resolves and type-checks. */
  analyzeError(sql: string): Promise<string | undefined>;
  /** Runs a GoogleSQL query over the tables `db` holds (those of CATALOG_TABLES it has), as row objects. */
  evaluate(sql: string, db: Db): Promise<Array<Record<string, unknown>>>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** The server binary the package ships for this machine (what its `runServer` starts). */
function serverBinary(): string {
  const pkg = path.dirname(createRequire(import.meta.url).resolve('@fivetrandevelopers/zetasql/package.json'));
  const name = `remote_server${process.arch.startsWith('arm') ? '_arm' : ''}${process.platform === 'darwin' ? '' : '.so'}`;
  return path.join(pkg, 'lib', 'zetasql', name);
}

/**
 * Starts ZetaSQL's server on a free loopback port before the file's tests and stops it after.
 * The server is started here rather than with the package's `runServer`, which echoes its log to
 * stdout and keeps no handle a test could stop.
 */
export function useZetaSql(): ZetaSql {
  let server: ChildProcess | undefined;
  let catalog: EvaluateQueryRequest['simpleCatalog'];
  let options: EvaluateQueryRequest['options'];

  beforeAll(async () => {
    const port = await freePort();
    server = execFile(serverBinary(), ['localhost', String(port)]);
    ZetaSQLClient.init(port);
    if (!(await ZetaSQLClient.getInstance().testConnection())) throw new Error(`ZetaSQL server did not answer on port ${port}`);
    // BigQuery follows ZetaSQL's newest language (QUALIFY, JSON, IS DISTINCT FROM, NULLS LAST).
    const languageOptions = (await new LanguageOptions().enableMaximumLanguageFeatures()).serialize();
    options = { languageOptions, errorMessageMode: 'ERROR_MESSAGE_ONE_LINE' };
    catalog = {
      name: 'recon',
      builtinFunctionOptions: { languageOptions },
      table: Object.entries(CATALOG_TABLES).map(([name, columns]) => ({
        name,
        column: columns.map((c) => ({ name: c.name, type: GOOGLE_SQL_TYPE[c.type] })),
      })),
    };
  });

  afterAll(() => {
    server?.kill();
  });

  return {
    async analyzeError(sql) {
      try {
        await ZetaSQLClient.getInstance().analyze({ sqlStatement: sql, simpleCatalog: catalog!, options: options! });
        return undefined;
      } catch (err) {
        return (err as { details?: string }).details ?? String(err);
      }
    },

    async evaluate(sql, db) {
      const present = new Set(
        (await db.all<{ name: string }>(`SELECT table_name AS name FROM information_schema.tables`)).map((r) => r.name),
      );
      const tableContent: NonNullable<EvaluateQueryRequest['tableContent']> = {};
      for (const [name, columns] of Object.entries(CATALOG_TABLES)) {
        if (!present.has(name)) continue;
        const select = columns.map((c) =>
          c.type === 'timestamp' ? `epoch_us("${c.name}") AS "${c.name}"` : c.type === 'problems' ? `to_json("${c.name}")::VARCHAR AS "${c.name}"` : `"${c.name}"`,
        );
        const rows = await db.all(`SELECT ${select.join(', ')} FROM "${name}"`);
        tableContent[name] = { tableData: { row: rows.map((r) => ({ cell: columns.map((c) => toCell(c.type, r[c.name])) })) } };
      }
      const request: EvaluateQueryRequest = { sql, simpleCatalog: catalog!, options: options!, tableContent };
      const response = await new Promise<EvaluateQueryResponse__Output>((resolve, reject) =>
        ZetaSQLClient.API.evaluateQuery(request, (err, res) => (err || !res ? reject(err ?? new Error('ZetaSQL returned no result')) : resolve(res))),
      );
      const names = response.prepared!.columns.map((c) => c.name);
      return response.content!.tableData!.row.map((r) => Object.fromEntries(r.cell.map((c, i) => [names[i], fromCell(c)])));
    },
  };
}
