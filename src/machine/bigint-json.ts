/**
 * JSON that keeps 64-bit integers exact. The emulator's JSON-RPC server writes uint64 values (mcycle, a full
 * `htif_tohost` word, `mcycle_end = 2^64-1`) as bare JSON numbers (cartesi-gio.md §1.9); `JSON.parse` would
 * round anything above 2^53. Node 20 has no JSON.parse source-text access, so this is a small parser:
 * integer literals outside the safe range become `bigint`, every other value is what `JSON.parse` gives.
 */

export type JsonValue = null | boolean | number | bigint | string | JsonValue[] | { [key: string]: JsonValue };

export class JsonSyntaxError extends SyntaxError {
  constructor(message: string, position: number) {
    super(`${message} at position ${position}`);
    this.name = 'JsonSyntaxError';
  }
}

/** Parses JSON text; integers beyond ±(2^53 − 1) come back as `bigint`, exactly. */
export function parseJsonBigInt(text: string): JsonValue {
  const p = new Parser(text);
  p.ws();
  const value = p.value(0);
  p.ws();
  if (p.pos !== text.length) throw new JsonSyntaxError('Unexpected trailing characters', p.pos);
  return value;
}

/**
 * Serialises like `JSON.stringify`, but writes `bigint` values as bare integer literals (so 2^64-1 goes
 * out as 18446744073709551615). `undefined` properties are left out; other non-JSON values are refused.
 */
export function stringifyJsonBigInt(value: unknown): string {
  const out: string[] = [];
  write(value, out, 0);
  return out.join('');
}

const MAX_DEPTH = 256;

function write(value: unknown, out: string[], depth: number): void {
  if (depth > MAX_DEPTH) throw new TypeError('JSON value nested too deeply');
  switch (typeof value) {
    case 'bigint':
      out.push(value.toString());
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`Cannot serialise ${value} as JSON`);
      out.push(JSON.stringify(value));
      return;
    case 'string':
    case 'boolean':
      out.push(JSON.stringify(value));
      return;
    case 'object':
      if (value === null) {
        out.push('null');
        return;
      }
      if (Array.isArray(value)) {
        out.push('[');
        value.forEach((v: unknown, i) => {
          if (i > 0) out.push(',');
          write(v === undefined ? null : v, out, depth + 1);
        });
        out.push(']');
        return;
      }
      if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) {
        throw new TypeError(`Cannot serialise a ${value.constructor.name} as JSON`);
      }
      out.push('{');
      let first = true;
      for (const [k, v] of Object.entries(value)) {
        if (v === undefined) continue;
        if (!first) out.push(',');
        first = false;
        out.push(JSON.stringify(k), ':');
        write(v, out, depth + 1);
      }
      out.push('}');
      return;
    default:
      throw new TypeError(`Cannot serialise a ${typeof value} as JSON`);
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

class Parser {
  pos = 0;
  readonly #text: string;

  constructor(text: string) {
    this.#text = text;
  }

  ws(): void {
    const t = this.#text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      this.pos++;
    }
  }

  value(depth: number): JsonValue {
    if (depth > MAX_DEPTH) throw new JsonSyntaxError('JSON nested too deeply', this.pos);
    const t = this.#text;
    const c = t[this.pos];
    switch (c) {
      case '{':
        return this.object(depth);
      case '[':
        return this.array(depth);
      case '"':
        return this.string();
      case 't':
        return this.literal('true', true);
      case 'f':
        return this.literal('false', false);
      case 'n':
        return this.literal('null', null);
      default:
        return this.number();
    }
  }

  object(depth: number): { [key: string]: JsonValue } {
    const out: { [key: string]: JsonValue } = {};
    this.pos++; // {
    this.ws();
    if (this.#text[this.pos] === '}') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.#text[this.pos] !== '"') throw new JsonSyntaxError('Expected a property name', this.pos);
      const key = this.string();
      this.ws();
      if (this.#text[this.pos] !== ':') throw new JsonSyntaxError("Expected ':'", this.pos);
      this.pos++;
      this.ws();
      // defineProperty, so a "__proto__" key is data, as with JSON.parse.
      Object.defineProperty(out, key, { value: this.value(depth + 1), enumerable: true, writable: true, configurable: true });
      this.ws();
      const c = this.#text[this.pos];
      this.pos++;
      if (c === '}') return out;
      if (c !== ',') throw new JsonSyntaxError("Expected ',' or '}'", this.pos - 1);
    }
  }

  array(depth: number): JsonValue[] {
    const out: JsonValue[] = [];
    this.pos++; // [
    this.ws();
    if (this.#text[this.pos] === ']') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.ws();
      out.push(this.value(depth + 1));
      this.ws();
      const c = this.#text[this.pos];
      this.pos++;
      if (c === ']') return out;
      if (c !== ',') throw new JsonSyntaxError("Expected ',' or ']'", this.pos - 1);
    }
  }

  string(): string {
    const t = this.#text;
    const start = this.pos;
    let i = start + 1;
    let escaped = false;
    for (; i < t.length; i++) {
      const c = t.charCodeAt(i);
      if (c === 0x5c) {
        escaped = true;
        i++;
      } else if (c === 0x22) {
        break;
      } else if (c < 0x20) {
        throw new JsonSyntaxError('Control character in string', i);
      }
    }
    if (i >= t.length) throw new JsonSyntaxError('Unterminated string', start);
    this.pos = i + 1;
    // Escapes are rare in RPC replies (base64 and names): let JSON.parse decode them exactly.
    return escaped ? (JSON.parse(t.slice(start, i + 1)) as string) : t.slice(start + 1, i);
  }

  number(): number | bigint {
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.#text);
    if (m === null) throw new JsonSyntaxError(`Unexpected ${JSON.stringify(this.#text[this.pos] ?? 'end of input')}`, this.pos);
    this.pos += m[0].length;
    const n = Number(m[0]);
    if (m[1] === undefined && m[2] === undefined && !Number.isSafeInteger(n)) return BigInt(m[0]);
    return n;
  }

  literal<T extends JsonValue>(word: string, value: T): T {
    if (!this.#text.startsWith(word, this.pos)) throw new JsonSyntaxError(`Unexpected token, expected ${word}`, this.pos);
    this.pos += word.length;
    return value;
  }
}
