import { createHash } from 'node:crypto';
import { isAbsolute, relative, resolve, sep } from 'node:path';

/** Longest slug kept from an id; the hash suffix keeps truncated ids apart. */
const SLUG_MAX = 48;
/** 16 hex digits = 64 bits of SHA-256: no collision among any realistic number of tenants. */
const HASH_HEX = 16;
/** Longest id used as a file name as it is. */
const BARE_MAX = 64;

/** Names Windows reserves whatever the extension (`con.html` cannot be created there). */
const RESERVED = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\.|$)/;
const HASHED = new RegExp(`-[0-9a-f]{${HASH_HEX}}$`);

/**
 * Whether an id is a safe, portable file name as it is (CONTRACT.md §4: `orgs/org_8.html`):
 * lower-case ASCII letters, digits, `_`, `-` and single dots inside, at most 64 characters, not a
 * name Windows reserves, and not shaped like a hashed name (`…-` + 16 hex digits), so a bare id
 * can never be the file of another id. Lower case only: on a case-insensitive file system
 * `Org_8.html` and `org_8.html` are one file, so ids with capitals get the hashed form.
 */
export function isBareFileName(id: string): boolean {
  return (
    id.length <= BARE_MAX &&
    /^[a-z0-9](?:[a-z0-9_-]|\.(?!\.))*$/.test(id) &&
    !id.endsWith('.') &&
    !RESERVED.test(id) &&
    !HASHED.test(id)
  );
}

/**
 * A file name (without extension) for an entity id: the id itself where it is a safe, portable
 * file name (isBareFileName), otherwise an ASCII slug of the id that a person can still
 * recognise, truncated, plus `-` and a short SHA-256 of the exact id. Two different ids never
 * share a name, even when they differ only in case, punctuation or non-ASCII letters (which the
 * slug folds or drops), and the result can never be `.`/`..`, hidden, or contain a path separator.
 */
export function safeFileName(id: string): string {
  if (isBareFileName(id)) return id;
  const slug = id
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '') // combining marks: "Zürich" → "Zurich"
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '-') // everything else, including "." and "/", becomes a dash
    .replace(/^[-_]+|[-_]+$/g, '')
    .slice(0, SLUG_MAX)
    .replace(/[-_]+$/g, '');
  const hash = createHash('sha256').update(id, 'utf8').digest('hex').slice(0, HASH_HEX);
  return `${slug || 'id'}-${hash}`;
}

/** Thrown when a computed output path would leave the output folder. */
export class UnsafePathError extends Error {
  readonly code = 'RECON_UNSAFE_REPORT_PATH';
}

/**
 * Resolves `segments` under `root` and asserts the result stays strictly inside it, so no
 * name derived from data can write elsewhere (`..`, absolute paths, drive letters).
 */
export function resolveInside(root: string, ...segments: string[]): string {
  const base = resolve(root);
  const target = resolve(base, ...segments);
  const rel = relative(base, target);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new UnsafePathError(`report path ${JSON.stringify(segments.join('/'))} resolves outside ${base}`);
  }
  return target;
}
