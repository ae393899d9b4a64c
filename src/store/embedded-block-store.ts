import type { CID } from 'multiformats/cid';
import { throwIfAborted } from '../errors.ts';
import type { AbortOptions } from '../protocol/blocks.ts';
import type { Block, BlockStore, PinOptions } from './block-store.ts';
import { FsBlockStore } from './fs-block-store.ts';

/**
 * The embedded store (`FsBlockStore`, one file per block) behind the `BlockStore` interface. It never
 * collects garbage, so `pin` has nothing to protect and only checks the signal.
 */
export class EmbeddedBlockStore extends FsBlockStore implements BlockStore {
  readonly description: string;

  constructor(dataDir: string) {
    super(dataDir);
    this.description = `embedded store ${this.dir}`;
  }

  pin(_cid: CID, options?: PinOptions): Promise<void> {
    throwIfAborted(options?.signal);
    return Promise.resolve();
  }

  async putMany(blocks: AsyncIterable<Block> | Iterable<Block>, options?: AbortOptions): Promise<number> {
    let n = 0;
    for await (const { cid, bytes } of blocks) {
      await this.put(cid, bytes, options);
      n++;
    }
    return n;
  }

  /** The embedded store is files in this process: always there (a full disk shows up as a put's StoreError). */
  check(options?: AbortOptions): Promise<void> {
    throwIfAborted(options?.signal);
    return Promise.resolve();
  }

  /** Every put is durable when it returns (temporary file + rename). */
  flush(options?: AbortOptions): Promise<void> {
    throwIfAborted(options?.signal);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
