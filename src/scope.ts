import { listValue } from '@duckdb/node-api';
import type { Db } from './db.ts';
import { UsageError } from './errors.ts';

/**
 * The identifiers the runbooks list as an incident's required context, each a way to narrow an
 * audit, a snapshot or a diff. Repeats of one flag are a union (`--org a --org b`: either
 * tenant); different flags intersect (`--org a --project p`: tenant a's project p), as the
 * runbooks read "tenant X, project Y".
 */
export const SCOPE_DIMENSIONS = [
  { key: 'orgs', flag: 'org', column: 'org_id', noun: 'org', arg: 'ORG', help: 'this tenant (org_id)' },
  { key: 'projects', flag: 'project', column: 'project_id', noun: 'project', arg: 'ID', help: 'this project (project_id)' },
  { key: 'users', flag: 'user', column: 'requested_by_user_id', noun: 'user', arg: 'ID', help: 'this user (requested_by_user_id)' },
  { key: 'allocations', flag: 'allocation', column: 'allocation_id', noun: 'allocation', arg: 'ID', help: 'this GPU allocation (allocation_id)' },
  { key: 'app_instances', flag: 'app-instance', column: 'app_instance_id', noun: 'app instance', arg: 'ID', help: 'this app instance (app_instance_id)' },
  { key: 'usage_sources', flag: 'usage-source', column: 'usage_source', noun: 'usage source', arg: 'SOURCE', help: 'allocation or app_runtime usage' },
  {
    key: 'control_plane_components',
    flag: 'control-plane-component',
    column: 'control_plane_component',
    noun: 'control-plane flag',
    arg: 'BOOL',
    help: 'control-plane usage (true) or workload usage (false)',
  },
  { key: 'correlation_ids', flag: 'correlation-id', column: 'correlation_id', noun: 'correlation id', arg: 'ID', help: 'this correlation id' },
  { key: 'trace_ids', flag: 'trace-id', column: 'trace_id', noun: 'trace id', arg: 'ID', help: 'this trace id' },
] as const;

export type ScopeDimension = (typeof SCOPE_DIMENSIONS)[number];
export type ScopeKey = ScopeDimension['key'];
/** One list of values per dimension; an empty list does not narrow. */
export type Scope = Record<ScopeKey, string[]>;

export function emptyScope(): Scope {
  return Object.fromEntries(SCOPE_DIMENSIONS.map((d) => [d.key, []])) as unknown as Scope;
}

/** A scope with every dimension present, each list de-duplicated and sorted. */
export function normaliseScope(scope: Partial<Record<ScopeKey, readonly string[]>> | undefined): Scope {
  const out = emptyScope();
  for (const d of SCOPE_DIMENSIONS) out[d.key] = [...new Set(scope?.[d.key] ?? [])].sort();
  return out;
}

export function isNarrowed(scope: Scope): boolean {
  return SCOPE_DIMENSIONS.some((d) => scope[d.key].length > 0);
}

export function describeScope(scope: Partial<Record<ScopeKey, readonly string[]>>): string {
  const parts = SCOPE_DIMENSIONS.filter((d) => (scope[d.key]?.length ?? 0) > 0).map(
    (d) => `${d.noun} ${scope[d.key]!.join(' or ')}`,
  );
  return parts.length ? parts.join(', and ') : 'everything (not narrowed)';
}

/** `--help` lines for the scope flags, shared by audit, snapshot, diff and incident. */
export const SCOPE_OPTIONS_HELP =
  SCOPE_DIMENSIONS.map((d) => {
    const name = `--${d.flag} ${d.arg}`;
    return `  ${name.length < 24 ? name.padEnd(24) : `${name}\n${' '.repeat(26)}`}narrow to ${d.help}`;
  }).join('\n') +
  '\n                          (each repeatable: repeats of one flag are a union, different flags intersect;\n' +
  '                          a value found nowhere in the data is an error with the nearest existing values)';

/** The scope flags' names (`org`, `project`, ...). */
export const SCOPE_FLAGS = SCOPE_DIMENSIONS.map((d) => d.flag) as Array<ScopeDimension['flag']>;

/** The parseArgs option table of the scope flags. */
export const SCOPE_PARSE_OPTIONS = Object.fromEntries(SCOPE_DIMENSIONS.map((d) => [d.flag, { type: 'string', multiple: true }])) as {
  [D in ScopeDimension as D['flag']]: { type: 'string'; multiple: true };
};

/** The scope given on a command line (parsed by SCOPE_PARSE_OPTIONS). */
export function scopeFromArgs(values: Partial<Record<string, unknown>>): Scope {
  const out = emptyScope();
  for (const d of SCOPE_DIMENSIONS) {
    const v = values[d.flag];
    if (Array.isArray(v)) out[d.key] = v.map(String);
  }
  return normaliseScope(out);
}

/** Text the contract accepts for a boolean (CONTRACT.md §1), normalised to DuckDB's rendering. */
const BOOLEAN_TEXT: Record<string, 'true' | 'false'> = { true: 'true', t: 'true', '1': 'true', false: 'false', f: 'false', '0': 'false' };

/** A scope value no row carries, with the nearest values that exist. */
export interface Unmatched {
  value: string;
  near: string[];
}

/** How many near values "did you mean" offers. */
export const SUGGESTIONS = 3;

/**
 * For each given value not among `valuesSql` (a query with one VARCHAR column `v`), the nearest
 * existing values, computed in DuckDB so the ids never travel to JavaScript: the same text in
 * another case alone when there is one, else by Levenshtein distance (case-insensitive) up to
 * a third of the value's length (at least 2), and values that contain it or that it contains.
 */
export async function unmatched(db: Db, valuesSql: string, given: readonly string[]): Promise<Unmatched[]> {
  const rows = await db.all<{ q: string; near: string }>(
    `WITH vals AS (SELECT DISTINCT v FROM (${valuesSql}) WHERE v IS NOT NULL),
          given AS (SELECT DISTINCT unnest($given::VARCHAR[]) AS q),
          missing AS (SELECT q FROM given WHERE q NOT IN (SELECT v FROM vals)),
          scored AS (
            SELECT m.q, v.v, CASE WHEN lower(v.v) = lower(m.q) THEN 0 ELSE levenshtein(lower(v.v), lower(m.q)) END AS d,
                   contains(lower(v.v), lower(m.q)) OR contains(lower(m.q), lower(v.v)) AS contained
            FROM missing m CROSS JOIN vals v),
          near AS (
            SELECT q, v, d, min(d) OVER (PARTITION BY q) AS best FROM scored
            WHERE d <= greatest(2, length(q) // 3) OR (contained AND length(q) >= 2)),
          -- the same id in another case is the answer; other near ids would only distract
          ranked AS (SELECT q, v, row_number() OVER (PARTITION BY q ORDER BY d, v) AS rn FROM near WHERE best > 0 OR d = 0)
     SELECT m.q, to_json(coalesce((SELECT list(r.v ORDER BY r.rn) FROM ranked r WHERE r.q = m.q AND r.rn <= $n), []))::VARCHAR AS near
     FROM missing m ORDER BY m.q`,
    { given: listValue([...given]), n: SUGGESTIONS },
  );
  return rows.map((r) => ({ value: r.q, near: JSON.parse(r.near) as string[] }));
}

function problem(command: string, d: ScopeDimension, value: string, near: readonly string[], where: string): string {
  const hint = near.length ? `; did you mean ${near.map((n) => JSON.stringify(n)).join(' or ')}?` : '';
  return `recon ${command}: --${d.flag} ${JSON.stringify(value)} matches nothing ${where}${hint}`;
}

/**
 * Checks every scope value against the exports: a value that no row carries (a typo such as
 * `--org org_A` for `org_a`) would give a clean pass over nothing, so it is a UsageError (exit
 * 2) naming the nearest existing values. Booleans are normalised to `true`/`false`.
 */
export async function validateScopeAgainstExports(
  find: (key: ScopeKey, values: readonly string[]) => Promise<Unmatched[]>,
  scope: Scope,
  command: string,
): Promise<Scope> {
  const out = normaliseScope(scope);
  const problems: string[] = [];
  for (const d of SCOPE_DIMENSIONS) {
    if (out[d.key].length === 0) continue;
    if (d.key === 'control_plane_components') {
      const bad = out[d.key].filter((v) => BOOLEAN_TEXT[v.toLowerCase()] === undefined);
      for (const v of bad) problems.push(`recon ${command}: --${d.flag} ${JSON.stringify(v)} is not a boolean; did you mean "true" or "false"?`);
      if (bad.length) continue;
      out[d.key] = [...new Set(out[d.key].map((v) => BOOLEAN_TEXT[v.toLowerCase()]!))].sort();
    }
    for (const m of await find(d.key, out[d.key])) problems.push(problem(command, d, m.value, m.near, 'in the exports'));
  }
  if (problems.length) throw new UsageError(problems.join('\n'));
  return out;
}

/**
 * The same check against a table shaped like `violations` (a diff has no exports, only the
 * violations of its two sides).
 */
export async function validateScopeAgainstViolations(db: Db, scope: Scope, tables: readonly string[], command: string): Promise<Scope> {
  const out = normaliseScope(scope);
  const problems: string[] = [];
  for (const d of SCOPE_DIMENSIONS) {
    if (out[d.key].length === 0) continue;
    if (d.key === 'control_plane_components') {
      out[d.key] = [...new Set(out[d.key].map((v) => BOOLEAN_TEXT[v.toLowerCase()] ?? v))].sort();
    }
    const valuesSql = tables.map((t) => `SELECT "${d.column}"::VARCHAR AS v FROM ${t}`).join(' UNION ALL ');
    for (const m of await unmatched(db, valuesSql, out[d.key])) problems.push(problem(command, d, m.value, m.near, 'in the violations of either side'));
  }
  if (problems.length) throw new UsageError(problems.join('\n'));
  return out;
}

/**
 * Narrows a violations-shaped table to the scope, in DuckDB. A row that could not be read
 * (`source_row`) may belong to anyone, so it stays in every scope, and under `--org` so does a
 * violation naming no tenant: a scoped run must never pass because the evidence against it
 * could not be attributed.
 */
export async function applyScopeTo(db: Db, table: string, scope: Scope): Promise<void> {
  for (const d of SCOPE_DIMENSIONS) {
    const values = scope[d.key];
    if (values.length === 0) continue;
    const keep = [`entity_type = 'source_row'`, ...(d.key === 'orgs' ? ['org_id IS NULL'] : []), `coalesce(list_contains($v, "${d.column}"::VARCHAR), false)`];
    await db.run(`DELETE FROM ${table} WHERE NOT (${keep.join(' OR ')})`, { v: listValue([...values]) });
  }
}

/**
 * A scope as written into findings.json and manifest.json: the `always` dimensions as (possibly
 * empty) lists, every other one only when it narrows, so earlier readers see what they knew.
 */
export function scopeRecord(scope: Scope, always: readonly ScopeKey[]): Partial<Record<ScopeKey, string[]>> {
  const out: Partial<Record<ScopeKey, string[]>> = {};
  for (const d of SCOPE_DIMENSIONS) {
    if (always.includes(d.key) || scope[d.key].length > 0) out[d.key] = [...scope[d.key]];
  }
  return out;
}

/** The ids an incident is about (`recon incident`): its correlation and trace ids, a union. */
export interface IncidentIds {
  correlationIds: readonly string[];
  traceIds: readonly string[];
}
