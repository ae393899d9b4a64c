/**
 * CBOR decoding for the verifier: cborg with fixed options, and a head-only walk that tells a truncated
 * item (and by how much) from any other malformation, so a short document is reported as such.
 */
import { decode as cborDecode } from 'cborg';
import { malformed } from './errors.ts';

/** Where a CBOR item runs past the end of its bytes: at least `needed` bytes are required, for `what`. */
export interface Truncation {
  needed: number;
  what: string;
}

/**
 * Decodes one CBOR item that must fill `bytes` exactly. `offset` is where `bytes` start in the document
 * (for messages only).
 */
export function decodeCbor(bytes: Uint8Array, what: string, offset = 0): unknown {
  try {
    // Defaults kept on purpose: indefinite-length items allowed (2025+ payload maps), no tags supported.
    return cborDecode(bytes, { useMaps: true, rejectDuplicateMapKeys: true, allowUndefined: false });
  } catch (cause) {
    const cut = findTruncation(bytes);
    if (cut !== undefined) {
      throw malformed(`truncated: ${what} is ${bytes.length + offset} bytes, expected at least ${cut.needed + offset} (${cut.what} at offset ${cut.at + offset} runs past the end)`, cause);
    }
    throw malformed(`${what} is not valid CBOR: ${(cause as Error).message}`, cause);
  }
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value instanceof Uint8Array) return `byte string (${value.length} bytes)`;
  if (value instanceof Map) return 'map';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

const INDEFINITE = -1;
const MAJOR_NAMES = ['integer', 'negative integer', 'byte string', 'text string', 'array', 'map', 'tag', 'simple value'];

/**
 * Walks the heads of the first CBOR item in `bytes` (iteratively: nesting depth cannot exhaust the stack).
 * Returns where the item runs past the end, or undefined when it is complete or malformed in another way
 * (reserved head, stray break); cborg's own error then stands.
 */
export function findTruncation(bytes: Uint8Array): (Truncation & { at: number }) | undefined {
  // Items still owed by each open container (INDEFINITE: until a break).
  const open: number[] = [];
  let pos = 0;
  for (;;) {
    const at = pos;
    const initial = bytes[pos];
    if (initial === undefined) return { needed: pos + 1, what: open.length === 0 ? 'the first item' : 'an item', at };
    const major = initial >> 5;
    const info = initial & 0x1f;
    let argument = info;
    pos += 1;
    if (info >= 24 && info <= 27) {
      const size = 1 << (info - 24);
      if (pos + size > bytes.length) return { needed: pos + size, what: `a ${MAJOR_NAMES[major]} head`, at };
      argument = 0;
      for (let i = 0; i < size; i++) argument = argument * 256 + (bytes[pos + i] as number);
      pos += size;
    } else if (info >= 28 && info <= 30) {
      return undefined;
    }
    const indefinite = info === 31;
    let complete = false;
    if (major === 7 && indefinite) {
      // A break closes the innermost indefinite container, which completes one item of its parent.
      if (open[open.length - 1] !== INDEFINITE) return undefined;
      open.pop();
      complete = true;
    } else if (indefinite && (major < 2 || major > 5)) {
      return undefined;
    } else if (major === 2 || major === 3) {
      if (indefinite) open.push(INDEFINITE);
      else if (pos + argument > bytes.length) return { needed: pos + argument, what: `a ${MAJOR_NAMES[major]} of ${argument} bytes`, at };
      else {
        pos += argument;
        complete = true;
      }
    } else if (major === 4 || major === 5) {
      const items = major === 5 ? argument * 2 : argument;
      if (indefinite) open.push(INDEFINITE);
      else if (items > 0) open.push(items);
      else complete = true;
    } else if (major === 6) {
      open.push(1);
    } else {
      complete = true;
    }
    while (complete) {
      const owed = open[open.length - 1];
      if (owed === undefined) return undefined; // the whole item is present
      if (owed === INDEFINITE) break;
      if (owed > 1) {
        open[open.length - 1] = owed - 1;
        break;
      }
      open.pop();
    }
  }
}
