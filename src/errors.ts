/**
 * The few error classes of billing-recon. Each has a stable `code`; every one of them means
 * "the audit could not run" and maps to exit code 2 (CONTRACT.md §4).
 */
export class ReconError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Bad command-line arguments. */
export class UsageError extends ReconError {
  constructor(message: string) {
    super('RECON_USAGE', message);
  }
}

/** The config file is unreadable or invalid; the message names the file and the field. */
export class ConfigError extends ReconError {
  constructor(message: string, options?: ErrorOptions) {
    super('RECON_CONFIG', message, options);
  }
}

/** The exports cannot be audited at all: a required table or column is missing, a file unreadable. */
export class InputError extends ReconError {
  constructor(message: string, options?: ErrorOptions) {
    super('RECON_INPUT', message, options);
  }
}

/** DuckDB (or BigQuery) failed underneath us. */
export class DatabaseError extends ReconError {
  constructor(message: string, options?: ErrorOptions) {
    super('RECON_DATABASE', message, options);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
