import type { CID } from 'multiformats/cid';
import { AbortedError, StoreError, throwIfAborted } from '../errors.ts';
import type { OracleError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { carHeader, carSectionHead } from '../netlock/car-codec.ts';
import { DAG_CBOR_CODE, DAG_PB_CODE, MAX_BLOCK_BYTES, RAW_CODE, SHA2_256_CODE } from '../protocol/blocks.ts';
import type { AbortOptions } from '../protocol/blocks.ts';
import { blockLinks } from './block-links.ts';
import type { Block, BlockStore, PinOptions } from './block-store.ts';
import { kuboApiUrl } from './kubo-api-url.ts';
import { isUnreachable } from './kubo-error.ts';
import { KuboRpc } from './kubo-rpc.ts';

/** Per-request limit for block get/put and bulk imports, unless the init says otherwise. */
export const KUBO_TIMEOUT_MS = 60_000;
/**
 * How long a read may wait for Kubo to fetch a block it lacks from its peers (`fetchTimeoutMs`; `replay
 * --ipfs`, `verify --ipfs`). On loopback a 1 MiB block arrives in milliseconds; this allows a slow or
 * congested link while still answering a client that waits on a block nobody has.
 */
export const KUBO_FETCH_TIMEOUT_MS = 30_000;
/** `has` is a cheap local lookup; a daemon that does not answer it quickly is treated as down. */
export const KUBO_HAS_TIMEOUT_MS = 5_000;
/** A recursive pin walks the whole DAG (a large netlock: every body block). */
export const KUBO_PIN_TIMEOUT_MS = 30 * 60_000;
/**
 * Raw blocks written ahead (at most 2 MiB each, so at most 32 MiB in flight). The UnixFS importer awaits its
 * block writes in batches of ten; letting leaf writes run ahead keeps Node hashing the next chunks while Kubo
 * stores the last ones (measured 1 GiB into Kubo: ~95 MB/s written one by one, ~170 MB/s ahead).
 */
export const KUBO_WRITE_AHEAD_BLOCKS = 16;
const MAX_REMEMBERED_FAILURES = 100_000;

const CODEC_NAMES: ReadonlyMap<number, string> = new Map([
  [RAW_CODE, 'raw'],
  [DAG_PB_CODE, 'dag-pb'],
  [DAG_CBOR_CODE, 'dag-cbor'],
]);

export interface KuboBlockStoreInit {
  /** Kubo RPC API address: `http://127.0.0.1:5001` (or a multiaddr such as `/ip4/127.0.0.1/tcp/5001`). */
  url: string;
  /** Limit for one block get/put or one bulk import, in ms. @default KUBO_TIMEOUT_MS */
  timeoutMs?: number;
  /** Limit for `has` (a local `block/stat`), in ms. @default KUBO_HAS_TIMEOUT_MS */
  hasTimeoutMs?: number;
  /** Limit for a recursive pin, in ms. @default KUBO_PIN_TIMEOUT_MS */
  pinTimeoutMs?: number;
  /**
   * Reads may fetch a block the daemon lacks from its peers (bitswap), for at most this long each, in ms
   * (BlockFetchTimeoutError past it). @default undefined: reads are local only
   */
  fetchTimeoutMs?: number;
  /** Raw blocks (leaves) written ahead of the caller; 0 writes every block before `put` returns. @default KUBO_WRITE_AHEAD_BLOCKS */
  writeAheadBlocks?: number;
  logger?: Logger;
}

/**
 * Blocks in a Kubo daemon, through its RPC API (`KuboRpc`). Every block keeps the CID we computed, and
 * reads are local only (`offline=true`): a block the daemon lacks is BlockMissingError at once; with
 * `fetchTimeoutMs` (readers: replay, verify) Kubo may fetch it from its peers over bitswap. Any failure
 * to talk to the daemon (down, restarting, hanging) is a StoreError naming its URL; each call is
 * independent, so the store works again as soon as the daemon is back. What this class adds to the RPC
 * calls is the write order: leaves are written ahead, and no block is stored before the blocks it links to.
 */
export class KuboBlockStore implements BlockStore {
  readonly url: string;
  readonly description: string;
  readonly #rpc: KuboRpc;
  readonly #writeAhead: number;
  /** Raw blocks being written ahead, by CID. */
  readonly #pending = new Map<string, Promise<void>>();
  /** Raw blocks whose write-ahead failed, until a block that links them (or a flush) reports it. */
  readonly #failed = new Map<string, OracleError>();
  /** The last write found Kubo unreachable: write through until one succeeds. */
  #degraded = false;
  #closed = false;

  constructor(init: KuboBlockStoreInit) {
    this.#rpc = new KuboRpc({
      url: kuboApiUrl(init.url),
      timeoutMs: init.timeoutMs ?? KUBO_TIMEOUT_MS,
      hasTimeoutMs: init.hasTimeoutMs ?? KUBO_HAS_TIMEOUT_MS,
      pinTimeoutMs: init.pinTimeoutMs ?? KUBO_PIN_TIMEOUT_MS,
      ...(init.fetchTimeoutMs === undefined ? {} : { fetchTimeoutMs: init.fetchTimeoutMs }),
      ...(init.logger === undefined ? {} : { logger: init.logger }),
    });
    this.url = this.#rpc.url;
    this.description = this.#rpc.description;
    this.#writeAhead = Math.max(0, init.writeAheadBlocks ?? KUBO_WRITE_AHEAD_BLOCKS);
  }

  /** StoreError naming the daemon unless it answers `version` within `hasTimeoutMs`. */
  async check(options?: AbortOptions): Promise<void> {
    await this.version(options);
  }

  /** Kubo's version: a cheap check that the daemon answers. */
  async version(options?: AbortOptions): Promise<string> {
    throwIfAborted(options?.signal);
    return this.#rpc.version(options);
  }

  /**
   * Stores a block. A raw block (a leaf: it links nothing) is written ahead: this returns once the write is
   * under way, with at most `writeAheadBlocks` in flight. A block that links others (dag-pb, dag-cbor) is
   * written only after every linked block still in flight has reached Kubo, and fails if one of them did
   * not; it returns once Kubo has it. So no block is ever stored before a block it links to, and a body
   * root or a record that `put` accepted never names a leaf Kubo lacks.
   */
  async put(cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<void> {
    throwIfAborted(options?.signal);
    this.#assertOpen();
    const codec = CODEC_NAMES.get(cid.code);
    if (codec === undefined) throw new StoreError(`Cannot store block ${cid} in ${this.description}: codec 0x${cid.code.toString(16)} is not raw, dag-pb or dag-cbor`);
    if (cid.multihash.code !== SHA2_256_CODE) throw new StoreError(`Cannot store block ${cid} in ${this.description}: only sha2-256 CIDs are stored`);
    if (bytes.byteLength > MAX_BLOCK_BYTES) throw new StoreError(`Block ${cid} is ${bytes.byteLength} bytes (limit ${MAX_BLOCK_BYTES})`);
    // While writes fail (Kubo down or restarting), write through: each caller then gets its own error at once.
    if (cid.code === RAW_CODE && this.#writeAhead > 0 && !this.#degraded) {
      const key = cid.toString();
      if (this.#pending.has(key)) return;
      while (this.#pending.size >= this.#writeAhead) await Promise.race(this.#pending.values());
      throwIfAborted(options?.signal);
      this.#failed.delete(key);
      const write = this.#rpc.blockPut(cid, codec, bytes, options).then(
        () => {
          this.#pending.delete(key);
          this.#degraded = false;
        },
        (err: unknown) => {
          this.#pending.delete(key);
          if (isUnreachable(err)) this.#degraded = true;
          this.#failed.set(key, err as OracleError);
          // Failures nobody claims (leaves of an import that gave up) must not pile up without bound.
          if (this.#failed.size > MAX_REMEMBERED_FAILURES) this.#failed.delete(this.#failed.keys().next().value!);
        },
      );
      this.#pending.set(key, write);
      return;
    }
    if (this.#pending.size > 0 || this.#failed.size > 0) await this.#settle(linksOf(cid, bytes), (leaf) => `Cannot store block ${cid}: it links to block ${leaf}, which`);
    try {
      await this.#rpc.blockPut(cid, codec, bytes, options);
      this.#degraded = false;
      this.#failed.delete(cid.toString());
    } catch (err) {
      if (isUnreachable(err)) this.#degraded = true;
      throw err;
    }
  }

  /** Kubo's datastore syncs each block it takes (flatfs `sync`); a write still under way is waited for by the pin that needs it. */
  sync(options?: AbortOptions): Promise<void> {
    throwIfAborted(options?.signal);
    return Promise.resolve();
  }

  /** Waits until every write started so far has finished; throws the first failure among them. */
  async flush(options?: AbortOptions): Promise<void> {
    throwIfAborted(options?.signal);
    await Promise.all(this.#pending.values());
    const failed = this.#failed.values().next();
    this.#failed.clear();
    if (failed.done !== true) throw failed.value;
  }

  /**
   * Waits for the in-flight writes of `cids`; if one of them failed, reports it (once): an error whose
   * message is `what(cid)` followed by the failure.
   */
  async #settle(cids: readonly CID[], what: (failedCid: string) => string): Promise<void> {
    for (const c of cids) {
      const key = c.toString();
      const pending = this.#pending.get(key);
      if (pending !== undefined) await pending;
      const failed = this.#failed.get(key);
      if (failed !== undefined) {
        this.#failed.delete(key);
        const message = `${what(key)} did not reach ${this.description}: ${failed.message}`;
        throw failed instanceof AbortedError ? new AbortedError(message) : new StoreError(message, { cause: failed });
      }
    }
  }

  async get(cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    throwIfAborted(options?.signal);
    this.#assertOpen();
    await this.#settle([cid], (leaf) => `Block ${leaf}`);
    return this.#rpc.blockGet(cid, options);
  }

  async has(cid: CID, options?: AbortOptions): Promise<boolean> {
    throwIfAborted(options?.signal);
    this.#assertOpen();
    await this.#pending.get(cid.toString());
    return this.#rpc.blockStat(cid, options);
  }

  async pin(cid: CID, options?: PinOptions): Promise<void> {
    throwIfAborted(options?.signal);
    this.#assertOpen();
    await this.#settle([cid], (leaf) => `Cannot pin ${cid}: block ${leaf}`);
    await this.#rpc.pinAdd(cid, options?.recursive ?? true, options);
  }

  /** How `cid` is pinned (`recursive`, `direct`, `indirect`), or undefined when it is not. */
  async pinned(cid: CID, options?: AbortOptions): Promise<string | undefined> {
    throwIfAborted(options?.signal);
    this.#assertOpen();
    return this.#rpc.pinType(cid, options);
  }

  /**
   * Removes a block whose bytes failed verification, so that a later put can store it afresh (Kubo skips a
   * put of a block it has). A pinned block stays (Kubo refuses); `ipfs repo verify` is the repair for that.
   */
  async quarantine(cid: CID, options?: AbortOptions): Promise<void> {
    if (this.#closed || options?.signal?.aborted === true) return;
    await this.#rpc.blockRm(cid, options);
  }

  /**
   * Stores many blocks with one `dag/import` request: the blocks are streamed to Kubo as a CARv1 (roots
   * not pinned) and the block count Kubo reports is checked against the number sent. Returns that number.
   */
  async putMany(blocks: AsyncIterable<Block> | Iterable<Block>, options?: AbortOptions): Promise<number> {
    throwIfAborted(options?.signal);
    this.#assertOpen();
    const iterator = Symbol.asyncIterator in blocks ? blocks[Symbol.asyncIterator]() : blocks[Symbol.iterator]();
    const first = await iterator.next();
    if (first.done === true) return 0;
    let sent = 0;
    const car = async function* (): AsyncGenerator<Uint8Array> {
      // CARv1 header (https://ipld.io/specs/transport/car/carv1/): one root is required by go-car; with
      // pin-roots=false it is only a label.
      yield carHeader([first.value.cid]);
      for (let next: IteratorResult<Block> = first; next.done !== true; next = await iterator.next()) {
        const { cid, bytes } = next.value;
        if (bytes.byteLength > MAX_BLOCK_BYTES) throw new StoreError(`Block ${cid} is ${bytes.byteLength} bytes (limit ${MAX_BLOCK_BYTES})`);
        yield carSectionHead(cid, bytes.byteLength);
        yield bytes;
        sent++;
      }
    };
    const count = await this.#rpc.dagImport(car(), options);
    if (count !== sent) throw new StoreError(`${this.description} imported ${count ?? 'no'} of ${sent} blocks (dag/import)`);
    return sent;
  }

  /** Lets writes under way finish (their failures are dropped: nothing links those blocks yet), then closes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.#pending.values());
    this.#rpc.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreError(`${this.description}: store is closed`);
  }
}

/** Links of a block about to be stored; undecodable bytes link nothing we could wait for (Kubo stores them as given). */
function linksOf(cid: CID, bytes: Uint8Array): CID[] {
  try {
    return blockLinks(cid, bytes);
  } catch {
    return [];
  }
}
