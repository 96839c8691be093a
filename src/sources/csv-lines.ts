import { openDecompressed } from './files.ts';

/**
 * Where the rows DuckDB read from a CSV really are in the file.
 *
 * DuckDB's reader keeps row order but not line numbers, and its reject table counts "logical"
 * lines (line breaks outside quotes). A row's physical line is `index + 2` (after the header)
 * until something shifts it: a blank line, a quoted field spanning lines, a rejected record.
 * `breaks` lists each shift as `[first accepted index it applies to, delta]`, so the database
 * can number millions of rows from a handful of breakpoints.
 */
export interface CsvLineMap {
  readonly breaks: ReadonlyArray<readonly [index: number, delta: number]>;
  /** Logical line (DuckDB's numbering) → physical line, for the requested rejected records. */
  readonly rejectPhysical: ReadonlyMap<number, number>;
  /** How the file's physical lines divide up (the header is always one record). */
  readonly lines: LineAccount;
  /** Records after the header that hold something: what DuckDB must have loaded or rejected. */
  readonly records: number;
  /** A quote opened on this line is never closed: every line after it was swallowed. */
  readonly unterminatedQuote?: { line: number; swallowed: number };
}

/** Every physical line of a text file is exactly one of these, so none can go unseen. */
export interface LineAccount {
  physical: number;
  header: number;
  blank: number;
  /** Lines that continue a quoted field begun on an earlier line. */
  continuation: number;
}

const NL = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const COMMA = 0x2c;

/**
 * Walks the file's bytes once with RFC 4180 quoting. Only called for files that need it (they
 * have rejected records, or more physical lines than records), so a clean export never pays.
 */
export async function mapCsvLines(file: string, rejectLogical: ReadonlySet<number>): Promise<CsvLineMap> {
  const breaks: Array<[number, number]> = [];
  const rejectPhysical = new Map<number, number>();
  let phys = 1;
  let logical = 1;
  let recPhys = 1;
  let recLogical = 1;
  let recHasContent = false;
  let headerDone = false;
  let accepted = 0;
  let records = 0;
  let blank = 0;
  let continuation = 0;
  let recordContinuation = 0;
  let lastByte = -1;
  let lastDelta = 0;
  let inQuote = false;
  let quotePending = false;
  // A quote opens a quoted field only as a field's first byte; elsewhere DuckDB reads it as text.
  let fieldStart = true;

  const endRecord = () => {
    if (!headerDone) {
      headerDone = true;
    } else if (!recHasContent) {
      blank++;
    } else {
      records++;
      if (rejectLogical.has(recLogical)) {
        rejectPhysical.set(recLogical, recPhys);
      } else {
        const delta = recPhys - (accepted + 2);
        if (delta !== lastDelta) {
          breaks.push([accepted, delta]);
          lastDelta = delta;
        }
        accepted++;
      }
    }
  };

  let first = true;
  for await (const chunk of openDecompressed(file)) {
    const buf = chunk as Buffer;
    let i = 0;
    // A UTF-8 BOM is not content: DuckDB and spreadsheets treat it as invisible.
    if (first && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) i = 3;
    first = false;
    if (quotePending) {
      quotePending = false;
      if (buf[0] === QUOTE) i = Math.max(i, 1);
      else inQuote = false;
    }
    for (; i < buf.length; i++) {
      const b = buf[i]!;
      if (inQuote) {
        if (b === QUOTE) {
          if (i + 1 === buf.length) quotePending = true;
          else if (buf[i + 1] === QUOTE) i++;
          else inQuote = false;
        } else if (b === NL) {
          phys++;
          continuation++;
          recordContinuation++;
        }
      } else if (b === NL) {
        endRecord();
        phys++;
        logical++;
        recPhys = phys;
        recLogical = logical;
        recHasContent = false;
        recordContinuation = 0;
        fieldStart = true;
      } else if (b !== CR) {
        recHasContent = true;
        if (b === QUOTE && fieldStart) inQuote = true;
        fieldStart = b === COMMA;
      }
    }
    if (buf.length > 0) lastByte = buf[buf.length - 1]!;
  }
  // A final line break ends the last line; it does not start an empty one.
  const physical = lastByte === NL || lastByte === -1 ? phys - 1 : phys;
  if (lastByte !== NL || inQuote) endRecord();
  const account = { physical, header: Math.min(1, physical), blank, continuation };
  if (!inQuote) return { breaks, rejectPhysical, lines: account, records };
  // Unterminated: the lines after the opening one are not a field's continuation, they are lost rows.
  const swallowed = physical - recPhys;
  return {
    breaks,
    rejectPhysical,
    lines: { ...account, continuation: continuation - recordContinuation },
    records,
    unterminatedQuote: { line: recPhys, swallowed },
  };
}
