import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';

/**
 * The one-way flow of DESIGN.md, as a map of src/: each layer may import its own layer and the
 * layers below it, never one above, and no files may import each other in a circle. The house
 * is cut at the `violations` table: everything up to the engine knows the contract's tables;
 * findings and what reads them know only findings and violations.
 */
const LAYERS: ReadonlyArray<{ name: string; files: readonly RegExp[] }> = [
  // Helpers with no knowledge of billing: errors, exact JSON, SQL text and its dialects, the DuckDB session, hashes, the page policy.
  { name: 'base', files: [/^src\/(errors|json|version|sql|db|out-dir|package-root)\.ts$/, /^src\/shared\//, /^src\/dialect\//] },
  // What the exports and the violations table are: columns, vocabulary, instants, config.
  { name: 'contract', files: [/^src\/contract\//, /^src\/config\.ts$/] },
  // Exports (files, BigQuery, synthetic) into typed DuckDB tables.
  { name: 'sources', files: [/^src\/sources\//, /^src\/generate\//] },
  // The catalog and what it runs over: invariants, their context, scope narrowing of violations.
  { name: 'engine', files: [/^src\/catalog\//, /^src\/engine\//, /^src\/scope\.ts$/] },
  // Findings built from the violations table, read back, judged and priced.
  { name: 'findings', files: [/^src\/findings\//] },
  // Orchestration: source -> engine -> violations -> findings.
  { name: 'audit', files: [/^src\/audit\.ts$/] },
  // Everything that reads findings and violations: files, reports, snapshots, diff, incident, history.
  {
    name: 'outputs',
    files: [
      /^src\/outputs\//,
      /^src\/history\//,
      /^src\/report\//,
      /^src\/snapshot\//,
      /^src\/incident\//,
    ],
  },
  // The commands.
  { name: 'cli', files: [/^src\/cli\//] },
];

type Graph = ReadonlyMap<string, readonly string[]>;

/** The layer index of a file, or undefined when the map does not place it. */
function layerOf(file: string): number | undefined {
  const i = LAYERS.findIndex((l) => l.files.some((re) => re.test(file)));
  return i < 0 ? undefined : i;
}

/** Every import that runs from a lower layer to a higher one, as `from -> to (low -> high)`. */
function upwardImports(graph: Graph): string[] {
  const out: string[] = [];
  for (const [from, tos] of graph) {
    for (const to of tos) {
      const a = layerOf(from);
      const b = layerOf(to);
      if (a !== undefined && b !== undefined && b > a) out.push(`${from} -> ${to} (${LAYERS[a]!.name} -> ${LAYERS[b]!.name})`);
    }
  }
  return out.sort();
}

/** The import circles: strongly connected groups of two or more files, or a file importing itself (Tarjan). */
function circles(graph: Graph): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const group: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        group.push(w);
      } while (w !== v);
      if (group.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(group.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return found;
}

// An import or re-export statement, over several lines if need be, and `import('…')`.
const IMPORT = /^\s*(?:import|export)\b[^;]*?\bfrom\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.posix.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return /\.(ts|js)$/.test(e.name) ? [p] : [];
  });
}

/** The imports between files of src/, read from the code as text (package imports are left out). */
function importGraph(): { graph: Graph; unresolved: string[] } {
  const files = sourceFiles('src').sort();
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  const unresolved: string[] = [];
  for (const file of files) {
    const targets: string[] = [];
    for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
      const spec = m[1] ?? m[2] ?? m[3]!;
      if (!spec.startsWith('.')) continue;
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec));
      if (known.has(target)) targets.push(target);
      else unresolved.push(`${file} -> ${spec}`);
    }
    graph.set(file, [...new Set(targets)]);
  }
  return { graph, unresolved };
}

describe('the layers of src/', () => {
  const { graph, unresolved } = importGraph();

  test('the import reader sees the code: every relative import resolves, and the audit imports the catalog', () => {
    expect(unresolved).toEqual([]);
    expect(graph.size).toBeGreaterThan(50);
    expect(graph.get('src/audit.ts')).toContain('src/catalog/index.ts');
  });

  test('every file of src/ has a layer', () => {
    expect([...graph.keys()].filter((f) => layerOf(f) === undefined)).toEqual([]);
  });

  test('no import runs from a lower layer to a higher one', () => {
    expect(upwardImports(graph)).toEqual([]);
  });

  test('no files import each other in a circle', () => {
    expect(circles(graph)).toEqual([]);
  });
});

describe('the devDependency ZetaSQL stays out of the recon CLI', () => {
  const { graph } = importGraph();

  test('only src/sources/zetasql.ts imports it, and nothing the CLI (scripts/build.mjs bundles src/cli/main.ts) reaches imports that file', () => {
    const importers = [...graph.keys()].filter((f) => /from\s*['"]@fivetrandevelopers\/zetasql/.test(readFileSync(f, 'utf8')));
    expect(importers).toEqual(['src/sources/zetasql.ts']);
    const reached = new Set<string>();
    const visit = (f: string): void => {
      if (reached.has(f)) return;
      reached.add(f);
      for (const to of graph.get(f) ?? []) visit(to);
    };
    visit('src/cli/main.ts');
    expect(reached.has('src/sources/index.ts'), 'the walk reaches the sources').toBe(true);
    expect([...reached].filter((f) => f === 'src/sources/zetasql.ts' || f === 'src/sources/bigquery-local.ts')).toEqual([]);
  });
});

/**
 * SQL that reads a contract table: `FROM t` / `JOIN t` (quoted or not). Only the sources (which
 * load them), the catalog (the checks) and the engines (which run the checks and answer the
 * outputs' questions about the exports) may hold it; every other room reads findings and
 * `violations`, so a second engine needs no change outside src/engine/.
 */
const CONTRACT_TABLE_READ = /\b(?:FROM|JOIN)\s+"?(allocations|usage_records|ledger_entries|payment_sessions|app_instances|events|balances)\b/g;
const MAY_READ_CONTRACT_TABLES = /^src\/(sources|catalog|engine|generate)\//;

function contractTableReads(files: ReadonlyMap<string, string>): string[] {
  const out: string[] = [];
  for (const [file, text] of files) {
    if (MAY_READ_CONTRACT_TABLES.test(file)) continue;
    for (const m of text.matchAll(CONTRACT_TABLE_READ)) out.push(`${file}: ${m[0]}`);
  }
  return out.sort();
}

describe('the contract tables are read only by sources, the catalog and the engines', () => {
  test('no other file of src/ holds SQL reading one', () => {
    expect(contractTableReads(new Map(sourceFiles('src').map((f) => [f, readFileSync(f, 'utf8')])))).toEqual([]);
  });

  test('the check finds such a read in a report and lets the engine\'s pass', () => {
    const files = new Map([
      ['src/report/data.ts', 'SELECT org_id FROM usage_records WHERE end_time IS NULL'],
      ['src/findings/triage.ts', 'LEFT JOIN "ledger_entries" l ON true'],
      ['src/engine/duckdb/outputs.ts', 'SELECT * FROM usage_records'],
      ['src/outputs/files.ts', 'SELECT * FROM violations -- the usage_records are not read here'],
    ]);
    expect(contractTableReads(files)).toEqual(['src/findings/triage.ts: JOIN "ledger_entries', 'src/report/data.ts: FROM usage_records']);
  });
});

describe('the layering check itself', () => {
  test('it names an upward import (a loader importing the findings) and lets a downward one pass', () => {
    const graph: Graph = new Map([
      ['src/sources/csv.ts', ['src/findings/types.ts', 'src/contract/tables.ts']],
      ['src/report/render.ts', ['src/findings/format.ts', 'src/catalog/index.ts']],
      ['src/audit.ts', ['src/snapshot/timeline.ts']],
    ]);
    expect(upwardImports(graph)).toEqual([
      'src/audit.ts -> src/snapshot/timeline.ts (audit -> outputs)',
      'src/sources/csv.ts -> src/findings/types.ts (sources -> findings)',
    ]);
  });

  test('it finds a circle, however long, and a file importing itself', () => {
    const graph: Graph = new Map([
      ['src/snapshot/diff.ts', ['src/snapshot/render.ts']],
      ['src/snapshot/render.ts', ['src/snapshot/manifest.ts']],
      ['src/snapshot/manifest.ts', ['src/snapshot/diff.ts']],
      ['src/sql.ts', ['src/sql.ts']],
      ['src/db.ts', ['src/errors.ts']],
    ]);
    expect(circles(graph)).toEqual([['src/snapshot/diff.ts', 'src/snapshot/manifest.ts', 'src/snapshot/render.ts'], ['src/sql.ts']]);
  });

  test('it reads imports over several lines, re-exports and type-only imports', () => {
    const text = `import {\n  a,\n  b,\n} from './x.ts';\nexport { c } from '../y.ts';\nimport type { D } from './z.ts';\nconst sql = 'SELECT 1 FROM t';\n`;
    expect([...text.matchAll(IMPORT)].map((m) => m[1] ?? m[2] ?? m[3])).toEqual(['./x.ts', '../y.ts', './z.ts']);
  });

  test('a file the map does not place has no layer (so the first test above fails until it is placed)', () => {
    expect(layerOf('src/somewhere-new.ts')).toBeUndefined();
    expect(layerOf('src/cli/snapshot.ts')).toBe(LAYERS.findIndex((l) => l.name === 'cli'));
    expect(layerOf('src/snapshot/diff.ts')).toBe(LAYERS.findIndex((l) => l.name === 'outputs'));
  });
});
