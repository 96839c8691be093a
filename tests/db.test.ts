import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, test } from 'vitest';
import { auditOptionsFrom } from '../src/cli/main.ts';
import { Db, defaultMemoryLimit } from '../src/db.ts';

const GiB = 2 ** 30;

test('the default memory limit is a quarter of RAM, between 512 MiB and 2 GiB', () => {
  expect(defaultMemoryLimit(24 * GiB)).toBe('2048MB');
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

test('--memory-limit takes a size, and refuses anything else before loading', () => {
  expect(auditOptionsFrom('audit', { exports: 'x', 'memory-limit': '4GB', 'temp-dir': '/var/tmp' }).memory).toEqual({ memoryLimit: '4GB', tempDir: '/var/tmp' });
  expect(() => auditOptionsFrom('audit', { exports: 'x', 'memory-limit': 'lots' })).toThrow('--memory-limit: "lots" is not a size such as 512MB or 4GB');
});
