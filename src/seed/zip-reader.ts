import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import yauzl from 'yauzl';
import type { Entry, ZipFile } from 'yauzl';
import type { CID } from 'multiformats/cid';
import { InvalidArchiveError } from '../errors.ts';
import type { BlockSource } from '../protocol/blocks.ts';
import { readBody } from '../protocol/unixfs.ts';

/** Random access to a body: `read(offset, length)` returns exactly those bytes; `stream` streams a range. */
export interface RangeReader {
  size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  stream(offset: number, length: number): AsyncIterable<Uint8Array>;
}

/** A RangeReader over a UnixFS body (`root` null: an empty body) read from `source` block by block. */
export function bodyRangeReader(root: CID | null, size: number, source: BlockSource, signal?: AbortSignal): RangeReader {
  const stream = (offset: number, length: number): AsyncIterable<Uint8Array> =>
    root === null || length === 0 ? (async function* () {})() : readBody(root, source, { offset, length, ...(signal === undefined ? {} : { signal }) });
  return {
    size: root === null ? 0 : size,
    stream,
    async read(offset, length) {
      const out = new Uint8Array(length);
      let at = 0;
      for await (const c of stream(offset, length)) {
        out.set(c, at);
        at += c.byteLength;
      }
      return at === length ? out : out.subarray(0, at);
    },
  };
}

/**
 * Small reads (the end-of-central-directory search, each central directory record, each local header, the
 * data of a small entry) are served from a few cached windows of WINDOW_BYTES, aligned as the body's 1 MiB
 * UnixFS leaves: without them every 46-byte record would fetch and verify (hash) a whole leaf again, and
 * the reads alternate between the directory at the end and the local headers before it.
 */
const WINDOW_BYTES = 1024 * 1024;
const WINDOWS = 4;

/** yauzl's random-access reader over a RangeReader (a body in the block store: nothing is copied to disk). */
class BodyReader extends yauzl.RandomAccessReader {
  readonly #body: RangeReader;
  /** Errors the body itself raised (store, abort): passed through as they are, not as a bad zip. */
  readonly failures = new WeakSet<object>();
  /** Most recently used last. */
  #windows: Array<{ start: number; bytes: Uint8Array }> = [];

  constructor(body: RangeReader) {
    super();
    this.#body = body;
  }

  override _readStreamForRange(start: number, end: number): Readable {
    const source = end - start <= WINDOW_BYTES ? (async function* (bytes: Promise<Uint8Array>) { yield await bytes; })(this.#bytes(start, end - start)) : this.#body.stream(start, end - start);
    const stream = Readable.from(source, { objectMode: false });
    stream.on('error', (err) => this.failures.add(err));
    return stream;
  }

  override read(buffer: Buffer, offset: number, length: number, position: number, callback: (err: Error | null) => void): void {
    this.#bytes(position, length).then(
      (bytes) => {
        buffer.set(bytes, offset);
        callback(null);
      },
      (err: Error) => {
        this.failures.add(err);
        callback(err);
      },
    );
  }

  async #bytes(position: number, length: number): Promise<Uint8Array> {
    const i = this.#windows.findIndex((w) => position >= w.start && position + length <= w.start + w.bytes.byteLength);
    if (i >= 0) {
      const [w] = this.#windows.splice(i, 1);
      this.#windows.push(w!);
      return w!.bytes.subarray(position - w!.start, position - w!.start + length);
    }
    if (length > WINDOW_BYTES) return this.#exactly(position, length);
    const start = Math.floor(position / WINDOW_BYTES) * WINDOW_BYTES;
    const end = Math.min(this.#body.size, Math.max(start + WINDOW_BYTES, position + length));
    const bytes = await this.#exactly(start, end - start);
    this.#windows.push({ start, bytes });
    if (this.#windows.length > WINDOWS) this.#windows.shift();
    return bytes.subarray(position - start, position - start + length);
  }

  async #exactly(position: number, length: number): Promise<Uint8Array> {
    const bytes = await this.#body.read(position, length);
    // yauzl checks every offset against the size it was given; a body shorter than it says is the store's fault.
    if (bytes.byteLength !== length) throw new Error(`body ended at ${position + bytes.byteLength} of ${this.#body.size} bytes`);
    return bytes;
  }
}

/** One file of a zip: its name as stored (UTF-8) and its uncompressed bytes, CRC-32 and size checked. */
export interface ZipFileEntry {
  name: string;
  content: AsyncIterable<Uint8Array>;
}

/**
 * The files of a zip (zip64 included; stored and deflated entries), in central directory order, read with
 * yauzl from `body` without a temporary copy: a Go module zip is hashed as it streams out of the block
 * store. Each entry's content must be consumed (or abandoned) before the next is asked for. A zip that
 * cannot be read — truncated, a corrupt directory, an unknown compression method, sizes or CRC-32 that do
 * not match — throws InvalidArchiveError; errors of the body itself (a missing block, an abort) pass through.
 */
export async function* readZipFiles(body: RangeReader): AsyncGenerator<ZipFileEntry> {
  const reader = new BodyReader(body);
  const invalid = (err: unknown): unknown =>
    err instanceof Error && !reader.failures.has(err) && !(err instanceof InvalidArchiveError) ? new InvalidArchiveError(`not a readable zip file: ${err.message}`, { cause: err }) : err;
  let zip: ZipFile;
  try {
    zip = await yauzl.fromRandomAccessReaderPromise(reader, body.size, {
      autoClose: true, // close the reader after the last entry (a no-op: the body has nothing to close)
      lazyEntries: true, // one entry at a time, as the caller asks (the Promise API requires it)
      decodeStrings: false, // names as raw bytes, decoded below as UTF-8 (what Go writes); yauzl would read CP437 and refuse names Go hashes anyway
      validateEntrySizes: true, // an entry that inflates to another size than its directory says is refused
      strictFileNames: false, // unused without decodeStrings
    });
  } catch (err) {
    throw invalid(err);
  }
  const entries = zip.eachEntry();
  try {
    for (;;) {
      let entry: Entry | undefined;
      try {
        entry = (await entries.next()).value as Entry | undefined;
      } catch (err) {
        throw invalid(err);
      }
      if (entry === undefined) return;
      const name = (entry.fileName as unknown as Buffer).toString('utf8');
      const expectedCrc = entry.crc32;
      const content = async function* (): AsyncGenerator<Uint8Array> {
        let crc = 0;
        try {
          for await (const chunk of await zip.openReadStreamPromise(entry)) {
            crc = crc32(chunk as Buffer, crc);
            yield chunk as Buffer;
          }
        } catch (err) {
          throw invalid(err);
        }
        if (crc !== expectedCrc) throw new InvalidArchiveError(`not a readable zip file: ${name} has CRC-32 ${crc.toString(16)}, its directory says ${expectedCrc.toString(16)}`);
      };
      yield { name, content: content() };
    }
  } finally {
    await entries.return?.();
    zip.close();
  }
}
