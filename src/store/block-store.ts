import type { CID } from 'multiformats/cid';
import type { AbortOptions, BlockSink, BlockSource } from '../protocol/blocks.ts';

/** One block: its CID and its bytes (as a CAR section carries it). */
export interface Block {
  readonly cid: CID;
  readonly bytes: Uint8Array;
}

export interface PinOptions extends AbortOptions {
  /** Pin the whole DAG under the CID (Kubo `pin add --recursive`), not just the block. @default true */
  recursive?: boolean;
}

/**
 * What the oracle needs of a block store, whichever backs it: the embedded files (`FsBlockStore`),
 * Kubo (`KuboBlockStore`) or Kubo with the embedded store as a local cache (`TieredBlockStore`).
 *
 * `put` returns only once the block is durable in the store of record, so a record written after its body's
 * blocks never names a block the store lacks. `pin` protects a DAG from garbage collection (a no-op for
 * the embedded store, which never collects).
 */
export interface BlockStore extends BlockSource, BlockSink {
  /** Short human description naming the backing, used in error messages and logs (e.g. `Kubo at http://…`). */
  readonly description: string;
  has(cid: CID, options?: AbortOptions): Promise<boolean>;
  /**
   * Throws StoreError (naming the store) unless the store answers now: cheap enough to call before each
   * recording, so that a request is refused with the store's name before anything is fetched upstream.
   */
  check(options?: AbortOptions): Promise<void>;
  /** Recursively (by default) pins `cid`, so its DAG survives garbage collection. */
  pin(cid: CID, options?: PinOptions): Promise<void>;
  /** Sets aside a block that failed verification, so that it is never served again. Never throws. */
  quarantine(cid: CID, options?: AbortOptions): Promise<void>;
  /**
   * Waits until every `put` so far is durable and throws the first failure among them. `put` already orders
   * writes so that no block is stored before the blocks it links to; this is for a caller that wants every
   * write settled (before shutdown, or before reporting a batch done).
   */
  flush(options?: AbortOptions): Promise<void>;
  /**
   * Puts every block a `put` stored so far on disk, so a power loss cannot take it (the record path's
   * checkpoints, docs/formats.md). Nothing to do for a store that syncs each write itself (Kubo's datastore);
   * a failure of an earlier write is not reported here (`flush`, or the pin of what needed it, does).
   */
  sync(options?: AbortOptions): Promise<void>;
  /** Stores many blocks; stores that have a bulk path (Kubo `dag import`) use it. */
  putMany(blocks: AsyncIterable<Block> | Iterable<Block>, options?: AbortOptions): Promise<number>;
  /** Releases sockets and handles. Idempotent. */
  close(): Promise<void>;
}
