import type { CID } from 'multiformats/cid';
import type { AbortOptions, BlockSource } from '../protocol/blocks.ts';
import { RAW_CODE } from '../protocol/blocks.ts';
import { AbortedError } from '../errors.ts';
import { CHUNK_BYTES } from '../protocol/unixfs.ts';
import { LEAF_BUDGET, LEAVES_HELD_MAX } from './leaf-budget.ts';
import type { LeafBudget } from './leaf-budget.ts';

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

/**
 * Largest memory lent from the pool: a one-block body (up to a whole leaf, 1 MiB) with its answer's head in
 * front. Larger requests get memory of their own.
 */
export const POOLED_BYTES_MAX = 2 * CHUNK_BYTES;
const MIN_SHIFT = 12;
/** Power-of-two classes: 4 KiB, 8 KiB, … POOLED_BYTES_MAX. */
const CLASSES = 32 - Math.clz32(POOLED_BYTES_MAX - 1) - MIN_SHIFT + 1;
/**
 * Free buffers kept per class: those of 64 answers in flight at once, fewer of the larger classes (8 MiB of
 * each at most), but as many 1 MiB leaves as streams may hold at once (`LEAVES_HELD_MAX`): every leaf a
 * stream gives back is then read into again, never left to the collector (64 streams of 100 MiB bodies left
 * up to ~250 MB of dead leaves between collections).
 */
const keptIn = (c: number): number => {
  const size = 1 << (c + MIN_SHIFT);
  return size === CHUNK_BYTES ? LEAVES_HELD_MAX : Math.min(64, Math.max(4, (8 * 1024 * 1024) / size));
};
/** A pooled buffer, whole, and whether an answer holds it. Made once per buffer: lending and giving back allocate nothing. */
interface Pooled {
  readonly whole: Buffer;
  lent: boolean;
}
/** Buffers no answer holds (the socket's write of each finished), by class. */
const free: Pooled[][] = Array.from({ length: CLASSES }, () => []);
/**
 * Every pooled buffer by its memory (weak: an answer that failed just drops its buffer). A WeakSet of the memory
 * lent, added to and deleted from per answer, and a fresh Buffer over the memory given back, made ~200 bytes
 * of garbage per 4 KiB hit (issue #15).
 */
const pooled = new WeakMap<ArrayBufferLike, Pooled>();

/** The class of a pooled size (the power of two at or above it, from 4 KiB), else undefined. */
function classOf(size: number): number | undefined {
  if (size > POOLED_BYTES_MAX) return undefined;
  return size <= 1 << MIN_SHIFT ? 0 : 32 - Math.clz32(size - 1) - MIN_SHIFT;
}

/**
 * Body buffers reused between answers instead of allocated per answer. Each fresh one is an ArrayBuffer outside
 * V8's heap, freed only by a collection (issue #15): a 100 MiB body made 100 MiB of such garbage (several full
 * collections per body, ~10% of its CPU, the peak RSS ~60 MB above the live data), and at 15,000 4 KiB hits a
 * second, with the WeakMap entry per answer `exchange.ts` kept then, V8 ran a full collection about every half
 * second, its pauses and marking steps (6–13 ms) the replay's p99. A 256 KiB body fresh per hit made ~30 full
 * collections a second (a quarter of the time, and a p99 of 15 ms at one connection).
 *
 * Ownership is what makes reuse safe: `take` lends a buffer to one answer, and only that answer gives it back,
 * once, when the socket has handed the bytes to the kernel (the write's callback, or `finish` for a one-block
 * body); a second give is ignored, so memory is never lent to two answers at once. A block that fails its hash
 * is never written, so its buffer is simply dropped.
 */
export const BodyBuffers = {
  /** Memory for `size` bytes (a view of exactly that size): reused for a pooled size, fresh otherwise. */
  take: (size: number): Uint8Array => {
    const c = classOf(size);
    if (c === undefined) return Buffer.allocUnsafeSlow(size);
    let p = free[c]!.pop();
    if (p === undefined) {
      p = { whole: Buffer.allocUnsafeSlow(1 << (c + MIN_SHIFT)), lent: false };
      pooled.set(p.whole.buffer, p);
    }
    p.lent = true;
    return p.whole.subarray(0, size);
  },
  /** Gives back memory `take` lent, once nothing reads it any more. */
  give: (view: Uint8Array): void => {
    const p = pooled.get(view.buffer);
    if (p?.lent !== true) return;
    p.lent = false;
    const c = classOf(p.whole.byteLength)!;
    if (free[c]!.length < keptIn(c)) free[c]!.push(p);
  },
};

/**
 * The leaves of one streamed (multi-block) response read into `BodyBuffers`. A leaf's buffer comes back only
 * from the socket's write callback for a chunk spanning all of it (a range's slice of a leaf does not). Every
 * leaf read holds a permit of `budget` until the socket has sent what the answer took of it, or until `close`
 * (the answer ended: a leaf read ahead and never sent, or one that failed its hash).
 */
export class LeafBuffers {
  readonly #budget: LeafBudget;
  /** The memory of leaves that hold a permit, not yet given back. */
  readonly #permitted = new Set<ArrayBufferLike>();
  #closed = false;

  constructor(budget: LeafBudget = LEAF_BUDGET) {
    this.#budget = budget;
  }

  /** Memory for a block of `size` bytes: a reused buffer for a full-size leaf, a new one otherwise. */
  take(size: number): Uint8Array {
    return size === CHUNK_BYTES ? BodyBuffers.take(size) : Buffer.allocUnsafeSlow(size);
  }

  /** Called with a chunk once the socket is done with it: its leaf's permit, and a whole lent buffer, come back. */
  give(chunk: Uint8Array): void {
    if (this.#permitted.delete(chunk.buffer)) this.#budget.release();
    if (chunk.byteOffset === 0 && chunk.byteLength === CHUNK_BYTES) BodyBuffers.give(chunk);
  }

  /** The answer has ended: every permit its leaves still hold comes back. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#budget.release(this.#permitted.size);
    this.#permitted.clear();
  }

  /** A block source reading every block of this response through `reader` into these buffers (unverified). */
  sourceOver(reader: BlockReader): BlockSource {
    return {
      get: async (cid: CID, options?: AbortOptions) => {
        options?.signal?.throwIfAborted();
        if (cid.code !== RAW_CODE) {
          const alloc = (size: number): Uint8Array => Buffer.allocUnsafeSlow(size);
          return reader.readKept(cid, alloc) ?? (await reader.readBlock(cid, alloc));
        }
        await this.#budget.acquire();
        let leaf: Uint8Array | undefined;
        try {
          if (this.#closed) throw new AbortedError('The answer ended before its leaf was read');
          const alloc = (size: number): Uint8Array => this.take(size);
          leaf = reader.readKept(cid, alloc) ?? (await reader.readBlock(cid, alloc));
        } finally {
          if (leaf === undefined || this.#closed) this.#budget.release();
          else this.#permitted.add(leaf.buffer);
        }
        return leaf;
      },
    };
  }
}
