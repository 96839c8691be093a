import { stringify } from 'lossless-json';
import { parseExact } from '../json.ts';
import type { Findings, Violation } from './types.ts';

/** findings.json: bigints are written as JSON integers, never as floats or strings. */
export function findingsJson(findings: Findings): string {
  return stringify(findings, null, 2) + '\n';
}

/** Reads findings.json back: money as bigint, counts as numbers. */
export function parseFindings(text: string): Findings {
  return parseExact(text) as Findings;
}

/**
 * A row of a violations table (the audit's, or a violations.parquet read back) as a Violation.
 * `detail` is parsed by the one exact reader of findings (money as bigint, no digit lost); a
 * detail that is not JSON (a hand-edited violations file) stays text rather than failing the read.
 */
export function toViolation(row: Record<string, unknown>): Violation {
  const v = { ...row } as unknown as Violation;
  const detail = row['detail'];
  if (typeof detail === 'string') {
    try {
      v.detail = parseExact(detail);
    } catch {
      v.detail = detail;
    }
  }
  return v;
}
