import { mkdir, writeFile } from 'node:fs/promises';
import type { Config } from '../../config.ts';
import type { Engine } from '../../engine/engine.ts';
import type { Findings } from '../../findings/types.ts';
import { resolveInside } from '../paths.ts';

/** What every page builder is given: the audit, its limits, and where the pages go. */

export interface RenderInput {
  engine: Engine;
  findings: Findings;
  config: Config;
}

export interface RenderOptions {
  /** Violating rows listed per invariant on a tenant or app-instance page (default 50). */
  maxRows?: number;
  /** Tenants and app instances listed on the index (default 100); the rest are on list pages. */
  indexRows?: number;
  /** Rows per list page (default 500). */
  listPageSize?: number;
  /** Entities whose pages are built from one round of queries (default 1000: each round scans the violations once, and 100 made 10,000 tenants cost 100 scans). */
  batchSize?: number;
}

export type Limits = Required<RenderOptions>;

/** Writes pages under the output folder, never outside it, and remembers what it wrote. */
export class Writer {
  readonly files: string[] = [];
  readonly dirs = new Set<string>();
  constructor(readonly outDir: string) {}

  async write(rel: string[], html: string): Promise<void> {
    const path = resolveInside(this.outDir, ...rel);
    if (rel.length > 1) {
      const dir = resolveInside(this.outDir, ...rel.slice(0, -1));
      if (!this.dirs.has(dir)) {
        await mkdir(dir, { recursive: true });
        this.dirs.add(dir);
      }
    }
    await writeFile(path, html, 'utf8');
    this.files.push(path);
  }
}
