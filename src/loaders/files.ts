import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

/** A file's bytes as a stream, decompressed when its name says gzip. */
export function openDecompressed(file: string): Readable {
  const raw = createReadStream(file);
  return file.toLowerCase().endsWith('.gz') ? raw.pipe(createGunzip()) : raw;
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}
