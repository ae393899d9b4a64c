import { createReadStream } from 'node:fs';
import { JSONParser } from '@streamparser/json';
import { InvalidNetlockError, throwIfAborted } from '../errors.ts';
import type { AbortOptions } from '../protocol/blocks.ts';

/** Space, tab, line feed, carriage return. */
const JSON_WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);
/** Bytes read at a time. */
const CHUNK_BYTES = 256 * 1024;

/**
 * A JSON netlock file read as a stream: its entries one at a time, and its other top-level fields as they
 * come. A 100,000-entry file is ~45 MB of JSON; parsed whole it was ~100 MB of heap, held for the whole of a
 * `verify` (issue #15). The parser is @streamparser/json (JSON.parse's grammar, fed in chunks). `head` and
 * `entriesIs` are complete once `entries()` is done; a field given twice keeps its last value, as with
 * JSON.parse, but an `entries` list given twice has both read (more lines than the netlock, which fails).
 */
export class NetlockFileStream {
  readonly path: string;
  /** Top-level fields other than `entries`. */
  readonly head: Record<string, unknown> = {};
  /** What `entries` was: a list, something else, or absent. */
  entriesIs: 'list' | 'other' | 'absent' = 'absent';

  constructor(path: string) {
    this.path = path;
  }

  /**
   * Whether the file's top level is a JSON object: its first byte after JSON whitespace (and a BOM) is `{`.
   * Read as far as it takes: a file of more whitespace than one read was said not to be one, and its fields
   * went unchecked.
   */
  async isObject(): Promise<boolean> {
    const stream = createReadStream(this.path, { highWaterMark: 64 * 1024 });
    let first = true;
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        let i = first && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf ? 3 : 0;
        first = false;
        while (i < chunk.length && JSON_WHITESPACE.has(chunk[i]!)) i++;
        if (i < chunk.length) return chunk[i] === 0x7b;
      }
      return false;
    } catch (cause) {
      throw new InvalidNetlockError(`Cannot read netlock ${this.path}: ${(cause as Error).message}`, { cause });
    } finally {
      stream.destroy();
    }
  }

  /** The elements of the top-level `entries` list, in file order; invalid JSON throws InvalidNetlockError. */
  async *entries(options: AbortOptions = {}): AsyncGenerator<unknown> {
    throwIfAborted(options.signal);
    const parser = new JSONParser({ paths: ['$.*', '$.entries.*'], keepStack: false, stringBufferSize: 64 * 1024 }); // strings decoded whole, not built a character at a time
    const ready: unknown[] = [];
    parser.onValue = ({ value, key, parent, stack }) => {
      if (stack.length === 1 && typeof key === 'string') {
        if (key === 'entries') this.entriesIs = Array.isArray(value) ? 'list' : 'other';
        else this.head[key] = value;
      } else if (stack.length === 2 && Array.isArray(parent)) {
        ready.push(value);
        // `$.entries` is emitted too (to see what it was), so the parser keeps its elements: drop them.
        parent.length = 0;
      }
    };
    const stream = createReadStream(this.path, { highWaterMark: CHUNK_BYTES, ...(options.signal === undefined ? {} : { signal: options.signal }) });
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        this.#parse(() => parser.write(chunk));
        yield* ready.splice(0);
      }
      if (!parser.isEnded) this.#parse(() => parser.end());
      yield* ready.splice(0);
    } catch (cause) {
      if (cause instanceof InvalidNetlockError) throw cause;
      throwIfAborted(options.signal);
      throw new InvalidNetlockError(`Cannot read netlock ${this.path}: ${(cause as Error).message}`, { cause });
    } finally {
      stream.destroy();
    }
  }

  #parse(step: () => void): void {
    try {
      step();
    } catch (cause) {
      throw new InvalidNetlockError(`Netlock ${this.path} is not valid JSON: ${(cause as Error).message}`, { cause });
    }
  }
}
