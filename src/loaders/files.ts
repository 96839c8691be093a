import { createReadStream } from 'node:fs';
import { Writable, type Readable } from 'node:stream';
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

/**
 * Decompresses a gzip file once to its end, so the gzip trailer (CRC-32 and length) is checked:
 * DuckDB's reader loads what it can of a truncated file and says nothing. A file cut exactly at
 * a member boundary is still a valid gzip file and cannot be told apart here.
 */
export async function verifyGzip(file: string, rel: string): Promise<void> {
  if (!isGzip(file)) return;
  const sink = new Writable({ write: (_chunk, _enc, done) => done() });
  try {
    await pipeline(createReadStream(file), createGunzip(), sink);
  } catch (err) {
    const why = errorMessage(err);
    const hint = /unexpected end/i.test(why)
      ? 'the file ends early (truncated download or copy?)'
      : /incorrect header/i.test(why)
        ? 'not gzip data, although the name ends in .gz'
        : 'corrupt gzip data';
    throw new InputError(`${rel}: ${hint}: ${why}`, { cause: err });
  }
}
