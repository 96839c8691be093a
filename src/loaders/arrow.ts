import { createReadStream } from 'node:fs';
import {
  BIGINT,
  BOOLEAN,
  DOUBLE,
  DuckDBDataChunk,
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
  RecordBatchReader,
  Type,
  TimeUnit,
  type Data,
  type DataType,
  type Decimal as DecimalType,
  type Int as IntType,
  type Vector,
} from 'apache-arrow';
import { quoteIdent } from '../contract/tables.ts';
import type { Db } from '../db.ts';
import { InputError, errorMessage } from '../errors.ts';
import type { SourceFile } from './discover.ts';

/** DuckDB's vector size: a data chunk holds at most this many rows. */
const CHUNK_ROWS = 2048;

interface ColumnWriter {
  readonly type: DuckDBType;
  readonly sql: string;
  readonly read: (vector: Vector, start: number, count: number) => DuckDBValue[];
}

const MICROS_PER: Readonly<Record<number, [mul: bigint, div: bigint]>> = {
  [TimeUnit.SECOND]: [1_000_000n, 1n],
  [TimeUnit.MILLISECOND]: [1_000n, 1n],
  [TimeUnit.MICROSECOND]: [1n, 1n],
  [TimeUnit.NANOSECOND]: [1n, 1_000n],
};

function valuesOf(vector: Vector, start: number, count: number, convert: (v: unknown) => DuckDBValue): DuckDBValue[] {
  const out: DuckDBValue[] = new Array(count);
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
  value: (data: Data, index: number) => DuckDBValue,
): DuckDBValue[] {
  const out: DuckDBValue[] = new Array(count);
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

/**
 * Maps an Arrow column onto a staging column. Timestamps and decimals are read from their raw
 * buffers: apache-arrow's `get()` turns timestamps into lossy millisecond numbers (and
 * microseconds matter) and decimals into unscaled integers (12.34 would read as 1234).
 */
function writerFor(type: DataType): ColumnWriter {
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
            const micros = ((data.values as BigInt64Array)[index]! * mul) / div;
            return zoned ? new DuckDBTimestampTZValue(micros) : new DuckDBTimestampValue(micros);
          }),
      };
    }
    default:
      return { type: VARCHAR, sql: 'VARCHAR', read: (v, s, n) => valuesOf(v, s, n, (x) => String(x)) };
  }
}

/**
 * Stages one Arrow IPC file or stream. There is no Arrow extension offline, so batches are
 * appended through DuckDB data chunks; `__line` is the 1-based row ordinal.
 */
export async function stageArrow(db: Db, file: SourceFile, raw: string): Promise<void> {
  let reader;
  try {
    reader = await RecordBatchReader.from(createReadStream(file.path));
    await reader.open();
  } catch (err) {
    throw new InputError(`${file.rel}: not a readable Arrow IPC file or stream: ${errorMessage(err)}`, { cause: err });
  }
  const fields = reader.schema.fields;
  const writers = fields.map((f) => writerFor(f.type));
  await db.run(
    `CREATE OR REPLACE TEMP TABLE ${quoteIdent(raw)} (${[
      ...fields.map((f, i) => `${quoteIdent(f.name)} ${writers[i]!.sql}`),
      '__file VARCHAR',
      '__line BIGINT',
    ].join(', ')})`,
  );
  const appender = await db.conn.createAppender(raw, 'main', 'temp');
  const types = [...writers.map((w) => w.type), VARCHAR, BIGINT];
  let line = 1n;
  try {
    for await (const batch of reader) {
      for (let start = 0; start < batch.numRows; start += CHUNK_ROWS) {
        const count = Math.min(CHUNK_ROWS, batch.numRows - start);
        const chunk = DuckDBDataChunk.create(types, count);
        fields.forEach((f, i) => chunk.setColumnValues(i, writers[i]!.read(batch.getChild(f.name)!, start, count)));
        chunk.setColumnValues(fields.length, new Array<DuckDBValue>(count).fill(file.rel));
        const lines: DuckDBValue[] = new Array(count);
        for (let i = 0; i < count; i++) lines[i] = line++;
        chunk.setColumnValues(fields.length + 1, lines);
        appender.appendDataChunk(chunk);
      }
    }
    appender.flushSync();
  } catch (err) {
    throw new InputError(`${file.rel}: row ${line}: cannot read Arrow data: ${errorMessage(err)}`, { cause: err });
  } finally {
    appender.closeSync();
  }
}
