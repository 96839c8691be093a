import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, expect } from 'vitest';
import { auditExports } from '../src/audit.ts';
import {
  DRIFT_KINDS,
  generateExports,
  type DriftKind,
  type ExportFormat,
  type GenerateOptions,
} from '../src/generate/index.ts';

/**
 * The generator and the audit check each other: for many seeded worlds with a random mix of
 * drift, the audit's violations must be exactly the ones the generator recorded — nothing
 * missed, nothing extra (a clean entity reported is a false positive of the audit or a drift
 * footprint the generator failed to record).
 */

const AS_OF = '2026-11-20T12:00:00Z';

/** mulberry32: a tiny seeded PRNG, so each case's parameters are reproducible from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Case {
  seed: number;
  format: ExportFormat;
  usageRows: number;
  tenants: number;
  inject: Partial<Record<DriftKind, number>>;
}

function caseFor(seed: number): Case {
  const rand = prng(seed);
  const format: ExportFormat = seed % 5 === 3 ? 'parquet' : seed % 5 === 4 ? 'ndjson' : 'csv';
  const inject: Partial<Record<DriftKind, number>> = {};
  for (const kind of DRIFT_KINDS) if (rand() < 0.5) inject[kind] = 1 + Math.floor(rand() * 2);
  return { seed, format, usageRows: 300 + Math.floor(rand() * 300), tenants: 2 + Math.floor(rand() * 6), inject };
}

/**
 * Inserts `count` unreadable rows into one generated text file at places drawn from `rand`, each
 * with an id of its own so it could not collide with a real row: a fraction amount, an impossible
 * date, an offset beyond ±18:00, a row with too few fields (CSV) or a broken object (NDJSON).
 * Returns the entity id each must be reported under (`table:file:line`, its physical line).
 */
async function sprinkleBadRows(dir: string, table: 'usage_records' | 'ledger_entries', format: 'csv' | 'ndjson', count: number, rand: () => number): Promise<string[]> {
  const file = `${table}.${format}`;
  const lines = (await readFile(join(dir, file), 'utf8')).split('\n');
  const trailing = lines.at(-1) === '' ? lines.pop() : undefined;
  const [idCol, amountCol, timeCol] = table === 'usage_records' ? ['usage_record_id', 'accrued_cost_minor', 'start_time'] : ['ledger_entry_id', 'amount_minor', 'created_at'];
  const header = format === 'csv' ? lines[0]!.split(',') : undefined;
  const template = lines[1]!;
  const badRow = (n: number): string => {
    const edits: Array<Record<string, string>> = [
      { [amountCol]: '12.5' },
      { [timeCol]: '2026-02-30T10:00:00Z' },
      { [timeCol]: '2026-11-13T10:00:00+25:00' },
      { [amountCol]: '1e3' },
    ];
    const id = `${table}_sprinkled_${n}`;
    if (n % 5 === 4) return format === 'csv' ? `${id},short` : `{"${idCol}": "${id}", `;
    const edit = { [idCol]: id, ...edits[n % 5]! };
    if (format === 'ndjson') return JSON.stringify({ ...(JSON.parse(template) as object), ...edit });
    // The generated rows quote nothing, so a plain split is the record's fields.
    const fields = template.split(',');
    header!.forEach((name, i) => {
      if (name in edit) fields[i] = edit[name]!;
    });
    return fields.join(',');
  };
  const at = new Set<number>();
  while (at.size < count) at.add(1 + Math.floor(rand() * (lines.length - 1)));
  const out: string[] = [lines[0]!];
  const ids: string[] = [];
  let n = 0;
  lines.slice(1).forEach((line, i) => {
    if (at.has(i + 1)) {
      out.push(badRow(n++));
      ids.push(`${table}:${file}:${out.length}`);
    }
    out.push(line);
  });
  await writeFile(join(dir, file), out.join('\n') + (trailing !== undefined ? '\n' : ''));
  return ids;
}

async function auditAgainstExpected(opts: Omit<GenerateOptions, 'outDir'>, sprinkle?: { count: number }) {
  const outDir = await mkdtemp(join(tmpdir(), 'recon-property-'));
  const generated = await generateExports({ ...opts, outDir });
  const rejected: string[] = [];
  if (sprinkle) {
    const format = opts.format ?? 'csv';
    if (format === 'parquet') throw new Error('bad rows are sprinkled into text exports only');
    const rand = prng(opts.seed ?? 0);
    for (const table of ['usage_records', 'ledger_entries'] as const) rejected.push(...(await sprinkleBadRows(outDir, table, format, sprinkle.count, rand)));
  }
  const run = await auditExports({ exportsDir: outDir });
  try {
    const rows = await run.db.all<{ invariant_id: string; entity_id: string; detail: string }>(
      `SELECT invariant_id, entity_id, any_value(detail) AS detail FROM violations GROUP BY ALL ORDER BY ALL`,
    );
    const expected = new Map<string, string>([
      ...generated.expected.map((e) => [`${e.invariant_id} ${e.entity_id}`, e.kind] as const),
      ...rejected.map((id) => [`contract.rejected_row ${id}`, 'a sprinkled bad row'] as const),
    ]);
    const reported = new Set(rows.map((r) => `${r.invariant_id} ${r.entity_id}`));
    return {
      as_of: run.findings.as_of,
      not_run: run.findings.invariants.filter((i) => i.status === 'skipped' || i.error !== undefined).map((i) => `${i.id}: ${i.error ?? i.skipped_reason}`),
      unexpected: rows.filter((r) => !expected.has(`${r.invariant_id} ${r.entity_id}`)).map((r) => `${r.invariant_id} ${r.entity_id} ${r.detail}`),
      missing: [...expected].filter(([k]) => !reported.has(k)).map(([k, kind]) => `${k} (injected by ${kind})`).sort(),
    };
  } finally {
    run.db.close();
  }
}

const CLEAN = { as_of: AS_OF, not_run: [], unexpected: [], missing: [] };

/**
 * 6 seeded worlds by default keep `npm test` quick: every format appears among them, and the
 * test below injects every drift kind at once; RECON_PROPERTY_CASES=200 sweeps further, e.g. in
 * a nightly job.
 */
const CASES = Number(process.env['RECON_PROPERTY_CASES'] ?? 6);

// Concurrent: DuckDB computes off the JS thread, so overlapping cases keeps both cores busy.
test.concurrent.for(Array.from({ length: CASES }, (_, i) => caseFor(i + 1)))(
  'seed $seed: $format world, the audit finds exactly the injected drift',
  async (c, { expect }) => {
    const outcome = await auditAgainstExpected({ seed: c.seed, format: c.format, usageRows: c.usageRows, tenants: c.tenants, inject: c.inject });
    expect(outcome, `seed ${c.seed}, ${c.format}, ${c.usageRows} rows, ${c.tenants} tenants, inject ${JSON.stringify(c.inject)}`).toEqual(CLEAN);
  },
);

test('every drift kind at once, the audit finds exactly the injected drift', async () => {
  const inject = Object.fromEntries(DRIFT_KINDS.map((k) => [k, 1]));
  expect(await auditAgainstExpected({ seed: 101, usageRows: 800, tenants: 6, inject })).toEqual(CLEAN);
});

test('a clean world passes every invariant', async () => {
  expect(await auditAgainstExpected({ seed: 102, usageRows: 800, tenants: 6 })).toEqual(CLEAN);
});

/**
 * The same worlds with unreadable rows sprinkled into usage and the ledger: every drift is still
 * found, and each bad row is reported on its own physical line, with nothing else lost.
 */
test.concurrent.for([
  { seed: 201, format: 'csv' as const },
  { seed: 202, format: 'ndjson' as const },
])('seed $seed: $format world with bad rows sprinkled in, each reported on its line', async ({ seed, format }, { expect }) => {
  const inject = Object.fromEntries(DRIFT_KINDS.map((k) => [k, 1]));
  expect(await auditAgainstExpected({ seed, format, usageRows: 600, tenants: 5, inject }, { count: 5 })).toEqual(CLEAN);
});
