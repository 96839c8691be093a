import { execFile } from 'node:child_process';
import { readFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test, vi } from 'vitest';
import { sourcesDigest as digest } from '../scripts/sources.mjs';
import { tempDir } from './helpers/exports.ts';

const exec = promisify(execFile);
const ROOT = path.resolve('.');

describe('the bundled CLI', () => {
  test('is built from exactly the sources in this checkout (npm test and npm ci rebuild it)', async () => {
    const built = (await readFile(path.join(ROOT, 'dist', 'sources.sha256'), 'utf8')).trim();
    expect(built).toBe(digest(ROOT));
  });

  test('the sources digest changes with any TypeScript file under src/, its name or its content, and nothing else', async () => {
    const root = await tempDir('recon-digest-');
    await mkdir(path.join(root, 'src', 'deep'), { recursive: true });
    await writeFile(path.join(root, 'src', 'a.ts'), 'export const a = 1;\n');
    await writeFile(path.join(root, 'src', 'deep', 'b.ts'), 'export const b = 2;\n');
    const first = digest(root);
    await writeFile(path.join(root, 'src', 'deep', 'notes.md'), 'not code\n');
    expect(digest(root)).toBe(first);
    await writeFile(path.join(root, 'src', 'deep', 'b.ts'), 'export const b = 3;\n');
    const edited = digest(root);
    expect(edited).not.toBe(first);
    await writeFile(path.join(root, 'src', 'deep', 'b.ts'), 'export const b = 2;\n');
    expect(digest(root)).toBe(first);
    await writeFile(path.join(root, 'src', 'c.ts'), '');
    expect(digest(root)).not.toBe(first);
  });

  test('runs: its explain prints exactly what the modules it was built from print', async () => {
    const { stdout } = await exec('node', ['bin/recon.js', 'explain', 'ledger.duplicate_debit']);
    const { main } = await import('../src/cli.ts');
    const said: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((m: unknown) => void said.push(`${String(m)}\n`));
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(((chunk: unknown) => said.push(String(chunk)) > 0) as typeof process.stdout.write);
    try {
      expect(await main(['explain', 'ledger.duplicate_debit'])).toBe(0);
    } finally {
      log.mockRestore();
      write.mockRestore();
    }
    expect(stdout).toContain('ledger.duplicate_debit');
    expect(stdout).toBe(said.join(''));
  });
});
