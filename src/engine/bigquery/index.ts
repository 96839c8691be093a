import { createHash } from 'node:crypto';
import type { LoadedConfig } from '../../config.ts';
import type { InputFile } from '../../contract/inputs.ts';
import { createTableSql, TABLES, quoteIdent, type TableName } from '../../contract/tables.ts';
import { REJECTS_TABLE } from '../../contract/rejects.ts';
import type { Severity } from '../../contract/violations.ts';
import type { Db } from '../../db.ts';
import { errorMessage } from '../../errors.ts';
import { isoSql } from '../../sql.ts';
import { bigquery as d } from '../../dialect/bigquery.ts';
import { firstRowPerKey } from '../../dialect/dialect.ts';
import { createSettings, effectiveLedgerQuery, effectiveLedgerSql } from '../../catalog/setup.ts';
import { RUN_CHECKS } from '../../catalog/run-checks.ts';
import type { Invariant } from '../../catalog/types.ts';
import { unmatched, type IncidentIds, type Scope, type ScopeKey } from '../../scope.ts';
import type { BigQuerySource } from '../../sources/bigquery.ts';
import { exportValueColumns } from '../duckdb/facts.ts';
import { writeEvidence } from '../duckdb/evidence.ts';
import * as duckOutputs from '../duckdb/outputs.ts';
import { runInvariant } from '../duckdb/run.ts';
import { materialiseTimeline } from '../duckdb/timeline.ts';
import { CORRECTIVE_ENTRY_TYPES, type ActivityWindow, type Engine, type TableFacts } from '../engine.ts';
import { INCIDENT_LINKS, ORG_TABLES } from '../links.ts';
import { AGING_COLUMNS, agingQuery, BIGQUERY_PARAMS, WINDOW_ENTITIES } from '../queries.ts';
import { BigQuerySession, isQueryError, type Param } from './session.ts';
import { findWarehouseTables, tableCte, type WarehouseTable } from './tables.ts';

/** Ids per query parameter: BigQuery limits a request to 10 MB, and ids are short. */
const IDS_PER_QUERY = 10_000;

/** `PROJECT.DATASET` as it appears in the job text `recon explain --engine bigquery` prints. */
export const DATASET_PLACEHOLDER = 'PROJECT.DATASET';

/**
 * The catalog's context as GoogleSQL CTEs (the DuckDB engine materialises the same as tables in
 * src/catalog/setup.ts): settings and control-plane names as bound parameters, the effective
 * ledger, and an empty rejects table (a typed warehouse table has no row that could not be read).
 * Each with the tables it reads.
 */
const CONTEXT: ReadonlyArray<{ name: string; reads: readonly string[]; sql: () => string }> = [
  {
    name: REJECTS_TABLE,
    reads: [],
    sql: () => `SELECT CAST(NULL AS STRING) AS table_name, CAST(NULL AS STRING) AS file, CAST(NULL AS INT64) AS line,
       ARRAY<STRUCT<\`column\` STRING, value STRING, message STRING>>[] AS problems FROM UNNEST([1]) WHERE FALSE`,
  },
  {
    name: 'recon_settings',
    reads: [],
    sql: () => `SELECT TIMESTAMP(@as_of) AS as_of, @billing_lag_minutes AS billing_lag_minutes,
       @allocation_window_tolerance_minutes AS allocation_window_tolerance_minutes`,
  },
  { name: 'recon_control_plane_components', reads: [], sql: () => `SELECT name FROM UNNEST(@control_plane_components) AS name` },
  {
    name: 'recon_reversed_entry_ids',
    reads: ['ledger_entries'],
    sql: () => `SELECT DISTINCT reverses_ledger_entry_id AS ledger_entry_id FROM ledger_entries
         WHERE entry_type = 'reversal' AND reverses_ledger_entry_id IS NOT NULL`,
  },
  { name: 'effective_ledger_entries', reads: ['ledger_entries', 'recon_reversed_entry_ids'], sql: () => effectiveLedgerQuery(d) },
];

/** Whether SQL text names a table (as a whole word: `usage_records`, never `usage_records_x`). */
const names = (sql: string, table: string) => new RegExp(`\\b${table}\\b`).test(sql);

/**
 * The complete job text of one invariant: the warehouse tables it reads under their contract
 * names, the context it reads, and the catalog's own query rendered for BigQuery. Only what the
 * query names is in it: BigQuery would prune the rest anyway, and the job reads as what it does.
 * Its parameters are the audit's settings (`@as_of`, `@billing_lag_minutes`,
 * `@allocation_window_tolerance_minutes`, `@control_plane_components`).
 */
export function invariantJob(inv: Invariant, warehouse: readonly WarehouseTable[], dataset: string): string {
  const tables = new Set(warehouse.map((t) => t.table));
  const query = inv.sql({ tables, dialect: d });
  // Context CTEs the query names, and what they name in turn (listed after what they read).
  const needed = new Set<string>();
  const visit = (name: string) => {
    if (needed.has(name)) return;
    needed.add(name);
    for (const r of CONTEXT.find((c) => c.name === name)?.reads ?? []) visit(r);
  };
  for (const c of CONTEXT) if (names(query, c.name)) visit(c.name);
  for (const t of warehouse) if (names(query, t.table)) needed.add(t.table);
  const ctes = [
    ...warehouse.filter((t) => needed.has(t.table)).map((t) => tableCte(t, dataset)),
    ...CONTEXT.filter((c) => needed.has(c.name)).map((c) => `${c.name} AS (${c.sql()})`),
  ];
  return `${ctes.length ? `WITH ${ctes.join(',\n')}\n` : ''}SELECT * FROM (\n${query}\n)`;
}

/** Every table of the contract with every column, typed, as `recon explain` assumes. */
export function contractWarehouse(): WarehouseTable[] {
  return (Object.keys(TABLES) as TableName[]).map((table) => ({
    table,
    name: table,
    columns: TABLES[table].columns.map((c) => ({ contract: c.name, source: c.name })),
    meta: { lastModifiedTime: null, numRows: null },
    provenance: false,
  }));
}

/**
 * The catalog runs as BigQuery query jobs over the dataset; only what they find comes back, into
 * the local `violations` table, where waivers, scope and every output work as with files. What
 * the outputs need beyond the violations is asked of BigQuery by id (the tenants, app instances
 * and movements the violations name), never table by table.
 */
export class BigQueryEngine implements Engine {
  readonly name = 'bigquery';
  readonly dialect = d;
  readonly tables: ReadonlySet<TableName>;
  private params: Record<string, Param> = {};
  private counter = 0;

  private constructor(
    readonly db: Db,
    private readonly session: BigQuerySession,
    private readonly warehouse: readonly WarehouseTable[],
  ) {
    this.tables = new Set(warehouse.map((t) => t.table));
  }

  static async open(db: Db, source: BigQuerySource, config: LoadedConfig['config']): Promise<BigQueryEngine> {
    const session = await BigQuerySession.open(source);
    const warehouse = await findWarehouseTables(session, config);
    await session.pinReadAt(db);
    return new BigQueryEngine(db, session, warehouse);
  }

  /**
   * The tables read, one input each. The rows are counted by the audit; the fingerprint is of
   * what BigQuery said of the table (its name, last modification, rows) and of the instant every
   * job read it as of, since the engine never sees the rows themselves.
   */
  inputs(): InputFile[] {
    return this.warehouse.map((t) => ({
      table: t.table,
      source: `bigquery:${this.session.ref}.${t.name}`,
      format: 'bigquery-engine',
      rows: 0,
      rejected_rows: 0,
      sha256: createHash('sha256').update(JSON.stringify({ table: `${this.session.ref}.${t.name}`, read_at: this.session.readAt, ...t.meta })).digest('hex'),
    }));
  }

  /** `WITH` and the CTEs of the given tables (all present ones by default). */
  private with(tables: readonly TableName[] = [...this.tables]): string {
    const ctes = this.warehouse.filter((t) => tables.includes(t.table)).map((t) => tableCte(t, this.session.ref));
    return ctes.length ? `WITH ${ctes.join(',\n')}\n` : '';
  }

  private temp(what: string): string {
    return `__bq_${what}_${++this.counter}`;
  }

  /**
   * Runs a query for the given ids (`@ids`), IDS_PER_QUERY at a time, into one local table
   * `into`: a BigQuery request is limited to 10 MB. The query must select rows by `@ids` alone,
   * or a row picked by another condition comes back once per chunk.
   */
  private async fetchByIds(sql: string, ids: readonly string[], what: string, into: string, params: Record<string, Param> = {}): Promise<void> {
    const chunks: string[][] = [];
    for (let i = 0; i < ids.length; i += IDS_PER_QUERY) chunks.push(ids.slice(i, i + IDS_PER_QUERY));
    if (chunks.length === 0) chunks.push([]);
    for (const [i, chunk] of chunks.entries()) {
      const target = i === 0 ? into : this.temp('chunk');
      await this.session.fetch(this.db, sql, { ...params, ids: chunk }, { what }, target);
      if (i > 0) {
        await this.db.run(`INSERT INTO ${quoteIdent(into)} SELECT * FROM ${quoteIdent(target)}`);
        await this.db.run(`DROP TABLE ${quoteIdent(target)}`);
      }
    }
  }

  private async localIds(sql: string, params?: Record<string, string>): Promise<string[]> {
    return (await this.db.all<{ id: string }>(sql, params)).map((r) => r.id);
  }

  async tableFacts(): Promise<TableFacts> {
    const parts = [...this.tables].map((t) => {
      const maxes = TABLES[t].columns.filter((c) => c.type === 'timestamp').map((c) => `MAX(${d.ident(c.name)})`);
      // GREATEST is NULL when any argument is: each argument falls back on the others.
      const newest = maxes.length ? `GREATEST(${maxes.map((m, i) => `COALESCE(${[m, ...maxes.filter((_, j) => j !== i)].join(', ')})`).join(', ')})` : 'CAST(NULL AS TIMESTAMP)';
      return `SELECT ${d.string(t)} AS tbl, COUNT(*) AS n, ${newest} AS t FROM ${t}`;
    });
    const into = this.temp('facts');
    await this.session.fetch(this.db, `${this.with()}${parts.join('\nUNION ALL\n')}`, {}, { what: 'table facts' }, into);
    const rows = await this.db.all<{ tbl: TableName; n: bigint; t: string | null; latest: string | null }>(
      // Timestamps come back as DuckDB values and are formatted as the DuckDB engine formats them.
      `SELECT tbl, n, ${isoSql('t')} AS t, ${isoSql('max(t) OVER ()')} AS latest FROM ${into}`,
    );
    await this.db.run(`DROP TABLE ${into}`);
    const facts: TableFacts = { rows: {}, newest: {}, latest: rows[0]?.latest ?? null };
    for (const r of rows) {
      facts.rows[r.tbl] = Number(r.n);
      facts.newest[r.tbl] = r.t;
    }
    return facts;
  }

  /**
   * Whether each value exists is BigQuery's answer; "did you mean" is chosen by the DuckDB engine's
   * own rule among candidates BigQuery sends: the same text in another case, values containing it
   * or contained in it, and values whose length is within the edit distance allowed (no other can
   * be within it), at most 1,000 a value, the exact one first.
   */
  async unmatchedScopeValues(key: ScopeKey, values: readonly string[]) {
    const sources = exportValueColumns(key, this.tables);
    const union = sources.length ? sources.map(([t, c]) => `SELECT CAST(${d.ident(c)} AS STRING) AS v FROM ${t}`).join(' UNION ALL ') : 'SELECT CAST(NULL AS STRING) AS v';
    const into = this.temp('scope');
    await this.session.fetch(
      this.db,
      `${this.with(sources.map(([t]) => t))}SELECT v FROM (
         SELECT q, v FROM (SELECT DISTINCT v FROM (${union}) WHERE v IS NOT NULL) CROSS JOIN UNNEST(@given) AS q
         WHERE LOWER(v) = LOWER(q) OR STRPOS(LOWER(v), LOWER(q)) > 0 OR STRPOS(LOWER(q), LOWER(v)) > 0
            OR ABS(LENGTH(v) - LENGTH(q)) <= GREATEST(2, DIV(LENGTH(q), 3)))
       WHERE TRUE QUALIFY ROW_NUMBER() OVER (PARTITION BY q ORDER BY v = q DESC, LOWER(v) = LOWER(q) DESC, ABS(LENGTH(v) - LENGTH(q)), v) <= 1000`,
      { given: [...values] },
      { what: `scope ${key}` },
      into,
    );
    try {
      return await unmatched(this.db, `SELECT v FROM ${into}`, values);
    } finally {
      await this.db.run(`DROP TABLE ${into}`);
    }
  }

  async prepare(config: LoadedConfig['config'], asOf: string, invariants: readonly Invariant[]): Promise<void> {
    this.params = {
      as_of: asOf,
      billing_lag_minutes: config.thresholds.billing_lag_minutes,
      allocation_window_tolerance_minutes: config.thresholds.allocation_window_tolerance_minutes,
      control_plane_components: [...config.control_plane_components],
    };
    // The audit's own checks (freshness, waivers) and the reports read the settings locally.
    await createSettings(this.db, config, asOf);
    let total = 0n;
    for (const inv of invariants) {
      if (RUN_CHECKS.includes(inv)) continue;
      const bytes = await this.session.dryRun(invariantJob(inv, this.warehouse, this.session.ref), this.params, { what: inv.id, invariant: inv.id });
      total += bytes;
      this.session.log(`bigquery: ${inv.id} would scan ${bytes.toLocaleString('en-US')} bytes`);
    }
    this.session.log(`bigquery: the catalog would scan ${total.toLocaleString('en-US')} bytes in total`);
  }

  async run(inv: Invariant, severity: Severity): Promise<string | undefined> {
    if (RUN_CHECKS.includes(inv)) return runInvariant(this.db, inv, severity, inv.sql({ tables: this.tables }));
    const into = this.temp('found');
    try {
      await this.session.fetch(this.db, invariantJob(inv, this.warehouse, this.session.ref), this.params, { what: inv.id, invariant: inv.id }, into);
    } catch (err) {
      // A query that fails as it runs (an INT64 overflow in a sum) is that check's error, as in
      // DuckDB; bytes over the limit, permissions, quota and the like fail the audit.
      if (isQueryError(err)) return errorMessage(err);
      throw err;
    }
    try {
      return await runInvariant(this.db, inv, severity, `SELECT * FROM ${into}`);
    } finally {
      await this.db.run(`DROP TABLE ${into}`);
    }
  }

  async tagControlPlane(): Promise<void> {
    if (!this.tables.has('usage_records')) return;
    const ids = await this.localIds(`SELECT DISTINCT usage_record_id AS id FROM violations WHERE usage_record_id IS NOT NULL ORDER BY 1`);
    if (ids.length === 0) return;
    const into = this.temp('control_plane');
    await this.fetchByIds(
      `${this.with(['usage_records'])}SELECT usage_record_id, control_plane_component FROM (${firstRowPerKey(d, 'usage_records', 'usage_record_id', 'usage_record_id IN UNNEST(@ids)')})`,
      ids,
      'control plane flags',
      into,
    );
    await this.db.run(`UPDATE violations v SET control_plane_component = u.control_plane_component FROM ${into} u WHERE v.usage_record_id = u.usage_record_id`);
    await this.db.run(`DROP TABLE ${into}`);
  }

  async restrictToWindow(window: ActivityWindow): Promise<void> {
    for (const w of WINDOW_ENTITIES) {
      if (!w.tables.every((t) => this.tables.has(t))) continue;
      const ids = await this.localIds(`SELECT DISTINCT ${w.id} AS id FROM violations WHERE entity_type = $entity AND ${w.id} IS NOT NULL ORDER BY 1`, {
        entity: w.entity,
      });
      if (ids.length === 0) continue;
      const into = this.temp('active');
      await this.fetchByIds(`${this.with(w.tables)}SELECT DISTINCT id FROM (${w.active(d, BIGQUERY_PARAMS)}) WHERE id IN UNNEST(@ids)`, ids, `window ${w.entity}`, into, {
        since: window.since,
        until: window.until,
      });
      await this.db.run(`DELETE FROM violations WHERE entity_type = $entity AND ${w.id} IS NOT NULL AND ${w.id} NOT IN (SELECT id FROM ${into})`, { entity: w.entity });
      await this.db.run(`DROP TABLE ${into}`);
    }
  }

  async narrowToIncident(ids: IncidentIds): Promise<void> {
    const links = INCIDENT_LINKS.filter((l) => this.tables.has(l.table));
    const linked: string[] = [];
    const fetched: string[] = [];
    for (const l of links) {
      const into = this.temp('incident');
      fetched.push(into);
      await this.session.fetch(
        this.db,
        `${this.with([l.table])}SELECT DISTINCT ${l.key} AS id FROM ${l.table} WHERE correlation_id IN UNNEST(@c) OR trace_id IN UNNEST(@t)`,
        { c: [...ids.correlationIds], t: [...ids.traceIds] },
        { what: `incident ${l.table}` },
        into,
      );
      linked.push(`(${l.entityOnly ? `entity_type = '${l.key.replace(/_id$/, '')}' AND ` : ''}${l.key} IN (SELECT id FROM ${into}))`);
    }
    await this.db.run(
      `DELETE FROM violations WHERE NOT coalesce(
         entity_type = 'source_row' OR list_contains($c::JSON::VARCHAR[], correlation_id) OR list_contains($t::JSON::VARCHAR[], trace_id)
         ${linked.map((l) => `OR ${l}`).join('\n         ')}, false)`,
      { c: JSON.stringify(ids.correlationIds), t: JSON.stringify(ids.traceIds) },
    );
    for (const t of fetched) await this.db.run(`DROP TABLE ${t}`);
  }

  async exportCounts() {
    const orgTables = ORG_TABLES.filter((t) => this.tables.has(t));
    const into = this.temp('counts');
    await this.session.fetch(
      this.db,
      `${this.with()}SELECT
         (SELECT COUNT(DISTINCT org_id) FROM (${orgTables.map((t) => `SELECT org_id FROM ${t}`).join(' UNION ALL ') || 'SELECT CAST(NULL AS STRING) AS org_id'})) AS tenants,
         ${this.tables.has('usage_records') ? `(SELECT COUNT(DISTINCT usage_record_id) FROM usage_records WHERE end_time IS NULL)` : '0'} AS open`,
      {},
      { what: 'export counts' },
      into,
    );
    const r = (await this.db.one<{ tenants: bigint; open: bigint }>(`SELECT * FROM ${into}`))!;
    await this.db.run(`DROP TABLE ${into}`);
    return { tenants_in_exports: Number(r.tenants), open_usage_rows: Number(r.open) };
  }

  async materialiseAging(asOf: string, into: string): Promise<void> {
    await this.db.run(`CREATE OR REPLACE TEMP TABLE ${into} (${AGING_COLUMNS})`);
    const query = agingQuery(d, BIGQUERY_PARAMS, this.tables);
    if (!query) return;
    const fetched = this.temp('aging');
    await this.session.fetch(this.db, `${this.with(['usage_records', 'payment_sessions'])}${query}`, { as_of: asOf }, { what: 'open items aging' }, fetched);
    await this.db.run(`INSERT INTO ${into} SELECT * FROM ${fetched}`);
    await this.db.run(`DROP TABLE ${fetched}`);
  }

  /**
   * Brings the rows of `table` picked by any of `parts` (each GoogleSQL over the table selecting by
   * `@ids`, the ids given with it) into a local temp table of the same name, where the DuckDB
   * engine's queries read them. Each part's ids are sent IDS_PER_QUERY at a time, and a row picked
   * twice is kept once (a row is its `__file` and `__line`). A part with no ids costs no job.
   */
  private async mirror(table: TableName, parts: ReadonlyArray<{ where: string; ids: readonly string[] }>): Promise<void> {
    const fetched: string[] = [];
    for (const part of parts) {
      if (part.ids.length === 0) continue;
      const into = this.temp(`mirror_${table}`);
      await this.fetchByIds(`${this.with([table])}SELECT * FROM ${table} WHERE ${part.where}`, part.ids, `rows of ${table}`, into);
      fetched.push(into);
    }
    const columns = [...TABLES[table].columns.map((c) => quoteIdent(c.name)), '__file', '__line'].join(', ');
    await this.db.run(
      fetched.length
        ? `CREATE OR REPLACE TEMP TABLE ${table} AS SELECT ${columns} FROM (${fetched.map((t) => `SELECT ${columns} FROM ${t}`).join(' UNION ALL ')})
           QUALIFY row_number() OVER (PARTITION BY __file, __line) = 1`
        : createTableSql(TABLES[table], table, { temp: true }),
    );
    for (const t of fetched) await this.db.run(`DROP TABLE ${t}`);
  }

  /** The corrective entries of the whole ledger (reversals, adjustments), by id: the evidence keeps every one in scope. */
  private async correctiveIds(): Promise<string[]> {
    const into = this.temp('corrective');
    await this.session.fetch(
      this.db,
      `${this.with(['ledger_entries'])}SELECT DISTINCT ledger_entry_id AS id FROM ledger_entries
       WHERE entry_type IN UNNEST(@types) AND ledger_entry_id IS NOT NULL`,
      { types: [...CORRECTIVE_ENTRY_TYPES] },
      { what: 'corrective entries' },
      into,
    );
    try {
      return await this.localIds(`SELECT id FROM ${into} ORDER BY 1`);
    } finally {
      await this.db.run(`DROP TABLE ${into}`);
    }
  }

  async appInstances(ids: readonly string[]) {
    if (!this.tables.has('app_instances')) return [];
    await this.mirror('app_instances', [{ where: 'app_instance_id IN UNNEST(@ids)', ids }]);
    return duckOutputs.appInstances(this.db, this.tables, ids);
  }

  async usageSplit(ids: readonly string[]) {
    if (!this.tables.has('usage_records')) return [];
    await this.mirror('usage_records', [{ where: 'app_instance_id IN UNNEST(@ids)', ids }]);
    return duckOutputs.usageSplit(this.db, this.tables, ids);
  }

  async ledgerBacking(ids: readonly string[], limit: number, violationsTable: string) {
    if (!this.tables.has('usage_records')) return { rows: [], summary: [] };
    await this.mirror('usage_records', [{ where: 'app_instance_id IN UNNEST(@ids)', ids }]);
    if (this.tables.has('ledger_entries')) {
      const usage = await this.localIds(`SELECT DISTINCT usage_record_id AS id FROM usage_records WHERE usage_record_id IS NOT NULL ORDER BY 1`);
      // The debits of these usage rows and every reversal naming one: enough to tell which are effective.
      await this.mirror('ledger_entries', [
        {
          where: `(entry_type = 'usage_debit' AND usage_record_id IN UNNEST(@ids))
             OR (entry_type = 'reversal' AND reverses_ledger_entry_id IN (SELECT ledger_entry_id FROM ledger_entries WHERE usage_record_id IN UNNEST(@ids)))`,
          ids: usage,
        },
      ]);
      // Over the mirror, and TEMP: nothing of it outlives the session or reaches a --db file.
      for (const sql of effectiveLedgerSql({ temp: true })) await this.db.run(sql);
    }
    return duckOutputs.ledgerBacking(this.db, this.tables, ids, limit, violationsTable);
  }

  async materialiseMovementTimes(from: string, into: { usage: string; sessions: string; ledger: string }): Promise<void> {
    const keys = [
      ['usage_records', 'usage_record_id'],
      ['payment_sessions', 'payment_session_id'],
      ['ledger_entries', 'ledger_entry_id'],
    ] as const;
    for (const [table, key] of keys) {
      if (!this.tables.has(table)) continue;
      await this.mirror(table, [{ where: `${key} IN UNNEST(@ids)`, ids: await this.localIds(`SELECT DISTINCT ${key} AS id FROM ${from} WHERE ${key} IS NOT NULL ORDER BY 1`) }]);
    }
    await duckOutputs.materialiseMovementTimes(this.db, this.tables, from, into);
  }

  /**
   * The evidence rows are found as the DuckDB engine finds them, over a local mirror of the rows
   * they can come from: the rows the violations name (by key, or by file and line for a value that
   * could not be read), the ledger entries naming those, every corrective entry, and one hop of
   * reversal links.
   */
  async writeEvidence(scope: Scope, snapDir: string) {
    const named = (col: string) => this.localIds(`SELECT DISTINCT ${col} AS id FROM violations WHERE ${col} IS NOT NULL ORDER BY 1`);
    const keyRefs = (table: string) =>
      this.localIds(`SELECT DISTINCT entity_id AS id FROM violations WHERE entity_type = 'key' AND json_extract_string(detail, '$.table') = $t ORDER BY 1`, { t: table });
    const rowRefs = (table: string) =>
      this.localIds(
        `SELECT DISTINCT json_extract_string(detail, '$.line') AS id FROM violations
         WHERE entity_type = 'table_row' AND json_extract_string(detail, '$.table') = $t AND json_extract_string(detail, '$.line') IS NOT NULL ORDER BY 1`,
        { t: table },
      );
    const column = (table: string, col: string) => this.localIds(`SELECT DISTINCT ${col} AS id FROM ${table} WHERE ${col} IS NOT NULL ORDER BY 1`);
    const union = (...lists: string[][]) => [...new Set(lists.flat())].sort();
    const byLine = async (table: TableName) => ({ where: `CAST(__line AS STRING) IN UNNEST(@ids)`, ids: await rowRefs(table) });
    const has = (t: TableName) => this.tables.has(t);
    const usageIds = union(await named('usage_record_id'), await keyRefs('usage_records'));
    const sessionIds = union(await named('payment_session_id'), await keyRefs('payment_sessions'));
    let ledgerIds = union(await named('ledger_entry_id'), await keyRefs('ledger_entries'));
    if (has('payment_sessions')) {
      await this.mirror('payment_sessions', [{ where: `payment_session_id IN UNNEST(@ids)`, ids: sessionIds }, await byLine('payment_sessions')]);
      ledgerIds = union(ledgerIds, await column('payment_sessions', 'ledger_entry_id'));
    }
    if (has('ledger_entries')) {
      const ledgerParts = async (ids: string[], usage: string[], sessions: string[]) => [
        { where: `ledger_entry_id IN UNNEST(@ids)`, ids },
        { where: `usage_record_id IN UNNEST(@ids)`, ids: usage },
        { where: `payment_session_id IN UNNEST(@ids)`, ids: sessions },
        { where: `reverses_ledger_entry_id IN UNNEST(@ids)`, ids },
        await byLine('ledger_entries'),
      ];
      // The entries named, those naming a named usage row or session, every corrective entry and
      // the entries reversing any of these; then what those name, and the entries they reverse.
      await this.mirror('ledger_entries', await ledgerParts(union(ledgerIds, await this.correctiveIds()), usageIds, sessionIds));
      const reached = union(await column('ledger_entries', 'ledger_entry_id'), await column('ledger_entries', 'reverses_ledger_entry_id'));
      await this.mirror(
        'ledger_entries',
        await ledgerParts(reached, union(usageIds, await column('ledger_entries', 'usage_record_id')), union(sessionIds, await column('ledger_entries', 'payment_session_id'))),
      );
    }
    if (has('usage_records')) {
      const fromLedger = has('ledger_entries') ? await column('ledger_entries', 'usage_record_id') : [];
      await this.mirror('usage_records', [{ where: `usage_record_id IN UNNEST(@ids)`, ids: union(usageIds, fromLedger) }, await byLine('usage_records')]);
    }
    if (has('payment_sessions') && has('ledger_entries')) {
      const fromLedger = await column('ledger_entries', 'payment_session_id');
      await this.mirror('payment_sessions', [{ where: `payment_session_id IN UNNEST(@ids)`, ids: union(sessionIds, fromLedger) }, await byLine('payment_sessions')]);
    }
    const fromUsage = (col: string) => (has('usage_records') ? column('usage_records', col) : Promise.resolve([]));
    if (has('allocations')) {
      const ids = union(await named('allocation_id'), await keyRefs('allocations'), await fromUsage('allocation_id'));
      await this.mirror('allocations', [{ where: `allocation_id IN UNNEST(@ids)`, ids }, await byLine('allocations')]);
    }
    if (has('app_instances')) {
      const ids = union(await named('app_instance_id'), await keyRefs('app_instances'), await fromUsage('app_instance_id'));
      await this.mirror('app_instances', [{ where: `app_instance_id IN UNNEST(@ids)`, ids }, await byLine('app_instances')]);
    }
    return writeEvidence(this.db, this.tables, scope, snapDir);
  }

  async materialiseTimeline(): Promise<void> {
    const corr = await this.localIds(`SELECT id FROM snap_corr ORDER BY 1`);
    const trace = await this.localIds(`SELECT id FROM snap_trace ORDER BY 1`);
    for (const t of ['allocations', 'app_instances', 'usage_records', 'ledger_entries', 'payment_sessions', 'events'] as const) {
      if (this.tables.has(t)) {
        await this.mirror(t, [
          { where: `correlation_id IN UNNEST(@ids)`, ids: corr },
          { where: `trace_id IN UNNEST(@ids)`, ids: trace },
        ]);
      }
    }
    await materialiseTimeline(this.db, this.tables);
  }
}
