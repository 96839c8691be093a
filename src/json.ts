import { isLosslessNumber, parse, type LosslessNumber } from 'lossless-json';

/** Keys whose integers are money: always bigint, whatever their size. */
const MONEY_KEYS = new Set(['amount_minor', 'amount_minor_by_currency']);

function revive(value: unknown, money: boolean): unknown {
  if (isLosslessNumber(value)) {
    const text = (value as LosslessNumber).value;
    const integer = /^-?\d+$/.test(text);
    // Other integers become bigint only where a number would lose digits.
    return integer && (money || !Number.isSafeInteger(Number(text))) ? BigInt(text) : Number(text);
  }
  if (Array.isArray(value)) return value.map((v) => revive(v, money));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, revive(v, money || MONEY_KEYS.has(k))]));
  }
  return value;
}

/**
 * JSON.parse without losing a digit: money as bigint, integers beyond 2^53 as bigint, other
 * numbers as numbers. `JSON.parse` would turn 9007199254740993 into ...992.
 */
export function parseExact(text: string): unknown {
  return revive(parse(text), false);
}
