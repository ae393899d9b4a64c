import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { mkdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CID } from 'multiformats/cid';
import { BlockCorruptError, BlockMissingError, StoreError, throwIfAborted } from '../errors.ts';
import { MAX_BLOCK_BYTES } from '../protocol/blocks.ts';
import type { AbortOptions } from '../protocol/blocks.ts';
import type { Block, BlockStore, PinOptions } from './block-store.ts';

/** Block files `readBlock` keeps open at most: well inside the descriptors the proxy keeps back for the store. */
export const OPEN_BLOCK_FILES = 64;
/** Blocks from this size up (the full leaves of large bodies, each read once per answer) are not kept open. */
const KEEP_OPEN_BELOW = 1024 * 1024;

/** Blocks this process remembers having written, so that it skips rewriting them (a reminder, not an index). */
const MAX_REMEMBERED_WRITES = 65_536;

/**
 * The embedded block store: one file per block under `<dataDir>/blocks/<2 chars>/<cid>`. Writes are atomic
 * (temporary file + rename), so a crash never leaves a partial block under a CID. Reads are not verified
 * here; wrap with `verifyingSource` where bytes leave the process. It never collects garbage, so `pin` has
 * nothing to protect; `close` closes the few block files `readBlock` keeps open.
 */
export class FsBlockStore implements BlockStore {
  /** The `blocks` directory. */
  readonly dir: string;
  readonly description: string;
  readonly #madeDirs = new Set<string>();
  readonly #written = new Set<string>();
  /** Block files `readBlock` keeps open, by CID. */
  readonly #kept = new Map<string, { fd: number; size: number }>();
  #nextTmp = 0;

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'blocks');
    this.description = `embedded store ${this.dir}`;
  }

  pathOf(cid: CID): string {
    const s = cid.toString();
    // The last characters of a base32 CID are evenly spread; the first ones are the shared prefix.
    return `${this.dir}/${s.slice(-2)}/${s}`; // path.join would normalise again on every read
  }

  async put(cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<void> {
    throwIfAborted(options?.signal);
    const path = this.pathOf(cid);
    // No stat first: on the record path almost every block is new, and a failed stat costs an exception.
    // Rewriting a block that is there (same bytes, atomic rename) is harmless; this process skips its own
    // while they are still there (`fetch-oracle gc` may have removed one that nothing needed at the time).
    if (this.#written.has(path) && (await this.has(cid))) return;
    const shard = join(path, '..');
    const tmp = `${path}.${process.pid}.${this.#nextTmp++}.tmp`;
    try {
      if (!this.#madeDirs.has(shard)) {
        await mkdir(shard, { recursive: true });
        this.#madeDirs.add(shard);
      }
      await writeFile(tmp, bytes);
      await rename(tmp, path);
      this.#rememberWritten(path);
    } catch (cause) {
      this.#madeDirs.delete(shard); // a shard directory removed since (or a file in its way) is made again next time
      await unlink(tmp).catch(() => {}); // a full disk leaves no partial temp file behind
      throw new StoreError(`Cannot write block ${cid} to ${path}: ${(cause as Error).message}`, { cause });
    }
  }

  async putMany(blocks: AsyncIterable<Block> | Iterable<Block>, options?: AbortOptions): Promise<number> {
    let n = 0;
    for await (const { cid, bytes } of blocks) {
      await this.put(cid, bytes, options);
      n++;
    }
    return n;
  }

  /**
   * Reads a block with blocking calls (open, fstat, read, close), as nginx's worker reads a file: a block
   * is at most 2 MiB and comes from the page cache when it is hot, and four thread-pool round trips per
   * block (`fs.promises.readFile`) cost more than the read itself on a replay hit (issue #15: ~70 us per
   * block on one core). A file larger than any block is refused without reading it.
   */
  get(cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    try {
      throwIfAborted(options?.signal);
      const fd = this.#open(cid);
      try {
        return Promise.resolve(this.#readAll(cid, fd, this.#sizeOf(cid, fd), allocate));
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * `get` at once, into memory `alloc` gives for the block's size (a response that streams many leaves
   * reuses its buffers), for the replay's answers. Unverified, like `get`. The file of a block under 1 MiB
   * stays open (OPEN_BLOCK_FILES of them, least recently used closed first), so that a hot hit's body is
   * one `pread`: a block rewritten in place is read as it is now (and refused by its hash), while one
   * replaced by another file is read from the file held open until `forget` (the replay calls it when a
   * block fails its hash) or until it leaves the cache; either way every read is hashed by its caller.
   */
  readBlock(cid: CID, alloc: (size: number) => Uint8Array): Uint8Array {
    const key = cid.toString();
    const kept = this.#kept.get(key);
    if (kept !== undefined) {
      this.#kept.delete(key); // re-inserted below: Map order is the LRU order
      try {
        const bytes = this.#readAll(cid, kept.fd, kept.size, alloc);
        this.#kept.set(key, kept);
        return bytes;
      } catch {
        closeSync(kept.fd); // then read afresh through the path
      }
    }
    const fd = this.#open(cid);
    let keep = false;
    try {
      const size = this.#sizeOf(cid, fd);
      const bytes = this.#readAll(cid, fd, size, alloc);
      keep = size < KEEP_OPEN_BELOW;
      if (keep) {
        this.#kept.set(key, { fd, size });
        if (this.#kept.size > OPEN_BLOCK_FILES) this.forget(this.#kept.keys().next().value!);
      }
      return bytes;
    } finally {
      if (!keep) closeSync(fd);
    }
  }

  /** Closes the file `readBlock` keeps open for a block (a CID or its string), if any. */
  forget(cid: CID | string): void {
    const key = cid.toString();
    const kept = this.#kept.get(key);
    if (kept === undefined) return;
    this.#kept.delete(key);
    closeSync(kept.fd);
  }

  #open(cid: CID): number {
    try {
      return openSync(this.pathOf(cid), 'r');
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') throw new BlockMissingError(cid.toString(), `Block ${cid} is not in the store ${this.dir}`);
      throw new StoreError(`Cannot read block ${cid}: ${(cause as Error).message}`, { cause });
    }
  }

  #sizeOf(cid: CID, fd: number): number {
    let size: number;
    try {
      size = fstatSync(fd).size;
    } catch (cause) {
      throw new StoreError(`Cannot read block ${cid}: ${(cause as Error).message}`, { cause });
    }
    if (size > MAX_BLOCK_BYTES) throw new BlockCorruptError(cid.toString(), `Block ${cid} in ${this.pathOf(cid)} is ${size} bytes (limit ${MAX_BLOCK_BYTES})`);
    return size;
  }

  /** The first `size` bytes of the file (fewer if it shrank: what is there is hashed and refused). */
  #readAll(cid: CID, fd: number, size: number, alloc: (size: number) => Uint8Array): Uint8Array {
    const bytes = alloc(size);
    let filled = 0;
    try {
      while (filled < size) {
        const n = readSync(fd, bytes, filled, size - filled, filled);
        if (n === 0) break;
        filled += n;
      }
    } catch (cause) {
      throw new StoreError(`Cannot read block ${cid}: ${(cause as Error).message}`, { cause });
    }
    return filled === size ? bytes : bytes.subarray(0, filled);
  }

  async has(cid: CID, options?: AbortOptions): Promise<boolean> {
    throwIfAborted(options?.signal);
    try {
      await stat(this.pathOf(cid));
      return true;
    } catch {
      return false;
    }
  }

  /** The embedded store is files in this process: always there (a full disk shows up as a put's StoreError). */
  check(options?: AbortOptions): Promise<void> {
    return nothingToDo(options?.signal);
  }

  pin(_cid: CID, options?: PinOptions): Promise<void> {
    return nothingToDo(options?.signal);
  }

  /** Every put is complete when it returns (temporary file + rename). */
  flush(options?: AbortOptions): Promise<void> {
    return nothingToDo(options?.signal);
  }

  /** Moves a block that failed verification aside (kept for inspection, never served again). */
  async quarantine(cid: CID): Promise<void> {
    this.forget(cid);
    const path = this.pathOf(cid);
    this.#written.delete(path);
    try {
      await rename(path, `${path}.corrupt`);
    } catch {
      await unlink(path).catch(() => {});
    }
  }

  /** Closes the files `readBlock` keeps open (the store stays usable). Idempotent. */
  close(): Promise<void> {
    for (const key of [...this.#kept.keys()]) this.forget(key);
    return Promise.resolve();
  }

  #rememberWritten(path: string): void {
    if (this.#written.size >= MAX_REMEMBERED_WRITES) this.#written.delete(this.#written.values().next().value!);
    this.#written.add(path);
  }
}

/** A block's own memory (not a slice of Node's shared pool, which a kept record would pin). */
const allocate = (size: number): Uint8Array => Buffer.allocUnsafeSlow(size);

/** A call with nothing to do for files: resolved, or rejected with AbortedError (never thrown) when aborted. */
function nothingToDo(signal: AbortSignal | undefined): Promise<void> {
  try {
    throwIfAborted(signal);
    return Promise.resolve();
  } catch (err) {
    return Promise.reject(err);
  }
}
