/**
 * CARv1 framing (https://ipld.io/specs/transport/car/carv1/): a varint-prefixed DAG-CBOR header
 * `{ version: 1, roots: [CID…] }`, then sections `varint(|CID| + |block|) ‖ CID ‖ block` to the end of the
 * file. Written here rather than taken from @ipld/car because the reader must bound what it buffers: the
 * library's decoder reads a section of whatever length its varint claims, so one hostile length makes it
 * buffer the whole file. This one refuses a section longer than one block can be (design §2).
 */
import * as dagCbor from '@ipld/dag-cbor';
import { varint } from 'multiformats';
import { CID } from 'multiformats/cid';
import { InvalidNetlockError, throwIfAborted } from '../errors.ts';
import { MAX_BLOCK_BYTES } from '../protocol/blocks.ts';

/** Longest CARv1 header accepted; one root takes about 60 bytes. */
export const MAX_CAR_HEADER_BYTES = 64 * 1024;
/** Room for the CID in front of a block of MAX_BLOCK_BYTES. */
const MAX_CID_BYTES = 128;

export interface CarHeader {
  readonly version: 1;
  readonly roots: readonly CID[];
}

export interface CarSection {
  readonly cid: CID;
  readonly bytes: Uint8Array;
  /** Byte offset of the section in the CAR. */
  readonly offset: number;
  /** Byte offset of the block bytes in the CAR (after the section's length and CID). */
  readonly blockOffset: number;
}

/** CARv1 header bytes: varint length ‖ DAG-CBOR `{ version: 1, roots }`. */
export function carHeader(roots: readonly CID[]): Uint8Array {
  const header = dagCbor.encode({ version: 1, roots });
  return concat([varintBytes(header.byteLength), header]);
}

/** The part of a CARv1 section before the block bytes: varint(|CID| + |bytes|) ‖ CID. */
export function carSectionHead(cid: CID, blockBytes: number): Uint8Array {
  return concat([varintBytes(cid.bytes.byteLength + blockBytes), cid.bytes]);
}

function varintBytes(n: number): Uint8Array {
  const out = new Uint8Array(varint.encodingLength(n));
  varint.encodeTo(n, out);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/**
 * Streaming CARv1 reader over byte chunks (a file read stream, an HTTP body). Memory is bounded by one
 * section plus one input chunk. Format errors are InvalidNetlockError naming the CAR and the byte offset;
 * blocks are not hashed here (the importer verifies each against its CID).
 */
export class CarStreamReader {
  readonly name: string;
  readonly #source: AsyncIterator<Uint8Array>;
  readonly #chunks: Uint8Array[] = [];
  readonly #signal: AbortSignal | undefined;
  #head = 0;
  #buffered = 0;
  #pos = 0;
  #ended = false;
  #header: CarHeader | undefined;

  /** `name` is how errors refer to the CAR (its path). */
  constructor(source: AsyncIterable<Uint8Array>, name: string, options: { signal?: AbortSignal } = {}) {
    this.#source = source[Symbol.asyncIterator]();
    this.name = name;
    this.#signal = options.signal;
  }

  /** Bytes consumed so far. */
  get position(): number {
    return this.#pos;
  }

  async header(): Promise<CarHeader> {
    if (this.#header !== undefined) return this.#header;
    const length = await this.#varint('header length', true);
    if (length === undefined || length === 0) throw this.#error(0, 'is empty or has a zero-length header (not a CAR file)');
    if (length > MAX_CAR_HEADER_BYTES) throw this.#error(0, `has a ${length}-byte header (limit ${MAX_CAR_HEADER_BYTES}; not a CARv1 file?)`);
    const bytes = await this.#take(length, 'header');
    let value: unknown;
    try {
      value = dagCbor.decode(bytes);
    } catch (cause) {
      throw this.#error(0, 'has a header that is not DAG-CBOR (not a CAR file)', cause);
    }
    const v = value as { version?: unknown; roots?: unknown } | null;
    if (v === null || typeof v !== 'object') throw this.#error(0, 'has a header that is not a map');
    if (v.version === 2) throw this.#error(0, 'is a CARv2 file; only CARv1 is read (Kubo `dag export` and `fetch-oracle export` write CARv1)');
    if (v.version !== 1) throw this.#error(0, `has CAR version ${String(v.version)} (expected 1)`);
    if (!Array.isArray(v.roots) || !v.roots.every((r) => CID.asCID(r) !== null)) throw this.#error(0, 'has a header whose roots are not a list of CIDs');
    this.#header = { version: 1, roots: (v.roots as unknown[]).map((r) => CID.asCID(r)!) };
    return this.#header;
  }

  /** Every section after the header, in file order. */
  async *sections(): AsyncGenerator<CarSection> {
    await this.header();
    for (;;) {
      throwIfAborted(this.#signal);
      const offset = this.#pos;
      const length = await this.#varint('section length', true);
      if (length === undefined) return;
      if (length === 0) throw this.#error(offset, 'has a zero-length section');
      if (length > MAX_BLOCK_BYTES + MAX_CID_BYTES) {
        throw this.#error(offset, `has a ${length}-byte section (a block is at most ${MAX_BLOCK_BYTES} bytes)`);
      }
      const section = await this.#take(length, 'section');
      let cid: CID;
      let bytes: Uint8Array;
      try {
        [cid, bytes] = CID.decodeFirst(section);
      } catch (cause) {
        throw this.#error(offset, 'has a section that does not start with a valid CID', cause);
      }
      yield { cid, bytes, offset, blockOffset: this.#pos - bytes.byteLength };
    }
  }

  #error(offset: number, what: string, cause?: unknown): InvalidNetlockError {
    return new InvalidNetlockError(`CAR ${this.name} ${what} (at byte ${offset})`, cause === undefined ? undefined : { cause });
  }

  /** Buffers at least `n` bytes unless the input ends first; returns whether it did. */
  async #fill(n: number): Promise<boolean> {
    while (this.#buffered < n && !this.#ended) {
      throwIfAborted(this.#signal);
      const next = await this.#source.next();
      if (next.done === true) {
        this.#ended = true;
        break;
      }
      if (next.value.byteLength === 0) continue;
      this.#chunks.push(next.value);
      this.#buffered += next.value.byteLength;
    }
    return this.#buffered >= n;
  }

  async #take(n: number, what: string): Promise<Uint8Array> {
    const start = this.#pos;
    if (!(await this.#fill(n))) {
      throw this.#error(start, `is truncated: its ${what} needs ${n} bytes, only ${this.#buffered} remain`);
    }
    const first = this.#chunks[0]!;
    let out: Uint8Array;
    if (first.byteLength - this.#head >= n) {
      out = first.subarray(this.#head, this.#head + n);
      this.#head += n;
    } else {
      out = new Uint8Array(n);
      let at = 0;
      while (at < n) {
        const chunk = this.#chunks[0]!;
        const piece = Math.min(n - at, chunk.byteLength - this.#head);
        out.set(chunk.subarray(this.#head, this.#head + piece), at);
        at += piece;
        this.#head += piece;
        if (this.#head === chunk.byteLength) {
          this.#chunks.shift();
          this.#head = 0;
        }
      }
    }
    if (this.#chunks.length > 0 && this.#head === this.#chunks[0]!.byteLength) {
      this.#chunks.shift();
      this.#head = 0;
    }
    this.#buffered -= n;
    this.#pos += n;
    return out;
  }

  /** An unsigned LEB128 varint; undefined when the input ends cleanly before its first byte and `eofOk`. */
  async #varint(what: string, eofOk: boolean): Promise<number | undefined> {
    const start = this.#pos;
    let value = 0;
    for (let i = 0; i < 8; i++) {
      if (!(await this.#fill(1))) {
        if (i === 0 && eofOk) return undefined;
        throw this.#error(start, `is truncated inside a ${what}`);
      }
      const byte = (await this.#take(1, what))[0]!;
      value += (byte & 0x7f) * 2 ** (7 * i);
      if ((byte & 0x80) === 0) return value;
    }
    throw this.#error(start, `has a ${what} varint longer than 8 bytes`);
  }
}
