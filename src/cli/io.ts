import { ReconError } from '../errors.ts';
import type { LoadOptions } from '../sources/index.ts';

/** Where a command writes; tests pass their own to capture the text. */
export interface CommandIo {
  stdout: (line: string) => void;
  stderr: (line: string) => void;
}

export const defaultIo: CommandIo = {
  stdout: (line) => process.stdout.write(line + '\n'),
  stderr: (line) => process.stderr.write(line + '\n'),
};

/** Runs a command body: a ReconError (or anything unexpected) is a message on stderr and exit 2. */
export async function guarded(command: string, io: CommandIo, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    if (err instanceof ReconError) {
      io.stderr(err.message.startsWith('recon ') ? err.message : `recon ${command}: ${err.message}`);
    } else {
      io.stderr(`recon ${command}: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
    return 2;
  }
}

/** A progress line for long loads, only where a person is watching. */
export function progressReporter(): LoadOptions['onProgress'] {
  if (!process.stderr.isTTY) return undefined;
  return ({ table, file, rows, elapsedMs }) => {
    process.stderr.write(`\rloading ${table} (${file}): ${rows.toLocaleString('en-US')} rows, ${(elapsedMs / 1000).toFixed(1)}s\x1b[K`);
  };
}
