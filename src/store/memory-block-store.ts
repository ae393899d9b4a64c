import type { CID } from 'multiformats/cid';
import { AbortedError, BlockMissingError } from '../errors.ts';
import type { AbortOptions, BlockSink, BlockSource } from '../protocol/blocks.ts';

/** Blocks in a Map keyed by CID string: for tests and throw-away imports. */
export class MemoryBlockStore implements BlockSource, BlockSink {
  readonly #blocks = new Map<string, Uint8Array>();

  put(cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<void> {
    // Rejected, not thrown: a caller of a Promise-returning method handles one kind of failure.
    if (options?.signal?.aborted === true) return Promise.reject(new AbortedError());
    this.#blocks.set(cid.toString(), bytes);
    return Promise.resolve();
  }

  get(cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    if (options?.signal?.aborted === true) return Promise.reject(new AbortedError());
    const bytes = this.#blocks.get(cid.toString());
    if (bytes === undefined) return Promise.reject(new BlockMissingError(cid.toString()));
    return Promise.resolve(bytes);
  }

  has(cid: CID, options?: AbortOptions): Promise<boolean> {
    if (options?.signal?.aborted === true) return Promise.reject(new AbortedError());
    return Promise.resolve(this.#blocks.has(cid.toString()));
  }

  /** CID strings of every block held. */
  cids(): string[] {
    return [...this.#blocks.keys()];
  }

  get size(): number {
    return this.#blocks.size;
  }
}
