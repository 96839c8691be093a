import { cp, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const CLEAN = path.resolve('fixtures/clean');

/** A fresh copy of a fixture in a temp dir, so a test can edit it without touching fixtures/. */
export async function copyFixture(fixture = CLEAN, prefix = 'recon-test-'): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  await cp(fixture, dir, { recursive: true });
  return dir;
}

export async function tempDir(prefix = 'recon-test-'): Promise<string> {
  return mkdtemp(path.join(tmpdir(), prefix));
}

/** Rewrites one file of an export with a function of its text. */
export async function editFile(dir: string, name: string, edit: (text: string) => string): Promise<void> {
  const file = path.join(dir, name);
  await writeFile(file, edit(await readFile(file, 'utf8')));
}

/** SHA-256 of every file below dir, by relative path. */
export async function hashTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = path.join(entry.parentPath, entry.name);
    out[path.relative(dir, full)] = createHash('sha256').update(await readFile(full)).digest('hex');
  }
  return out;
}

/** An export folder with the other required tables from fixtures/clean and the files given. */
export async function exportWith(files: Record<string, string | Buffer | Uint8Array>): Promise<string> {
  const dir = await tempDir('recon-export-');
  for (const t of ['allocations', 'ledger_entries', 'payment_sessions']) {
    await cp(path.join(CLEAN, `${t}.csv`), path.join(dir, `${t}.csv`));
  }
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), content);
  }
  return dir;
}
