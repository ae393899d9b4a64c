import { isInteger, isSafeNumber, parse, stringify } from 'lossless-json';

/**
 * JSON that keeps 64-bit integers exact, with lossless-json. The emulator's JSON-RPC server writes uint64
 * values (mcycle, a full `htif_tohost` word, `mcycle_end = 2^64-1`) as bare JSON numbers (cartesi-gio.md
 * §1.9); `JSON.parse` would round anything above 2^53 (Node 20 has no JSON.parse source-text access).
 */

export type JsonValue = null | boolean | number | bigint | string | JsonValue[] | { [key: string]: JsonValue };

/** A malformed JSON text; the message names the position, as lossless-json reports it. */
export class JsonSyntaxError extends SyntaxError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'JsonSyntaxError';
  }
}

/** Integer literals outside ±(2^53 − 1) become `bigint`, exactly; every other number is what JSON.parse gives. */
function parseNumber(text: string): number | bigint {
  return isInteger(text) && !isSafeNumber(text) ? BigInt(text) : Number(text);
}

/** Parses JSON text; integers beyond ±(2^53 − 1) come back as `bigint`, exactly. */
export function parseJsonBigInt(text: string): JsonValue {
  try {
    // A repeated key keeps its last value, as with JSON.parse (lossless-json refuses it by default).
    return parse(text, null, { parseNumber, onDuplicateKey: ({ newValue }) => newValue }) as JsonValue;
  } catch (err) {
    if (err instanceof SyntaxError) throw new JsonSyntaxError(err.message, { cause: err });
    throw err;
  }
}

/**
 * Serialises like `JSON.stringify`, but writes `bigint` values as bare integer literals (so 2^64-1 goes
 * out as 18446744073709551615). `undefined` properties are left out; a value JSON cannot hold at all
 * (`undefined`, a function) is refused.
 */
export function stringifyJsonBigInt(value: unknown): string {
  const text = stringify(value);
  if (text === undefined) throw new TypeError(`Cannot serialise a ${typeof value} as JSON`);
  return text;
}
