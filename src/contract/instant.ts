import { UsageError } from '../errors.ts';

/**
 * The text renderings the contract accepts for an instant: ISO-8601 with `Z` or an offset,
 * `YYYY-MM-DD HH:MM:SS[.ffffff]`, and the same followed by ` UTC` (BigQuery's CSV/JSON
 * rendering). Anything else (a bare date, `garbage`, Feb 30th) is rejected, never guessed.
 */
// An offset is at most ±18:00 with minutes below 60: DuckDB reads `+25:00` and `+05:99` by
// shifting the instant instead of refusing them.
export const TIMESTAMP_TEXT = String.raw`\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]| ?[+-](0\d|1[0-8])(:?[0-5]\d)?| UTC)?`;

const PARTS = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|([+-])(\d{2})(?::?(\d{2}))?| UTC)?$/;

function daysIn(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

const pad = (n: number, width: number) => String(n).padStart(width, '0');

/**
 * A command-line instant (`--as-of`, `--since`, `--until`) read by the loaders' rule, so an audit
 * time is accepted exactly when the same text in an export would be: TIMESTAMP_TEXT as DuckDB
 * then reads it (no zone is UTC, `24:00:00` is the next midnight, digits beyond microseconds are
 * cut; a lower-case `z` or a blank before an offset is refused). Returns the instant as the
 * findings write instants (ISO-8601 UTC, microseconds only when it has them). Pure, so a bad
 * value is refused before anything loads.
 */
export function parseInstant(text: string, flag: string): string {
  const bad = () => new UsageError(`${flag}: "${text}" is not an ISO-8601 instant (e.g. 2026-11-20T12:00:00Z)`);
  const m = PARTS.exec(text);
  if (!m || !new RegExp(`^(?:${TIMESTAMP_TEXT})$`).test(text)) throw bad();
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const fraction = (m[7] ?? '').padEnd(9, '0');
  const micros = Number(fraction.slice(0, 6));
  const midnightAfter = hour === 24 && minute === 0 && second === 0 && /^0*$/.test(fraction);
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || (hour > 23 && !midnightAfter) || minute > 59 || second > 59) throw bad();
  const offsetMinutes = m[9] ? (m[9] === '-' ? -1 : 1) * (Number(m[10]) * 60 + Number(m[11] ?? 0)) : 0;
  const at = new Date(0);
  at.setUTCFullYear(year, month - 1, day);
  at.setUTCHours(hour, minute - offsetMinutes, second, 0);
  const date = `${pad(at.getUTCFullYear(), 4)}-${pad(at.getUTCMonth() + 1, 2)}-${pad(at.getUTCDate(), 2)}`;
  const time = `${pad(at.getUTCHours(), 2)}:${pad(at.getUTCMinutes(), 2)}:${pad(at.getUTCSeconds(), 2)}`;
  return `${date}T${time}${micros ? `.${pad(micros, 6)}` : ''}Z`;
}
