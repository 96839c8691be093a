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
  VARCHAR,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import { RecordBatchReader, Type, TimeUnit, type DataType, type Vector } from 'apache-arrow';
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
 * Maps an Arrow column onto a staging column. Timestamps are read from the raw int64 buffer:
 * apache-arrow's `get()` turns them into lossy millisecond numbers, and microseconds matter.
 */
function writerFor(type: DataType): ColumnWriter {
  switch (type.typeId) {
    case Type.Int:
      return { type: BIGINT, sql: 'BIGINT', read: (v, s, n) => valuesOf(v, s, n, (x) => BigInt(x as number | bigint)) };
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
        read: (vector, start, count) => {
          const out: DuckDBValue[] = new Array(count);
          for (let i = 0; i < count; i++) {
            const row = start + i;
            if (!vector.isValid(row)) {
              out[i] = null;
              continue;
            }
            // Locate the row's chunk: a Vector may be made of several Data pieces.
            let offset = row;
            let data = vector.data[0]!;
            for (const d of vector.data) {
              data = d;
              if (offset < d.length) break;
              offset -= d.length;
            }
            const raw = (data.values as BigInt64Array)[data.offset + offset]!;
            const micros = (raw * mul) / div;
            out[i] = zoned ? new DuckDBTimestampTZValue(micros) : new DuckDBTimestampValue(micros);
          }
          return out;
        },
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
