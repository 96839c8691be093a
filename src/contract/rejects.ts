/** Rows that could not be typed: the `contract.rejected_row` invariant reads this table. */
export const REJECTS_TABLE = 'recon_rejects';

export const REJECTS_DDL = `CREATE TABLE IF NOT EXISTS ${REJECTS_TABLE} (
  table_name VARCHAR, file VARCHAR, line BIGINT,
  problems STRUCT("column" VARCHAR, "value" VARCHAR, message VARCHAR)[]
)`;
