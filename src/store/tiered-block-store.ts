import type { CID } from 'multiformats/cid';
import { BlockCorruptError, BlockMissingError, throwIfAborted } from '../errors.ts';
import type { Logger } from '../log.ts';
import { NOOP_LOGGER } from '../log.ts';
import { verifyBlock } from '../protocol/blocks.ts';
import type { AbortOptions } from '../protocol/blocks.ts';
import type { Block, BlockStore, PinOptions } from './block-store.ts';
import type { EmbeddedBlockStore } from './embedded-block-store.ts';

/** Cache writes allowed to run behind the primary's (at most 2 MiB each). */
export const CACHE_WRITE_BEHIND_BLOCKS = 16;

export interface TieredBlockStoreInit {
  /** The store of record (Kubo): every write must reach it, pins live there. */
  primary: BlockStore;
  /** The local cache (the embedded store): written beside the primary, read first. */
  cache: EmbeddedBlockStore;
  logger?: Logger;
}

/**
 * Kubo as the store of record with the embedded store as a local cache. A write goes to both; it succeeds
 * when the primary's `put` does (the cache write runs behind it, bounded, and a failed one is only logged:
 * a block missing from the cache is read from Kubo). A read tries the cache first, then the primary, and
 * keeps a verified copy of what the primary returned. `has` and `pin` answer for the primary.
 */
export class TieredBlockStore implements BlockStore {
  readonly description: string;
  readonly primary: BlockStore;
  readonly cache: EmbeddedBlockStore;
  readonly #logger: Logger;
  readonly #cacheWrites = new Set<Promise<void>>();

  constructor(init: TieredBlockStoreInit) {
    this.primary = init.primary;
    this.cache = init.cache;
    this.#logger = init.logger ?? NOOP_LOGGER;
    this.description = `${init.primary.description} (cache: ${init.cache.description})`;
  }

  async put(cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<void> {
    throwIfAborted(options?.signal);
    const primary = this.primary.put(cid, bytes, options);
    primary.catch(() => {}); // awaited below, after the cache write is under way
    // The cache is advisory: its write runs behind (bounded), so that recording pays for Kubo only.
    while (this.#cacheWrites.size >= CACHE_WRITE_BEHIND_BLOCKS) await Promise.race(this.#cacheWrites);
    const write: Promise<void> = this.cache.put(cid, bytes).then(
      () => {
        this.#cacheWrites.delete(write);
      },
      (err: unknown) => {
        this.#cacheWrites.delete(write);
        this.#logger.warn('cache write of %s failed: %s', cid.toString(), (err as Error).message);
      },
    );
    this.#cacheWrites.add(write);
    await primary;
  }

  async get(cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    throwIfAborted(options?.signal);
    try {
      return await this.cache.get(cid, options);
    } catch (err) {
      if (!(err instanceof BlockMissingError)) this.#logger.warn('cache read of %s failed: %s', cid.toString(), (err as Error).message);
    }
    const bytes = await this.primary.get(cid, options);
    try {
      // Only verified bytes enter the cache; unverified ones still go back to the caller, who verifies.
      await verifyBlock(cid, bytes);
      await this.cache.put(cid, bytes);
    } catch (err) {
      if (!(err instanceof BlockCorruptError)) this.#logger.warn('cache write of %s failed: %s', cid.toString(), (err as Error).message);
    }
    return bytes;
  }

  has(cid: CID, options?: AbortOptions): Promise<boolean> {
    return this.primary.has(cid, options);
  }

  async flush(options?: AbortOptions): Promise<void> {
    await Promise.all(this.#cacheWrites);
    await this.primary.flush(options);
  }

  pin(cid: CID, options?: PinOptions): Promise<void> {
    return this.primary.pin(cid, options);
  }

  /** Sets aside the copy that is corrupt: the cached one if it fails verification, else the primary's. */
  async quarantine(cid: CID): Promise<void> {
    let cached: Uint8Array | undefined;
    try {
      cached = await this.cache.get(cid);
    } catch {
      cached = undefined;
    }
    if (cached !== undefined) {
      try {
        await verifyBlock(cid, cached);
      } catch {
        await this.cache.quarantine(cid);
        return;
      }
    }
    await this.primary.quarantine(cid);
  }

  /** Bulk path of the primary; each block is copied into the cache as it streams past. */
  async putMany(blocks: AsyncIterable<Block> | Iterable<Block>, options?: AbortOptions): Promise<number> {
    const cache = this.cache;
    const logger = this.#logger;
    const teed = async function* (): AsyncGenerator<Block> {
      for await (const block of blocks) {
        try {
          await cache.put(block.cid, block.bytes, options);
        } catch (err) {
          logger.warn('cache write of %s failed: %s', block.cid.toString(), (err as Error).message);
        }
        yield block;
      }
    };
    return this.primary.putMany(teed(), options);
  }

  async close(): Promise<void> {
    await Promise.all(this.#cacheWrites);
    await Promise.all([this.primary.close(), this.cache.close()]);
  }
}
