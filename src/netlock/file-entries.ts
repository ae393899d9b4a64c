import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { JSONParser } from '@streamparser/json';
import { InvalidNetlockError, throwIfAborted } from '../errors.ts';
import type { AbortOptions } from '../protocol/blocks.ts';
import { netlockHead } from './file.ts';

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

  /** Whether the file's top level is a JSON object (it starts with `{`); read from its head. */
  async isObject(): Promise<boolean> {
    const fh = await open(this.path, 'r').catch((cause: unknown) => {
      throw new InvalidNetlockError(`Cannot read netlock ${this.path}: ${(cause as Error).message}`, { cause });
    });
    try {
      return /^\uFEFF?\s*\{/.test(await netlockHead(fh));
    } finally {
      await fh.close();
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
