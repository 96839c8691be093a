import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import {
  BIGINT,
  BOOLEAN,
  DOUBLE,
  DuckDBDataChunk,
  listValue,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
  TIMESTAMP,
  TIMESTAMPTZ,
  UBIGINT,
  VARCHAR,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import {
  DataType,
  RecordBatchReader,
  Type,
  TimeUnit,
  type Data,
  type Decimal as DecimalType,
  type Int as IntType,
  type Vector,
} from 'apache-arrow';
import { quoteIdent } from '../contract/tables.ts';
import { REJECTS_TABLE } from '../contract/rejects.ts';
import type { Db } from '../db.ts';
import { InputError, errorMessage } from '../errors.ts';
import type { SourceFile } from './discover.ts';

/** DuckDB's vector size: a data chunk holds at most this many rows. */
const CHUNK_ROWS = 2048;

/** A value that cannot be staged: its row is rejected with this text and reason. */
class Rejected {
  constructor(
    readonly value: string,
    readonly message: string,
  ) {}
}

interface ColumnWriter {
  readonly type: DuckDBType;
  readonly sql: string;
  readonly read: (vector: Vector, start: number, count: number) => Array<DuckDBValue | Rejected>;
}

/** The instants text exports can carry (typing.ts TIMESTAMP_MIN/MAX), in microseconds since 1970. */
const MICROS_MIN = -62_135_596_800_000_000n;
const MICROS_MAX = 253_402_300_799_999_999n;
const UNIT_NAMES: Readonly<Record<number, string>> = {
  [TimeUnit.SECOND]: 's',
  [TimeUnit.MILLISECOND]: 'ms',
  [TimeUnit.MICROSECOND]: 'µs',
  [TimeUnit.NANOSECOND]: 'ns',
};

const MICROS_PER: Readonly<Record<number, [mul: bigint, div: bigint]>> = {
  [TimeUnit.SECOND]: [1_000_000n, 1n],
  [TimeUnit.MILLISECOND]: [1_000n, 1n],
  [TimeUnit.MICROSECOND]: [1n, 1n],
  [TimeUnit.NANOSECOND]: [1n, 1_000n],
};

function valuesOf(
  vector: Vector,
  start: number,
  count: number,
  convert: (v: unknown) => DuckDBValue | Rejected,
): Array<DuckDBValue | Rejected> {
  const out: Array<DuckDBValue | Rejected> = new Array(count);
  for (let i = 0; i < count; i++) {
    const v = vector.isValid(start + i) ? vector.get(start + i) : null;
    out[i] = v === null || v === undefined ? null : convert(v);
  }
  return out;
}

/**
 * Reads rows [start, start + count) of a vector from its raw value buffers: `value(data, index)`
 * gets the row at `index` of the Data piece holding it (a Vector may be made of several pieces;
 * as in apache-arrow's own getters, a piece's `values` already start at its first row).
 */
function rawValuesOf(
  vector: Vector,
  start: number,
  count: number,
  value: (data: Data, index: number) => DuckDBValue | Rejected,
): Array<DuckDBValue | Rejected> {
  const out: Array<DuckDBValue | Rejected> = new Array(count);
  let i = 0;
  let pieceStart = 0;
  for (const data of vector.data) {
    const pieceEnd = pieceStart + data.length;
    for (let row = Math.max(start + i, pieceStart); i < count && row < pieceEnd; row++, i++) {
      const index = row - pieceStart;
      out[i] = data.getValid(index) ? value(data, index) : null;
    }
    if (i === count) break;
    pieceStart = pieceEnd;
  }
  return out;
}

const TEN = 10n;

/**
 * The exact decimal text of an unscaled integer: `1234` at scale 2 is `'12.34'`, `-5` is
 * `'-0.05'`, `1200` at scale 0 is `'1200'`. This is how DuckDB renders a Parquet DECIMAL, so
 * typing treats both alike: a scale-0 decimal is an exact integer, `12.00` is not one.
 */
function decimalText(unscaled: bigint, scale: number): string {
  if (scale <= 0) return (unscaled * TEN ** BigInt(-scale)).toString();
  const negative = unscaled < 0n;
  const digits = (negative ? -unscaled : unscaled).toString().padStart(scale + 1, '0');
  return `${negative ? '-' : ''}${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

/** A Decimal column as exact text, read from its little-endian two's complement 32-bit words. */
function decimalWriter(type: DecimalType): ColumnWriter {
  const words = type.bitWidth / 32;
  const wrap = 1n << BigInt(type.bitWidth);
  const signBit = 1n << BigInt(type.bitWidth - 1);
  return {
    type: VARCHAR,
    sql: 'VARCHAR',
    read: (vector, start, count) =>
      rawValuesOf(vector, start, count, (data, index) => {
        const values = data.values as Uint32Array;
        let unscaled = 0n;
        for (let w = words - 1; w >= 0; w--) unscaled = (unscaled << 32n) | BigInt(values[index * words + w]!);
        if (unscaled >= signBit) unscaled -= wrap;
        return decimalText(unscaled, type.scale);
      }),
  };
}

function isNested(type: DataType): boolean {
  return DataType.isStruct(type) || DataType.isList(type) || DataType.isLargeList(type) || DataType.isFixedSizeList(type) || DataType.isMap(type) || DataType.isUnion(type);
}

/**
 * Maps an Arrow column onto a staging column. Timestamps and decimals are read from their raw
 * buffers: apache-arrow's `get()` turns timestamps into lossy millisecond numbers (and
 * microseconds matter) and decimals into unscaled integers (12.34 would read as 1234).
 * `contract` says the column feeds a contract column, where a nested value is rejected (as text
 * a STRUCT would pass as an id); other columns are kept as text and ignored.
 */
function writerFor(type: DataType, contract: boolean): ColumnWriter {
  if (contract && isNested(type)) {
    const message = `a nested value (${String(type)}) where a scalar was expected`;
    return { type: VARCHAR, sql: 'VARCHAR', read: (v, s, n) => valuesOf(v, s, n, (x) => new Rejected(String(x).slice(0, 200), message)) };
  }
  switch (type.typeId) {
    case Type.Int: {
      // An unsigned 64-bit value may exceed BIGINT: staged as UBIGINT, typing rejects that row.
      const unsigned64 = !(type as IntType).isSigned && (type as IntType).bitWidth === 64;
      return {
        type: unsigned64 ? UBIGINT : BIGINT,
        sql: unsigned64 ? 'UBIGINT' : 'BIGINT',
        read: (v, s, n) => valuesOf(v, s, n, (x) => BigInt(x as number | bigint)),
      };
    }
    case Type.Decimal:
      return decimalWriter(type as DecimalType);
    case Type.Bool:
      return { type: BOOLEAN, sql: 'BOOLEAN', read: (v, s, n) => valuesOf(v, s, n, (x) => Boolean(x)) };
    case Type.Float:
      return { type: DOUBLE, sql: 'DOUBLE', read: (v, s, n) => valuesOf(v, s, n, (x) => Number(x)) };
    case Type.Timestamp: {
      const t = type as DataType<Type.Timestamp> & { unit: TimeUnit; timezone: string | null };
      const [mul, div] = MICROS_PER[t.unit]!;
      const zoned = t.timezone !== null && t.timezone !== '';
      return {
        type: zoned ? TIMESTAMPTZ : TIMESTAMP,
        sql: zoned ? 'TIMESTAMPTZ' : 'TIMESTAMP',
        read: (vector, start, count) =>
          rawValuesOf(vector, start, count, (data, index) => {
            const value = (data.values as BigInt64Array)[index]!;
            const micros = (value * mul) / div;
            // Out of range, the row alone is rejected; DuckDB would abort the whole chunk.
            if (micros < MICROS_MIN || micros > MICROS_MAX) {
              return new Rejected(`${value} ${UNIT_NAMES[t.unit]} since 1970-01-01`, 'not a finite timestamp between the years 1 and 9999');
            }
            return zoned ? new DuckDBTimestampTZValue(micros) : new DuckDBTimestampValue(micros);
          }),
      };
    }
    default:
      return { type: VARCHAR, sql: 'VARCHAR', read: (v, s, n) => valuesOf(v, s, n, (x) => String(x)) };
  }
}

const FILE_MAGIC = Buffer.from('ARROW1');
const END_OF_STREAM = Buffer.from('ffffffff00000000', 'hex');

/**
 * Refuses an Arrow source that says it ended early: an IPC file must end with its footer's
 * `ARROW1`, a stream with the end-of-stream marker. apache-arrow reads a stream cut between two
 * record batches as a shorter, valid one, so this is the only place the loss can be seen.
 * (Streams written before Arrow 0.15 end with 4 zero bytes instead; they are refused, since
 * zero padding at the end of a cut batch looks the same.)
 */
async function checkArrowEnd(file: SourceFile): Promise<void> {
  const handle = await open(file.path, 'r');
  try {
    const { size } = await handle.stat();
    const head = Buffer.alloc(Math.min(6, size));
    const tail = Buffer.alloc(Math.min(8, size));
    await handle.read(head, 0, head.length, 0);
    await handle.read(tail, 0, tail.length, size - tail.length);
    const isFile = head.equals(FILE_MAGIC);
    if (isFile ? !tail.subarray(2).equals(FILE_MAGIC) : !tail.equals(END_OF_STREAM)) {
      throw new InputError(
        `${file.rel}: the Arrow ${isFile ? 'IPC file has no footer' : 'stream has no end-of-stream marker'}: ` +
          'the file ends early (truncated?), so rows may be missing',
      );
    }
  } finally {
    await handle.close();
  }
}

/**
 * Stages one Arrow IPC file or stream. There is no Arrow extension offline, so batches are
 * appended through DuckDB data chunks; `__line` is the 1-based row ordinal. A value that cannot
 * be staged (a timestamp out of range, a nested value in a contract column) rejects its row
 * into `recon_rejects` here, with the row's ordinal, and the rest of the file loads.
 */
export async function stageArrow(db: Db, file: SourceFile, raw: string, table: string, contractColumns: ReadonlySet<string>): Promise<void> {
  await checkArrowEnd(file);
  let reader;
  try {
    reader = await RecordBatchReader.from(createReadStream(file.path));
    await reader.open();
  } catch (err) {
    throw new InputError(`${file.rel}: not a readable Arrow IPC file or stream: ${errorMessage(err)}`, { cause: err });
  }
  const fields = reader.schema.fields;
  const writers = fields.map((f) => writerFor(f.type, contractColumns.has(f.name)));
  await db.run(
    `CREATE OR REPLACE TEMP TABLE ${quoteIdent(raw)} (${[
      ...fields.map((f, i) => `${quoteIdent(f.name)} ${writers[i]!.sql}`),
      '__file VARCHAR',
      '__line BIGINT',
    ].join(', ')})`,
  );
  const appender = await db.conn.createAppender(raw, 'main', 'temp');
  const types = [...writers.map((w) => w.type), VARCHAR, BIGINT];
  const rejected = new Map<bigint, Array<{ column: string; value: string; message: string }>>();
  let line = 1n;
  try {
    for await (const batch of reader) {
      for (let start = 0; start < batch.numRows; start += CHUNK_ROWS) {
        const count = Math.min(CHUNK_ROWS, batch.numRows - start);
        const chunk = DuckDBDataChunk.create(types, count);
        fields.forEach((f, i) => {
          const values = writers[i]!.read(batch.getChild(f.name)!, start, count);
          values.forEach((v, k) => {
            if (!(v instanceof Rejected)) return;
            const at = line + BigInt(k);
            rejected.set(at, [...(rejected.get(at) ?? []), { column: f.name, value: v.value, message: v.message }]);
            values[k] = null;
          });
          chunk.setColumnValues(i, values as DuckDBValue[]);
        });
        chunk.setColumnValues(fields.length, new Array<DuckDBValue>(count).fill(file.rel));
        const lines: DuckDBValue[] = new Array(count);
        for (let i = 0; i < count; i++) lines[i] = line++;
        chunk.setColumnValues(fields.length + 1, lines);
        appender.appendDataChunk(chunk);
      }
    }
    appender.flushSync();
  } catch (err) {
    throw new InputError(`${file.rel}: rows from ${line}: cannot read Arrow data: ${errorMessage(err)}`, { cause: err });
  } finally {
    appender.closeSync();
  }
  for (const [at, problems] of rejected) {
    await db.run(
      `INSERT INTO ${REJECTS_TABLE} SELECT $table, $rel, $line, from_json($problems, '[{"column": "VARCHAR", "value": "VARCHAR", "message": "VARCHAR"}]')`,
      { table, rel: file.rel, line: at, problems: JSON.stringify(problems) },
    );
  }
  if (rejected.size > 0) {
    await db.run(`DELETE FROM ${quoteIdent(raw)} WHERE list_contains($lines, __line)`, { lines: listValue([...rejected.keys()]) });
  }
}
