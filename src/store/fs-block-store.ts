import { close, closeSync, fstat, mkdirSync, open, readSync, read, renameSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CID } from 'multiformats/cid';
import { syncDir, syncFile } from '../io/durable.ts';
import { BlockCorruptError, BlockMissingError, StoreError, throwIfAborted } from '../errors.ts';
import { MAX_BLOCK_BYTES } from '../protocol/blocks.ts';
import type { AbortOptions } from '../protocol/blocks.ts';
import type { Block, BlockStore, PinOptions } from './block-store.ts';
import { BlockPacks, LARGE_BLOCK } from './block-packs.ts';
import type { PackedBlockPlace } from './block-packs.ts';
import { packableCid } from './pack-slots.ts';

/** Block files `readBlock` keeps open at most: well inside the descriptors the proxy keeps back for the store. */
export const OPEN_BLOCK_FILES = 64;
/**
 * Blocks up to this size are written with blocking calls: a small write to the page cache costs less than
 * the four thread-pool round trips (open, write, close, rename) and their promises (issue #15, record path).
 * Larger ones (the 1 MiB leaves of big bodies) go through the pool, so the event loop keeps moving.
 */
const SYNC_WRITE_BELOW = 64 * 1024;
/** Blocks from this size up (the full leaves of large bodies, each read once per answer) are not kept open. */
const KEEP_OPEN_BELOW = 1024 * 1024;

/**
 * Blocks under this size go into pack files (`BlockPacks`) rather than a file each: everything but the full
 * 1 MiB leaves of large bodies, for which a file costs little against their bytes. Packing up to 1 MiB rather
 * than 64 KiB made `npm run bench:seed` (bodies of 4-196 KiB) ~20% faster (issue #15, session 15).
 */
export const PACK_BLOCKS_BELOW = 1024 * 1024;
/** Packed blocks from this size up are read through the thread pool (`readBlock`), not by `readKept`. */
const SYNC_READ_BELOW = SYNC_WRITE_BELOW;

export interface FsBlockStoreOptions {
  /**
   * Blocks under this many bytes are appended to pack files; 0 writes every block as a file of its own (the
   * layout before packs, which is always read as well). @default PACK_BLOCKS_BELOW
   */
  packBelow?: number;
  /** A pack takes no more entries once it is this large (then it is sealed, and the next is made). @default PACK_BYTES (256 MiB) */
  packBytes?: number;
  /**
   * `sync` (and `flush`) puts block files written since the last one on disk too (and their names). Off for a cache of
   * another store, whose blocks can be read again from there. @default true
   */
  syncFiles?: boolean;
}

/**
 * Block files written but not yet synced that a store remembers for its next `sync`; at this many it syncs
 * them without waiting for one (a run that never syncs, or a 1 GiB body between two checkpoints, keeps no
 * longer list than this).
 */
const MAX_UNSYNCED_FILES = 256;
/** Block files synced at once (each one open, fdatasync, close in the thread pool). */
const FILE_SYNCS_AT_ONCE = 4;

/**
 * Blocks this process remembers having written, so that it skips rewriting them (a reminder, not an index):
 * a body served again under other URLs is written moments apart. Each costs ~150 bytes of heap; 65,536 of
 * them were 10 MB of a recording process's 200 (issue #15).
 */
const MAX_REMEMBERED_WRITES = 16_384;

/**
 * The embedded block store. Blocks under 1 MiB (records, index pages, bodies under 1 MiB, the last leaf of
 * larger ones) are appended to pack files under `<dataDir>/blocks/packs/` (`BlockPacks`, written with blocking
 * calls: one `writev` to the page cache each); the full 1 MiB leaves of large bodies are a file each under
 * `<dataDir>/blocks/<2 chars>/<cid>`, written atomically (temporary file + rename). Either way a crash never
 * leaves a partial block under a CID: a torn pack entry is not indexed. Block files of the layout before packs
 * are read as they are. Reads are not verified here; wrap with `verifyingSource` where bytes leave the process.
 * It never collects garbage, so `pin` has nothing to protect; `close` closes the packs and the few block files
 * `readBlock` keeps open.
 */
export class FsBlockStore implements BlockStore {
  /** The `blocks` directory. */
  readonly dir: string;
  readonly description: string;
  /** `put` has written the bytes to a file by the time it resolves. */
  readonly putKeepsNoBytes = true;
  readonly #madeDirs = new Set<string>();
  readonly #written = new Set<string>();
  /** Block files `readBlock` keeps open, by CID. */
  readonly #kept = new Map<string, { fd: number; size: number }>();
  readonly #packs: BlockPacks;
  readonly #packBelow: number;
  #nextTmp = 0;
  /** Block files, and folders whose names changed, written since the last sync (undefined: not tracked). */
  readonly #unsynced: { files: string[]; dirs: Set<string> } | undefined;
  /** Syncs of listed files under way (never rejects), and the first failure among them, for the next sync to report. */
  #syncing: Promise<void> = Promise.resolve();
  #syncFailure: StoreError | undefined;

  constructor(dataDir: string, options: FsBlockStoreOptions = {}) {
    this.dir = join(dataDir, 'blocks');
    this.description = `embedded store ${this.dir}`;
    this.#packs = new BlockPacks(this.dir, options.packBytes);
    this.#packBelow = options.packBelow ?? PACK_BLOCKS_BELOW;
    this.#unsynced = options.syncFiles === false ? undefined : { files: [], dirs: new Set() };
  }

  /** What opening others' packs took: entries read from their indexes, and pack bytes scanned. */
  get packIndexing(): { entriesFromIndexes: number; bytesScanned: number } {
    return this.#packs.indexing;
  }

  pathOf(cid: CID): string {
    const s = cid.toString();
    // The last characters of a base32 CID are evenly spread; the first ones are the shared prefix.
    return `${this.dir}/${s.slice(-2)}/${s}`; // path.join would normalise again on every read
  }

  /** Indexes the packs, once. */
  #loadPacks(): Promise<void> {
    return this.#readingPacks(this.#packs.load());
  }

  /** Looks again at the packs for what others appended since. */
  #refreshPacks(): Promise<void> {
    return this.#readingPacks(this.#packs.refresh());
  }

  /** A failure to read the packs (the packs folder unreadable) as the StoreError it is. */
  async #readingPacks(reading: Promise<void>): Promise<void> {
    try {
      await reading;
    } catch (cause) {
      throw new StoreError(`Cannot read the packs in ${this.#packs.dir}: ${(cause as Error).message}`, { cause });
    }
  }

  /** Where a block's bytes are: a block file, or an entry of a pack (undefined when the store lacks it). */
  async locate(cid: CID): Promise<PackedBlockPlace | { path: string; offset: 0; length: number } | undefined> {
    await this.#loadPacks();
    const packed = this.#packs.locate(cid) ?? (await this.#refreshPacks().then(() => this.#packs.locate(cid)));
    if (packed !== undefined) return packed;
    const path = this.pathOf(cid);
    const st = await stat(path).catch(() => undefined);
    return st === undefined ? undefined : { path, offset: 0, length: st.size };
  }

  async put(cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<void> {
    throwIfAborted(options?.signal);
    if (bytes.byteLength < this.#packBelow && packableCid(cid)) return this.#putPacked(cid, bytes);
    const path = this.pathOf(cid);
    // No stat first: on the record path almost every block is new, and a failed stat costs an exception.
    // Rewriting a block that is there (same bytes, atomic rename) is harmless; this process skips its own
    // while they are still there (`fetch-oracle gc` may have removed one that nothing needed at the time).
    // That check is a blocking stat: the entry is in the dentry cache (written moments ago), where a stat
    // through the pool cost ~7% of a 4 KiB record's time (issue #15).
    if (this.#written.has(path) && existsNow(path)) return;
    const shard = join(path, '..');
    const tmp = `${path}.${process.pid}.${this.#nextTmp++}.tmp`;
    try {
      if (bytes.byteLength < SYNC_WRITE_BELOW) {
        if (!this.#madeDirs.has(shard)) {
          mkdirSync(shard, { recursive: true });
          this.#madeShard(shard);
        }
        writeFileSync(tmp, bytes);
        renameSync(tmp, path);
      } else {
        if (!this.#madeDirs.has(shard)) {
          await mkdir(shard, { recursive: true });
          this.#madeShard(shard);
        }
        await writeFile(tmp, bytes);
        await rename(tmp, path);
      }
      this.#rememberWritten(path);
      this.#wroteFile(path, shard);
    } catch (cause) {
      this.#madeDirs.delete(shard); // a shard directory removed since (or a file in its way) is made again next time
      await unlink(tmp).catch(() => {}); // a full disk leaves no partial temp file behind
      throw new StoreError(`Cannot write block ${cid} to ${path}: ${(cause as Error).message}`, { cause });
    }
  }

  async #putPacked(cid: CID, bytes: Uint8Array): Promise<void> {
    if (!this.#packs.ready) await this.#loadPacks();
    if (this.#packs.holds(cid)) return;
    try {
      this.#packs.append(cid, bytes);
    } catch (cause) {
      throw new StoreError(`Cannot write block ${cid} to a pack in ${this.#packs.dir}: ${(cause as Error).message}`, { cause });
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

  /** Reads a block (unverified: wrap with `verifyingSource`). A file larger than any block is refused unread. */
  async get(cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    throwIfAborted(options?.signal);
    if (!this.#packs.ready) await this.#loadPacks();
    const bytes = this.readKept(cid, allocate) ?? (await this.#packs.readAsync(cid, allocate));
    if (bytes !== undefined) return bytes;
    try {
      return (await readWhole(this.pathOf(cid), allocate, false)).bytes;
    } catch (cause) {
      throwIfAborted(options?.signal);
      const packed = await this.#packedAfterRefresh(cid, cause, allocate);
      if (packed !== undefined) return packed;
      throw this.#readError(cid, cause);
    }
  }

  /** A block no file holds may be in a pack another process or store object wrote since the packs were read. */
  async #packedAfterRefresh(cid: CID, cause: unknown, alloc: (size: number) => Uint8Array): Promise<Uint8Array | undefined> {
    if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') return undefined;
    await this.#refreshPacks();
    return this.#packs.readAsync(cid, alloc);
  }

  /**
   * The block, at once, when `readBlock` holds its file open, else undefined: one blocking `pread` of a block
   * read moments ago (the page cache has it), where a read through the thread pool costs four round trips
   * (issue #15: ~70 us of a 4 KiB hit's time on one core). A block rewritten in place is read as it is now
   * (and refused by its caller's hash); one replaced by another file is read from the file held open until
   * `forget` (the replay calls it when a block fails its hash) or until it leaves the cache.
   */
  readKept(cid: CID, alloc: (size: number) => Uint8Array): Uint8Array | undefined {
    if (this.#packs.ready && this.#packs.size > 0) {
      const packed = this.#packs.read(cid, alloc, SYNC_READ_BELOW);
      if (packed === LARGE_BLOCK) return undefined; // read by `readBlock`, through the pool
      if (packed !== undefined) return packed;
    }
    const key = cid.toString();
    const kept = this.#kept.get(key);
    if (kept === undefined) return undefined;
    this.#kept.delete(key); // re-inserted below: Map order is the LRU order
    const bytes = alloc(kept.size);
    let filled = 0;
    try {
      while (filled < kept.size) {
        const n = readSync(kept.fd, bytes, filled, kept.size - filled, filled);
        if (n === 0) break; // shrunk: what is there is hashed and refused
        filled += n;
      }
    } catch {
      closeSync(kept.fd);
      return undefined; // read afresh through the path
    }
    this.#kept.set(key, kept);
    return filled === kept.size ? bytes : bytes.subarray(0, filled);
  }

  /**
   * Reads a block through the thread pool (a cold one waits for the disk without holding up other answers)
   * into memory `alloc` gives for its size, and keeps the file of a block under 1 MiB open for `readKept`
   * (OPEN_BLOCK_FILES of them, least recently used closed first). Unverified, like `get`.
   */
  async readBlock(cid: CID, alloc: (size: number) => Uint8Array): Promise<Uint8Array> {
    if (!this.#packs.ready) await this.#loadPacks();
    const packed = await this.#packs.readAsync(cid, alloc);
    if (packed !== undefined) return packed;
    const key = cid.toString();
    let read: { bytes: Uint8Array; fd: number | undefined; size: number };
    try {
      read = await readWhole(this.pathOf(cid), alloc, true);
    } catch (cause) {
      const packed = await this.#packedAfterRefresh(cid, cause, alloc);
      if (packed !== undefined) return packed;
      throw this.#readError(cid, cause);
    }
    if (read.fd !== undefined) {
      if (read.size >= KEEP_OPEN_BELOW || this.#kept.has(key)) closeSync(read.fd);
      else {
        this.#kept.set(key, { fd: read.fd, size: read.size });
        if (this.#kept.size > OPEN_BLOCK_FILES) this.forget(this.#kept.keys().next().value!);
      }
    }
    return read.bytes;
  }

  /** Closes the file `readBlock` keeps open for a block (a CID or its string), if any. */
  forget(cid: CID | string): void {
    const key = cid.toString();
    const kept = this.#kept.get(key);
    if (kept === undefined) return;
    this.#kept.delete(key);
    closeSync(kept.fd);
  }

  #readError(cid: CID, cause: unknown): Error {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return new BlockMissingError(cid.toString(), `Block ${cid} is not in the store ${this.dir}`);
    if (code === 'E2BIG') return new BlockCorruptError(cid.toString(), `Block ${cid} in ${this.pathOf(cid)} is ${(cause as Error).message} bytes (limit ${MAX_BLOCK_BYTES})`);
    return new StoreError(`Cannot read block ${cid}: ${(cause as Error).message}`, { cause });
  }

  async has(cid: CID, options?: AbortOptions): Promise<boolean> {
    throwIfAborted(options?.signal);
    if (!this.#packs.ready) await this.#loadPacks();
    if (this.#packs.has(cid)) return true;
    try {
      await stat(this.pathOf(cid));
      return true;
    } catch {
      await this.#refreshPacks();
      return this.#packs.has(cid);
    }
  }

  /** The embedded store is files in this process: always there (a full disk shows up as a put's StoreError). */
  check(options?: AbortOptions): Promise<void> {
    return nothingToDo(options?.signal);
  }

  pin(_cid: CID, options?: PinOptions): Promise<void> {
    return nothingToDo(options?.signal);
  }

  /** Every put is whole when it returns (a killed process loses none): syncing is all that is left to do. */
  flush(options?: AbortOptions): Promise<void> {
    return this.sync(options);
  }

  /**
   * Puts what was written since the last sync on disk, so a power loss loses none of it either: the packs'
   * appends, then block files and their names (unless `syncFiles` is off).
   */
  async sync(options?: AbortOptions): Promise<void> {
    await nothingToDo(options?.signal);
    try {
      await this.#packs.flush();
    } catch (cause) {
      throw new StoreError(`Cannot sync the packs in ${this.#packs.dir}: ${(cause as Error).message}`, { cause });
    }
    if (this.#unsynced === undefined) return;
    this.#syncUnsynced();
    await this.#syncing;
    const failure = this.#syncFailure;
    this.#syncFailure = undefined;
    if (failure !== undefined) throw failure;
  }

  #madeShard(shard: string): void {
    this.#madeDirs.add(shard);
    this.#unsynced?.dirs.add(this.dir); // the shard's own name
  }

  #wroteFile(path: string, shard: string): void {
    if (this.#unsynced === undefined) return;
    this.#unsynced.files.push(path);
    this.#unsynced.dirs.add(shard);
    if (this.#unsynced.files.length >= MAX_UNSYNCED_FILES) this.#syncUnsynced();
  }

  /** Starts syncing the files and folders listed so far, after what is under way; a failure waits for the next sync to report it. */
  #syncUnsynced(): void {
    const { files, dirs } = this.#unsynced!;
    if (files.length === 0 && dirs.size === 0) return;
    this.#unsynced!.files = [];
    this.#unsynced!.dirs = new Set();
    const sync = async (): Promise<void> => {
      try {
        for (let at = 0; at < files.length; at += FILE_SYNCS_AT_ONCE) await Promise.all(files.slice(at, at + FILE_SYNCS_AT_ONCE).map(syncFile));
        // Folders after their files: a name that survives names whole bytes.
        for (const dir of dirs) await syncDir(dir);
      } catch (cause) {
        this.#syncFailure ??= new StoreError(`Cannot sync block files in ${this.dir}: ${(cause as Error).message}`, { cause });
      }
    };
    this.#syncing = this.#syncing.then(sync);
  }

  /** Sets a block that failed verification aside (kept for inspection, never served again). */
  async quarantine(cid: CID): Promise<void> {
    if (!this.#packs.ready) await this.#packs.load().catch(() => {}); // never throws: a block file is set aside all the same
    if (this.#packs.quarantine(cid)) return;
    this.forget(cid);
    const path = this.pathOf(cid);
    this.#written.delete(path);
    try {
      await rename(path, `${path}.corrupt`);
    } catch {
      await unlink(path).catch(() => {});
    }
  }

  /** Closes the packs and the files `readBlock` keeps open (the store stays usable: it opens them again). Idempotent. */
  close(): Promise<void> {
    for (const key of [...this.#kept.keys()]) this.forget(key);
    this.#packs.close();
    return Promise.resolve();
  }

  #rememberWritten(path: string): void {
    if (this.#written.size >= MAX_REMEMBERED_WRITES) this.#written.delete(this.#written.values().next().value!);
    this.#written.add(path);
  }
}

/**
 * A file's bytes through the thread pool with the fewest round trips (open, fstat, read, and close unless the
 * descriptor is wanted); a file larger than any block fails with code E2BIG before it is read.
 */
function readWhole(path: string, alloc: (size: number) => Uint8Array, keepFd: boolean): Promise<{ bytes: Uint8Array; fd: number | undefined; size: number }> {
  return new Promise((resolve, reject) => {
    open(path, 'r', (err, fd) => {
      if (err !== null) return reject(err);
      const fail = (e: Error): void => close(fd, () => reject(e));
      fstat(fd, (err2, st) => {
        if (err2 !== null) return fail(err2);
        if (st.size > MAX_BLOCK_BYTES) return fail(Object.assign(new Error(String(st.size)), { code: 'E2BIG' }));
        const bytes = alloc(st.size);
        const step = (filled: number): void => {
          if (filled === st.size) return done(bytes);
          read(fd, bytes, filled, st.size - filled, filled, (err3, n) => {
            if (err3 !== null) return fail(err3);
            if (n === 0) return done(bytes.subarray(0, filled)); // shrunk: what is there is hashed and refused
            step(filled + n);
          });
        };
        const done = (b: Uint8Array): void => {
          if (keepFd) resolve({ bytes: b, fd, size: st.size });
          else close(fd, () => resolve({ bytes: b, fd: undefined, size: st.size }));
        };
        step(0);
      });
    });
  });
}

/** Whether a file is there, by a blocking stat (any failure: not there, so the block is written again). */
function existsNow(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch {
    return false;
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
