import { access, constants, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { UsageError, errorMessage } from './errors.ts';

/** What marks a folder as recon's own output, safe to replace with a new run. */
const OUTPUT_MARKERS = ['findings.json', 'manifest.json', 'diff.json'];

/** An output folder being written: files go to `dir`, and `commit` puts them in place at once. */
export interface StagedOutput {
  /** The temporary folder beside the target, where this run writes. */
  readonly dir: string;
  /** Replaces the target folder with this run's folder. */
  commit(): Promise<void>;
  /** Removes the temporary folder (a run that failed leaves the target as it was). */
  discard(): Promise<void>;
}

/**
 * Checks that `--out` can be written before any work is done, and stages the run in a hidden
 * temporary folder beside it. The folder a user opens is then always one whole run: never a
 * new findings.json beside an old run's tenant pages, never a half-written junit.xml. A run
 * that is killed leaves only its `.<name>.recon-*` folder behind, and the previous output intact.
 *
 * An existing `--out` is replaced only if it is empty or holds recon output (hidden files such
 * as `.gitkeep` are carried over), so a mistyped `--out ~` cannot wipe a folder of someone's files.
 */
export async function stageOutputFolder(outDir: string, option = '--out'): Promise<StagedOutput> {
  const target = path.resolve(outDir);
  const existing = await stat(target).catch(() => null);
  if (existing && !existing.isDirectory()) throw new UsageError(`${option} ${outDir}: exists and is not a folder`);
  if (existing) {
    const entries = await readdir(target).catch((err: unknown) => {
      throw new UsageError(`${option} ${outDir}: cannot read the folder: ${errorMessage(err)}`);
    });
    // Hidden files (a `.gitkeep` that keeps `reports/` in a checkout) are kept across runs.
    const visible = entries.filter((e) => !e.startsWith('.'));
    if (visible.length > 0 && !visible.some((e) => OUTPUT_MARKERS.includes(e))) {
      throw new UsageError(`${option} ${outDir}: the folder holds files that are not recon output; give an empty or new folder`);
    }
    await access(target, constants.W_OK).catch((err: unknown) => {
      throw new UsageError(`${option} ${outDir}: not writable: ${errorMessage(err)}`);
    });
  }
  const parent = path.dirname(target);
  let dir: string;
  try {
    await mkdir(parent, { recursive: true });
    dir = await mkdtemp(path.join(parent, `.${path.basename(target)}.recon-run-`));
  } catch (err) {
    throw new UsageError(`${option} ${outDir}: cannot write beside it in ${parent}: ${errorMessage(err)}`);
  }
  return {
    dir,
    async commit() {
      const old = existing ? await mkdtemp(path.join(parent, `.${path.basename(target)}.recon-old-`)) : null;
      if (old) {
        for (const hidden of (await readdir(target)).filter((e) => e.startsWith('.'))) {
          await rename(path.join(target, hidden), path.join(dir, hidden)).catch(() => undefined);
        }
        await rename(target, path.join(old, 'previous'));
      }
      await rename(dir, target);
      if (old) await rm(old, { recursive: true, force: true });
    },
    async discard() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}
