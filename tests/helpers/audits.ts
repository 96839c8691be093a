import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { auditExports, type AuditOptions, type AuditRun } from '../../src/audit.ts';
import { toViolation } from '../../src/findings/io.ts';
import type { InvariantResult, Violation } from '../../src/findings/types.ts';

export const fixture = (name: string) => path.resolve('fixtures', name);

/**
 * Audits each named export once for a whole test file (in parallel, before the tests) and gives
 * the tests read access to the findings and the full violations table.
 */
export function auditOnce(audits: Record<string, AuditOptions>) {
  const runs = new Map<string, AuditRun>();
  beforeAll(async () => {
    const done = await Promise.all(Object.entries(audits).map(async ([name, opts]) => [name, await auditExports(opts)] as const));
    for (const [name, audit] of done) runs.set(name, audit);
  });
  afterAll(() => {
    for (const run of runs.values()) run.db.close();
  });

  function run(name: string): AuditRun {
    const r = runs.get(name);
    if (!r) throw new Error(`audit ${name} did not run`);
    return r;
  }

  function result(name: string, id: string): InvariantResult {
    const r = run(name).findings.invariants.find((i) => i.id === id);
    if (!r) throw new Error(`${id}: no result`);
    return r;
  }

  /** Every violation of one invariant (not the capped sample), ordered by entity. */
  async function violations(name: string, id: string): Promise<Violation[]> {
    const rows = await run(name).db.all(`SELECT * FROM violations WHERE invariant_id = $id ORDER BY entity_id`, { id });
    return rows.map(toViolation);
  }

  async function entityIds(name: string, id: string): Promise<string[]> {
    return (await violations(name, id)).map((v) => v.entity_id);
  }

  async function byEntity(name: string, id: string): Promise<Map<string, Violation>> {
    return new Map((await violations(name, id)).map((v) => [v.entity_id, v]));
  }

  return { run, result, violations, entityIds, byEntity };
}
