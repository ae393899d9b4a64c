import type { CID } from 'multiformats/cid';
import type { AbortOptions, BlockSource } from '../protocol/blocks.ts';
import { RAW_CODE } from '../protocol/blocks.ts';
import { CHUNK_BYTES, READ_AHEAD_LEAVES } from '../protocol/unixfs.ts';

/** A store that reads a block into memory its caller gives (`FsBlockStore`): what lets a response reuse buffers. */
export interface BlockReader {
  /** The block's bytes, unverified, in memory from `alloc(size)`, at once when the store has it at hand, else undefined. */
  readKept(cid: CID, alloc: (size: number) => Uint8Array): Uint8Array | undefined;
  /** The block's bytes, unverified, in memory from `alloc(size)`. */
  readBlock(cid: CID, alloc: (size: number) => Uint8Array): Promise<Uint8Array>;
  /** Drops what the reader keeps for a block (an open file) after it failed its hash. */
  forget(cid: CID | string): void;
}

export function isBlockReader(source: unknown): source is BlockReader {
  const r = source as Partial<BlockReader> | null;
  return typeof r?.readKept === 'function' && typeof r.readBlock === 'function' && typeof r.forget === 'function';
}

/** Free leaf buffers kept between responses: those of four streams (the leaves read ahead, the one being sent, a spare). */
const KEPT = 4 * (READ_AHEAD_LEAVES + 2);
/** Buffers no response holds: a leaf's socket write finished with each. */
const free: Uint8Array[] = [];

/**
 * The full-size (1 MiB) leaf buffers of one streamed response, reused instead of allocating a buffer per leaf:
 * a 100 MiB body made 100 MiB of garbage, which V8 collected with several full collections per body (~10% of
 * the CPU a big body costs) and which held the peak RSS ~60 MB above the live data (issue #15).
 *
 * Ownership is what makes reuse safe: a buffer is taken for one leaf read, and given back only by the socket's
 * write callback for a chunk that spans all of it (by then the socket has handed those bytes to the kernel),
 * and only once (each response gives back only what it took). While lent, a buffer belongs to that response
 * alone: its body is read for it, through `sourceOver`, and a body decoded on the way (`decoded`) gives
 * nothing back. A leaf that fails its hash is never written, so its buffer is simply dropped. Free buffers
 * are shared by the responses that follow (at most KEPT of them, 16 MiB).
 */
export class LeafBuffers {
  readonly #lent = new Set<ArrayBufferLike>();

  /** Memory for a block of `size` bytes: a reused buffer for a full-size leaf, a new one otherwise. */
  take(size: number): Uint8Array {
    if (size !== CHUNK_BYTES) return Buffer.allocUnsafeSlow(size);
    const b = free.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);
    this.#lent.add(b.buffer);
    return b;
  }

  /** Called with a chunk once the socket is done with it: a whole lent buffer comes back for the next leaf. */
  give(chunk: Uint8Array): void {
    if (chunk.byteOffset !== 0 || chunk.byteLength !== CHUNK_BYTES || !this.#lent.delete(chunk.buffer)) return;
    if (free.length < KEPT) free.push(chunk);
  }

  /** A block source reading every block of this response through `reader` into these buffers (unverified). */
  sourceOver(reader: BlockReader): BlockSource {
    return {
      get: (cid: CID, options?: AbortOptions) => {
        try {
          options?.signal?.throwIfAborted();
          const alloc = (size: number): Uint8Array => (cid.code === RAW_CODE ? this.take(size) : Buffer.allocUnsafeSlow(size));
          const kept = reader.readKept(cid, alloc);
          return kept === undefined ? reader.readBlock(cid, alloc) : Promise.resolve(kept);
        } catch (err) {
          return Promise.reject(err);
        }
      },
    };
  }
}

/** Largest one-block body read into a reused buffer; larger ones (up to a leaf) get their own. */
export const SMALL_BODY_MAX = 64 * 1024;
/** Free buffers kept per size class (4 KiB, 8 KiB, … 64 KiB): those of 64 answers in flight at once. */
const SMALL_KEPT_PER_CLASS = 64;
const SMALL_MIN_SHIFT = 12;
const smallFree: Uint8Array[][] = Array.from({ length: 17 - SMALL_MIN_SHIFT }, () => []);
/** Memory lent by `SmallBodyBuffers.take` and not yet given back (weak: an answer that failed just drops its buffer). */
const smallLent = new WeakSet<ArrayBufferLike>();

/** Index of the size class holding `size` bytes (4 KiB × 2^i). */
function smallClass(size: number): number {
  return size <= 1 << SMALL_MIN_SHIFT ? 0 : 32 - Math.clz32(size - 1) - SMALL_MIN_SHIFT;
}

/**
 * Buffers for one-block bodies (every answer of a build's many small requests), reused once the socket is done
 * with them. A fresh buffer per answer is an ArrayBuffer outside V8's heap, freed only by a collection: at
 * 15,000 4 KiB hits a second, with the WeakMap entry per answer `exchange.ts` kept then, V8 ran a full collection
 * about every half second, its pauses and marking steps (6–13 ms) the replay's p99 (issue #15). The same
 * ownership rule as `LeafBuffers`: `take` lends a buffer to one
 * answer, and only the write callback of that answer, when it reports success, gives it back.
 */
export const SmallBodyBuffers = {
  /** A buffer of at least `size` bytes, viewed as exactly `size`; a fresh one above SMALL_BODY_MAX. */
  take: (size: number): Uint8Array => {
    if (size > SMALL_BODY_MAX) return Buffer.allocUnsafeSlow(size);
    const c = smallClass(size);
    const b = smallFree[c]!.pop() ?? Buffer.allocUnsafeSlow(1 << (c + SMALL_MIN_SHIFT));
    smallLent.add(b.buffer);
    return b.subarray(0, size);
  },
  /** Gives back a buffer `take` lent, once nothing reads it any more (its answer's write succeeded). */
  give: (view: Uint8Array): void => {
    if (!smallLent.delete(view.buffer)) return;
    const whole = view.buffer.byteLength;
    const list = smallFree[smallClass(whole)]!;
    if (list.length < SMALL_KEPT_PER_CLASS) list.push(Buffer.from(view.buffer, 0, whole));
  },
};
