import type { CID } from 'multiformats/cid';
import { BlockCorruptError, BlockMissingError, throwIfAborted } from '../errors.ts';
import type { Logger } from '../log.ts';
import { NOOP_LOGGER } from '../log.ts';
import { RAW_CODE, verifyBlock } from '../protocol/blocks.ts';
import type { AbortOptions } from '../protocol/blocks.ts';
import type { Block, BlockStore, PinOptions } from './block-store.ts';
import type { FsBlockStore } from './fs-block-store.ts';

/** Cache writes allowed to run behind the primary's (at most 2 MiB each). */
export const CACHE_WRITE_BEHIND_BLOCKS = 16;

export interface TieredBlockStoreInit {
  /** The store of record (Kubo): every write must reach it, pins live there. */
  primary: BlockStore;
  /** The local cache (the embedded store): read first, filled on write and on read. */
  cache: FsBlockStore;
  /**
   * Which writes also go to the cache. `all`: every block, so everything recorded can be served while Kubo
   * is down. `links`: records, index pages and dag-pb nodes only; body leaves (raw blocks, nearly all the
   * bytes) enter the cache when first read. Writing leaves twice costs CPU on a small machine: recording
   * 1 GiB measured 1.4-1.7x the embedded store's time with `links`, 2.0-2.3x with `all` (bench/kubo.ts).
   * @default 'links'
   */
  cacheOnWrite?: 'all' | 'links';
  logger?: Logger;
}

/**
 * Kubo as the store of record with the embedded store as a local cache. A write goes to the primary and
 * (per `cacheOnWrite`) to the cache; it succeeds when the primary's `put` does (the cache write runs behind
 * it, bounded, and a failed one is only logged: a block missing from the cache is read from Kubo). A read
 * tries the cache first, then the primary, and keeps a verified copy of what the primary returned. `has`,
 * `pin` and `check` answer for the primary.
 */
export class TieredBlockStore implements BlockStore {
  readonly description: string;
  readonly primary: BlockStore;
  readonly cache: FsBlockStore;
  readonly cacheOnWrite: 'all' | 'links';
  readonly #logger: Logger;
  readonly #cacheWrites = new Set<Promise<void>>();

  constructor(init: TieredBlockStoreInit) {
    this.primary = init.primary;
    this.cache = init.cache;
    this.cacheOnWrite = init.cacheOnWrite ?? 'links';
    this.#logger = init.logger ?? NOOP_LOGGER;
    this.description = `${init.primary.description} (cache: ${init.cache.description})`;
  }

  async put(cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<void> {
    throwIfAborted(options?.signal);
    const primary = this.primary.put(cid, bytes, options);
    if (!this.#cachesOnWrite(cid)) return primary;
    primary.catch(() => {}); // awaited below, after the cache write is under way
    await this.#cacheBehind(cid, bytes);
    await primary;
  }

  #cachesOnWrite(cid: CID): boolean {
    return this.cacheOnWrite === 'all' || cid.code !== RAW_CODE;
  }

  /** Starts a cache write that runs behind the caller (the cache is advisory); waits only for room. */
  async #cacheBehind(cid: CID, bytes: Uint8Array): Promise<void> {
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

  check(options?: AbortOptions): Promise<void> {
    return this.primary.check(options);
  }

  /** The primary's blocks: the cache is a copy, read again from there if lost. */
  sync(options?: AbortOptions): Promise<void> {
    return this.primary.sync(options);
  }

  async flush(options?: AbortOptions): Promise<void> {
    await Promise.all(this.#cacheWrites);
    await this.primary.flush(options);
  }

  pin(cid: CID, options?: PinOptions): Promise<void> {
    return this.primary.pin(cid, options);
  }

  /** Sets aside the copy that is corrupt: the cached one if it fails verification, else the primary's. */
  async quarantine(cid: CID, options?: AbortOptions): Promise<void> {
    let cached: Uint8Array | undefined;
    try {
      cached = await this.cache.get(cid, options);
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
    await this.primary.quarantine(cid, options);
  }

  /** Bulk path of the primary; each block is copied into the cache (per `cacheOnWrite`) as it streams past. */
  async putMany(blocks: AsyncIterable<Block> | Iterable<Block>, options?: AbortOptions): Promise<number> {
    const teed = async function* (this: TieredBlockStore): AsyncGenerator<Block> {
      for await (const block of blocks) {
        if (this.#cachesOnWrite(block.cid)) await this.#cacheBehind(block.cid, block.bytes);
        yield block;
      }
    };
    const n = await this.primary.putMany(teed.call(this), options);
    await Promise.all(this.#cacheWrites);
    return n;
  }

  async close(): Promise<void> {
    await Promise.all(this.#cacheWrites);
    await Promise.all([this.primary.close(), this.cache.close()]);
  }
}
