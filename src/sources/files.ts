import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { InputError, errorMessage } from '../errors.ts';

function isGzip(file: string): boolean {
  return file.toLowerCase().endsWith('.gz');
}

/**
 * A file's bytes as a stream, decompressed when its name says gzip. A read or gunzip error is
 * forwarded to the returned stream, so a consumer sees it instead of an unhandled 'error' event.
 */
export function openDecompressed(file: string): Readable {
  const raw = createReadStream(file);
  if (!isGzip(file)) return raw;
  const gunzip = createGunzip();
  raw.on('error', (err) => gunzip.destroy(err));
  return raw.pipe(gunzip);
}

function gzipError(rel: string, err: unknown): InputError {
  const why = errorMessage(err);
  const hint = /unexpected end/i.test(why)
    ? 'the file ends early (truncated download or copy?)'
    : /incorrect header/i.test(why)
      ? 'not gzip data, although the name ends in .gz'
      : 'corrupt gzip data';
  return new InputError(`${rel}: ${hint}: ${why}`, { cause: err });
}

/** What one byte pass over a file learns: its hash and how its (decompressed) text breaks into lines. */
export interface FileScan {
  /** Of the bytes on disk, compressed or not. */
  readonly sha256: string;
  /** Physical lines: line feeds, plus one for a last line without a line feed. */
  readonly lines: number;
  /** A carriage return not followed by a line feed: a line break to some readers, not to us. */
  readonly loneCr: boolean;
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * Hashes a file and counts its physical lines in one read, checking a gzip file's trailer on the
 * way. It runs beside DuckDB's read of the same file, so a clean file
 * costs one pass of DuckDB and one overlapping pass here instead of three in a row.
 */
export async function scanFile(file: string, rel: string): Promise<FileScan> {
  const hash = createHash('sha256');
  let lines = 0;
  let lastByte = -1;
  let loneCr = false;
  let crPending = false;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  const counter = new Writable({
    write(chunk: Buffer, _enc, done) {
      if (chunk.length === 0) return done();
      if (crPending && chunk[0] !== LF) loneCr = true;
      for (let i = chunk.indexOf(LF); i !== -1; i = chunk.indexOf(LF, i + 1)) lines++;
      if (!loneCr) {
        for (let i = chunk.indexOf(CR); i !== -1 && i + 1 < chunk.length; i = chunk.indexOf(CR, i + 1)) {
          if (chunk[i + 1] !== LF) {
            loneCr = true;
            break;
          }
        }
      }
      lastByte = chunk[chunk.length - 1]!;
      crPending = lastByte === CR;
      done();
    },
  });
  try {
    if (isGzip(file)) await pipeline(createReadStream(file), tap, createGunzip(), counter);
    else await pipeline(createReadStream(file), tap, counter);
  } catch (err) {
    throw isGzip(file) && !(err as NodeJS.ErrnoException).syscall ? gzipError(rel, err) : err;
  }
  return { sha256: hash.digest('hex'), lines: lines + (lastByte !== -1 && lastByte !== LF ? 1 : 0), loneCr: loneCr || crPending };
}
