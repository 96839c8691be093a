import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, test } from 'vitest';
import { auditOptionsFrom } from '../src/cli/main.ts';
import { Db, defaultMemoryLimit, fitsInMemory } from '../src/db.ts';

const GiB = 2 ** 30;

test('the default memory limit is a quarter of RAM, between 512 MiB and 1.5 GiB', () => {
  expect(defaultMemoryLimit(24 * GiB)).toBe('1536MB');
  expect(defaultMemoryLimit(4 * GiB)).toBe('1024MB');
  expect(defaultMemoryLimit(1 * GiB)).toBe('512MB');
});

test('a scratch database lives in a file with the limit and a spill folder, and is removed on close', async () => {
  const parent = await mkdtemp(path.join(tmpdir(), 'recon-db-test-'));
  try {
    const db = await Db.openScratch({ memoryLimit: '600MB', tempDir: parent });
    const [dir] = await readdir(parent);
    expect(db.path).toBe(path.join(parent, dir!, 'audit.duckdb'));
    const settings = await db.all<{ name: string; value: string }>(
      `SELECT name, value FROM duckdb_settings() WHERE name IN ('memory_limit', 'temp_directory') ORDER BY name`,
    );
    expect(settings.map((s) => s.name)).toEqual(['memory_limit', 'temp_directory']);
    expect(settings[0]!.value).toMatch(/^5\d\d\.\d MiB$/);
    expect(settings[1]!.value).toBe(path.join(parent, dir!, 'spill'));
    await db.run('CREATE TABLE t AS SELECT range AS i FROM range(10)');
    expect(existsSync(db.path)).toBe(true);
    db.close();
    expect(await readdir(parent)).toEqual([]);
  } finally {
    await rm(parent, { recursive: true, force: true });
  }
});

test('an in-memory scratch database keeps the limit and spills beyond it into its folder, which closing removes', async () => {
  const parent = await mkdtemp(path.join(tmpdir(), 'recon-db-test-'));
  try {
    const db = await Db.openScratch({ memoryLimit: '64MB', tempDir: parent, inMemory: true });
    const [dir] = await readdir(parent);
    expect(db.path).toBe(':memory:');
    // About 160 MB of distinct text: more than twice the limit, so it must go to the spill folder.
    await db.run(`CREATE TABLE t AS SELECT md5(range::VARCHAR) || md5((range + 1)::VARCHAR) AS s FROM range(2000000)`);
    const spilled = await db.one<{ bytes: bigint }>(`SELECT sum(temporary_storage_bytes) AS bytes FROM duckdb_memory()`);
    expect(Number(spilled?.bytes)).toBeGreaterThan(0);
    expect((await readdir(path.join(parent, dir!, 'spill'))).length).toBeGreaterThan(0);
    expect(await db.one<{ n: bigint }>(`SELECT count(DISTINCT s) AS n FROM t`)).toEqual({ n: 2_000_000n });
    db.close();
    expect(await readdir(parent)).toEqual([]);
  } finally {
    await rm(parent, { recursive: true, force: true });
  }
});

test('tables are kept in memory only when they fit in half the limit', () => {
  expect(fitsInMemory(700e6, '1536MB')).toBe(true);
  expect(fitsInMemory(800e6, '1536MB')).toBe(false);
  expect(fitsInMemory(500 * 2 ** 20, '1GiB')).toBe(true);
  expect(fitsInMemory(1, 'not a size')).toBe(false);
});

test('--memory-limit takes a size, and refuses anything else before loading', () => {
  expect(auditOptionsFrom('audit', { exports: 'x', 'memory-limit': '4GB', 'temp-dir': '/var/tmp' }).memory).toEqual({ memoryLimit: '4GB', tempDir: '/var/tmp' });
  expect(() => auditOptionsFrom('audit', { exports: 'x', 'memory-limit': 'lots' })).toThrow('--memory-limit: "lots" is not a size such as 512MB or 4GB');
});
