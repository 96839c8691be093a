import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test, vi } from 'vitest';
import { auditExports } from '../src/audit.ts';
import { main } from '../src/cli/main.ts';
import { parseConfig } from '../src/config.ts';
import { copyFixture, editFile, hashTree, tempDir } from './helpers/exports.ts';

/** Replaces one line (1-based, physical) of a CSV. */
function replaceLine(n: number, edit: (line: string) => string): (text: string) => string {
  return (text) => text.split('\n').map((l, i) => (i === n - 1 ? edit(l) : l)).join('\n');
}

function setField(n: number, column: number, value: string): (text: string) => string {
  return replaceLine(n, (l) => l.split(',').map((f, i) => (i === column ? value : f)).join(','));
}

const USAGE = 'usage_records.csv';
// Column positions in fixtures/clean/usage_records.csv
const START_TIME = 12;
const END_TIME = 13;
const ACCRUED = 15;

async function contractViolations(dir: string, config?: object) {
  const run = await auditExports({ exportsDir: dir, ...(config ? { config: parseConfig(config) } : {}) });
  try {
    const rows = await run.db.all<{ invariant_id: string; entity_id: string; detail: string }>(
      `SELECT invariant_id, entity_id, detail FROM violations WHERE invariant_id LIKE 'contract.%' ORDER BY ALL`,
    );
    const usageIds = (await run.db.all<{ id: string }>(`SELECT usage_record_id AS id FROM usage_records ORDER BY 1`)).map((r) => r.id);
    return { rows: rows.map((r) => ({ ...r, detail: JSON.parse(r.detail) })), usageIds, findings: run.findings };
  } finally {
    run.db.close();
  }
}

describe('rows that cannot be typed are rejected with file, line and column, and the audit goes on', () => {
  test('text in an amount (a decimal is not an integer amount of minor units)', async () => {
    const dir = await copyFixture();
    await editFile(dir, USAGE, setField(3, ACCRUED, '32.00'));
    const { rows, usageIds } = await contractViolations(dir);
    expect(rows).toEqual([
      {
        invariant_id: 'contract.rejected_row',
        entity_id: 'usage_records:usage_records.csv:3',
        detail: {
          table: 'usage_records',
          file: 'usage_records.csv',
          line: 3,
          problems: [{ column: 'accrued_cost_minor', value: '32.00', message: 'not an integer amount of minor units (or out of BIGINT range)' }],
        },
      },
    ]);
    expect(usageIds).not.toContain('ur_2');
    expect(usageIds).toHaveLength(7);
  });

  test('an impossible timestamp in a nullable column never turns a closed row into an open one', async () => {
    const dir = await copyFixture();
    await editFile(dir, USAGE, setField(3, END_TIME, '2026-02-30T07:00:00Z'));
    const { rows, usageIds } = await contractViolations(dir);
    expect(rows.map((r) => [r.invariant_id, r.entity_id, r.detail.problems[0].column])).toEqual([
      ['contract.rejected_row', 'usage_records:usage_records.csv:3', 'end_time'],
    ]);
    expect(usageIds).not.toContain('ur_2');
  });

  test('a bad timestamp in a not-null column', async () => {
    const dir = await copyFixture();
    await editFile(dir, USAGE, setField(2, START_TIME, 'yesterday'));
    const { rows } = await contractViolations(dir);
    expect(rows.map((r) => [r.entity_id, r.detail.problems])).toEqual([
      ['usage_records:usage_records.csv:2', [{ column: 'start_time', value: 'yesterday', message: expect.stringMatching(/^not a valid timestamp/) }]],
    ]);
  });

  test('a short row and a long row', async () => {
    const dir = await copyFixture();
    await editFile(dir, USAGE, (t) => replaceLine(5, (l) => l + ',extra')(replaceLine(4, (l) => l.split(',').slice(0, 10).join(','))(t)));
    const { rows, usageIds } = await contractViolations(dir);
    expect(rows.map((r) => [r.entity_id, r.detail.problems[0].message.split(':')[0]])).toEqual([
      ['usage_records:usage_records.csv:4', 'missing columns'],
      ['usage_records:usage_records.csv:5', 'too many columns'],
    ]);
    expect(usageIds).toEqual(['ur_1', 'ur_2', 'ur_5', 'ur_6', 'ur_7', 'ur_8']);
  });

  test('physical lines are counted across quoted line breaks and blank lines', async () => {
    const dir = await copyFixture();
    await editFile(dir, USAGE, (t) => {
      const withBreak = replaceLine(2, (l) => l.replace('corr-a1', '"corr-a1\nsecond line"'))(t);
      // ur_3 now starts on physical line 5; a blank line pushes it to 6.
      return setField(6, ACCRUED, 'lots')(replaceLine(4, (l) => l + '\n')(withBreak));
    });
    const { rows } = await contractViolations(dir);
    expect(rows.map((r) => r.entity_id)).toEqual(['usage_records:usage_records.csv:6']);
  });

  test('a quote inside a field is text, not the start of a quoted field, so later line numbers stay exact', async () => {
    const dir = await copyFixture();
    await editFile(dir, USAGE, (t) => setField(5, ACCRUED, 'lots')(replaceLine(2, (l) => l.replace('corr-a1', '5" gpu') + '\n')(t)));
    const { rows, usageIds } = await contractViolations(dir);
    // ur_3 was on line 4; the blank line after ur_1 moves it to 5.
    expect(rows.map((r) => r.entity_id)).toEqual(['usage_records:usage_records.csv:5']);
    expect(usageIds).toContain('ur_1');
  });

  test('a control character or an invalid UTF-8 byte rejects that row only', async () => {
    const dir = await copyFixture();
    await editFile(dir, USAGE, replaceLine(3, (l) => l.replace('corr-a2', 'corr\u0001a2')));
    const bytes = Buffer.from(await readFile(path.join(dir, USAGE)));
    const line5 = bytes.indexOf(Buffer.from('ur_4,'));
    bytes[bytes.indexOf(Buffer.from('corr-b5'), line5)] = 0xff;
    await writeFile(path.join(dir, USAGE), bytes);
    const { rows, usageIds } = await contractViolations(dir);
    expect(rows.map((r) => [r.entity_id, r.detail.problems[0].message.split(':')[0]])).toEqual([
      ['usage_records:usage_records.csv:5', 'invalid encoding'],
    ]);
    expect(usageIds).toEqual(['ur_1', 'ur_2', 'ur_3', 'ur_5', 'ur_6', 'ur_7', 'ur_8']);
  });

  test('an extra column named rowid is kept and ignored', async () => {
    const dir = await copyFixture();
    await editFile(dir, USAGE, (t) => t.trimEnd().split('\n').map((l, i) => `${l},${i === 0 ? 'rowid' : i}`).join('\n') + '\n');
    const { rows, usageIds } = await contractViolations(dir);
    expect(rows).toEqual([]);
    expect(usageIds).toHaveLength(8);
  });

  test('an unknown enum value, a bad currency and a negative amount are invalid values of that row', async () => {
    const dir = await copyFixture();
    await editFile(dir, USAGE, (t) => setField(4, 1, 'gpu')(setField(4, 16, 'euro')(setField(5, ACCRUED, '-5')(t))));
    const { rows } = await contractViolations(dir);
    expect(rows.map((r) => [r.invariant_id, r.entity_id, r.detail.problems.map((p: { column: string }) => p.column)])).toEqual([
      ['contract.invalid_value', 'ur_3', ['usage_source', 'currency']],
      ['contract.invalid_value', 'ur_4', ['accrued_cost_minor']],
    ]);
  });

  test('a duplicate key is reported once, with every location', async () => {
    const dir = await copyFixture();
    await editFile(dir, 'ledger_entries.csv', (t) => t + t.split('\n')[7] + '\n');
    const { rows } = await contractViolations(dir);
    expect(rows.map((r) => [r.invariant_id, r.entity_id, r.detail])).toEqual([
      ['contract.duplicate_key', 'le_7', { table: 'ledger_entries', count: 2, locations: ['ledger_entries.csv:8', 'ledger_entries.csv:10'] }],
    ]);
  });

  test('a header-only file is an empty table, not an error', async () => {
    const dir = await copyFixture();
    await editFile(dir, USAGE, (t) => t.split('\n')[0] + '\n');
    const { rows, usageIds, findings } = await contractViolations(dir);
    expect(rows).toEqual([]);
    expect(usageIds).toEqual([]);
    expect(findings.inputs.find((i) => i.table === 'usage_records')).toMatchObject({ rows: 0, rejected_rows: 0 });
  });

  test('NDJSON: a broken line and a non-object line are rejected with their line numbers', async () => {
    const dir = await copyFixture();
    await rm(path.join(dir, 'events.csv'));
    await writeFile(
      path.join(dir, 'events.ndjson'),
      ['{"event_id":"ev_1","event_type":"provisioning.active","occurred_at":"2026-11-20 08:05:00 UTC","allocation_id":"alloc_1"}', '', '{"event_id": "ev_2", broken', '[1, 2]', '{"event_id":"ev_3","occurred_at":"not a time"}'].join('\n') + '\n',
    );
    const { rows } = await contractViolations(dir);
    expect(rows.map((r) => [r.entity_id, r.detail.problems.map((p: { message: string }) => p.message)])).toEqual([
      ['events:events.ndjson:3', ['invalid JSON']],
      ['events:events.ndjson:4', ['not a JSON object']],
      ['events:events.ndjson:5', [expect.stringMatching(/^not a valid timestamp/)]],
    ]);
  });

  test('column names from the config are mapped onto the canonical ones', async () => {
    const dir = await copyFixture();
    await editFile(dir, USAGE, replaceLine(1, (l) => l.replace('accrued_cost_minor', 'cost_cents')));
    const { rows, usageIds } = await contractViolations(dir, { columns: { usage_records: { accrued_cost_minor: 'cost_cents' } } });
    expect(rows).toEqual([]);
    expect(usageIds).toHaveLength(8);
  });
});

describe('an audit that cannot run exits 2 and says why', () => {
  async function cli(args: string[]) {
    const errors: string[] = [];
    const err = vi.spyOn(console, 'error').mockImplementation((m: unknown) => void errors.push(String(m)));
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      return { code: await main(args), stderr: errors.join('\n') };
    } finally {
      err.mockRestore();
      log.mockRestore();
    }
  }

  test('a missing column names the file and the column', async () => {
    const dir = await copyFixture();
    await editFile(dir, 'payment_sessions.csv', (t) => t.split('\n').map((l) => l.split(',').filter((_, i) => i !== 7).join(',')).join('\n'));
    const { code, stderr } = await cli(['audit', '--exports', dir, '--out', await tempDir()]);
    expect(code).toBe(2);
    expect(stderr).toBe('recon: payment_sessions.csv: payment_sessions is missing column "currency"');
  });

  test('a missing required table', async () => {
    const dir = await copyFixture();
    await rm(path.join(dir, 'ledger_entries.csv'));
    const { code, stderr } = await cli(['audit', '--exports', dir, '--out', await tempDir()]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/required table missing: ledger_entries \(expected e\.g\. ledger_entries\.csv/);
  });

  test('an empty file', async () => {
    const dir = await copyFixture();
    await writeFile(path.join(dir, USAGE), '');
    const { code, stderr } = await cli(['audit', '--exports', dir, '--out', await tempDir()]);
    expect(code).toBe(2);
    expect(stderr).toBe('recon: usage_records.csv: empty file: no header line naming the usage_records columns');
  });

  test('two column names that differ only in case', async () => {
    const dir = await copyFixture();
    await editFile(dir, USAGE, replaceLine(1, (l) => l.replace('trace_id', 'Currency')));
    const { code, stderr } = await cli(['audit', '--exports', dir, '--out', await tempDir()]);
    expect(code).toBe(2);
    expect(stderr).toBe('recon: usage_records.csv: line 1, column 19: duplicate column name "Currency"');
  });

  test('two sources for one table are ambiguous', async () => {
    const dir = await copyFixture();
    await writeFile(path.join(dir, 'usage_records.ndjson'), '');
    const { code, stderr } = await cli(['audit', '--exports', dir, '--out', await tempDir()]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/more than one source for table usage_records: usage_records\.(csv|ndjson), usage_records\.(csv|ndjson)/);
  });

  test('a bad config names the file and the field', async () => {
    const dir = await tempDir();
    const config = path.join(dir, 'recon.config.json');
    await writeFile(config, JSON.stringify({ thresholds: { billing_lag_minutes: -1 }, columns: { usage_records: { cost: 'x' } }, severity: { 'no.such': 'warn' } }));
    const { code, stderr } = await cli(['audit', '--exports', 'fixtures/clean', '--config', config, '--out', path.join(dir, 'out')]);
    expect(code).toBe(2);
    expect(stderr).toContain(`${config}: columns.usage_records.cost: unknown column of usage_records`);
    expect(stderr).toContain(`${config}: thresholds.billing_lag_minutes: Too small`);
  });

  test('unknown invariant ids in severity overrides', async () => {
    const dir = await tempDir();
    const config = path.join(dir, 'recon.config.json');
    await writeFile(config, JSON.stringify({ severity: { 'no.such': 'warn' } }));
    const { code, stderr } = await cli(['audit', '--exports', 'fixtures/clean', '--config', config, '--out', path.join(dir, 'out')]);
    expect(code).toBe(2);
    expect(stderr).toBe(`recon: invalid config ${config}:\n  ${config}: severity.no.such: unknown invariant`);
  });

  test('a bad --as-of', async () => {
    const { code, stderr } = await cli(['audit', '--exports', 'fixtures/clean', '--as-of', 'tomorrow', '--out', await tempDir()]);
    expect(code).toBe(2);
    expect(stderr).toBe('recon: --as-of: "tomorrow" is not an ISO-8601 instant (e.g. 2026-11-20T12:00:00Z)');
  });
});

test('loading never modifies or moves an input file', async () => {
  const dir = await copyFixture();
  await editFile(dir, USAGE, setField(3, END_TIME, 'garbage'));
  const before = await hashTree(dir);
  const run = await auditExports({ exportsDir: dir });
  run.db.close();
  expect(await hashTree(dir)).toEqual(before);
});
