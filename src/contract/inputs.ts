/** One input file of an audit as findings.json lists it (CONTRACT.md §4): what the loaders read. */
export interface InputFile {
  table: string;
  source: string;
  format: string;
  rows: number;
  rejected_rows: number;
  sha256: string;
  /**
   * Text formats: every physical line of the file, accounted for. `physical` is the sum of the
   * others, checked when the file is loaded (a quote left open cannot swallow rows unseen).
   */
  lines?: { physical: number; header: number; loaded: number; rejected: number; blank: number; continuation: number };
}
