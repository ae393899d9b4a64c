import type { FileHandle } from 'node:fs/promises';
import type { CID } from 'multiformats/cid';
import { BlockMissingError, InvalidNetlockError, throwIfAborted } from '../errors.ts';
import { RAW_CODE } from '../protocol/blocks.ts';
import type { AbortOptions, BlockSource } from '../protocol/blocks.ts';
import { carLinks } from './car-links.ts';
import { CidIndex } from '../protocol/cid-index.ts';

/** How much of the CAR one read brings in around a small block: an aligned window of the file. */
const WINDOW_BYTES = 256 * 1024;
/** Windows kept, least recently used dropped first. */
const WINDOWS_KEPT = 4;
/** Blocks larger than this (body leaves) are read alone, straight into their own buffer. */
const ALONE_BYTES = WINDOW_BYTES / 4;

/** Flags of an id. */
const REACHED = 1;
const RELEASED = 2;
/** Its children are in `#childIds` from `#childStarts[id]`, `#childCounts[id]` of them. */
const REMEMBERED = 4;

/**
 * The blocks of the CAR by CID, read back from the file by offset. Small blocks come from aligned windows of
 * the file: verification reads them nearly in file order (a CAR is written depth first) and the commit in
 * the reverse order, and one `pread` per 4 KiB block made the import of 100,000 entries wait on the thread
 * pool for most of its time (issue #15). A few windows are kept, for a block many entries share (one body
 * under many URLs). Each window is a buffer of its own, never refilled, so that concurrent reads never see
 * it change.
 *
 * Blocks are numbered (`CidIndex`), and what is known of each is held in typed arrays by its id: where it is,
 * whether a walk reached it, and its children's ids once a read found them, so that the walk for the commit
 * need not read again the blocks verification read (records and body nodes, nearly all of a netlock's
 * non-leaf blocks). A leaf index page's children are not remembered: its links carry the entries' names,
 * which a walk reads from the page again. With a `Map` of `cidKey` strings, an object per block and an array
 * of keys per block read, `import` of 200,000 entries peaked at 242 MB (issue #15).
 */
export class StagedBlocks implements BlockSource {
  readonly #handle: FileHandle;
  readonly #name: string;
  readonly #index = new CidIndex();
  #offsets = new Float64Array(0);
  #lengths = new Uint32Array(0);
  #flags = new Uint8Array(0);
  #childStarts = new Uint32Array(0);
  #childCounts = new Uint32Array(0);
  #childIds = new Uint32Array(1024);
  #childrenUsed = 0;
  #released = 0;
  /** Windows (read, or being read) by their start, in the order they were last used. */
  readonly #windows = new Map<number, Promise<Uint8Array>>();

  constructor(handle: FileHandle, name: string) {
    this.#handle = handle;
    this.#name = name;
  }

  add(cid: CID, offset: number, length: number): void {
    const before = this.#index.size;
    const id = this.#index.add(cid);
    if (id < before) return; // a second copy in the CAR: the first is read
    const index = this.#index;
    this.#offsets = index.fit(this.#offsets);
    this.#lengths = index.fit(this.#lengths);
    this.#flags = index.fit(this.#flags);
    this.#childStarts = index.fit(this.#childStarts);
    this.#childCounts = index.fit(this.#childCounts);
    this.#offsets[id] = offset;
    this.#lengths[id] = length;
  }

  /** The id of a block the CAR holds and that was not released, or -1. */
  idOf(cid: CID): number {
    const id = this.#index.idOf(cid);
    return id === -1 || (this.#flags[id]! & RELEASED) !== 0 ? -1 : id;
  }

  has(cid: CID): boolean {
    return this.idOf(cid) !== -1;
  }

  /** The CID of a block by its id. */
  cidOf(id: number): CID {
    return this.#index.cidOf(id);
  }

  /** Marks a block reached by a walk: true the first time. */
  reach(id: number): boolean {
    if ((this.#flags[id]! & REACHED) !== 0) return false;
    this.#flags[id]! |= REACHED;
    return true;
  }

  /** Blocks held (not released). */
  get size(): number {
    return this.#index.size - this.#released;
  }

  /** Forgets a block (committed, not to be read again). */
  release(id: number): void {
    if ((this.#flags[id]! & RELEASED) !== 0) return;
    this.#flags[id]! |= RELEASED;
    this.#released++;
  }

  async get(cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    throwIfAborted(options?.signal);
    const id = this.idOf(cid);
    if (id === -1) throw new BlockMissingError(cid.toString(), `Block ${cid} is not in CAR ${this.#name}`);
    const bytes = await this.#read(this.#offsets[id]!, this.#lengths[id]!, cid);
    if (cid.code !== RAW_CODE && (this.#flags[id]! & REMEMBERED) === 0) {
      try {
        const links = carLinks(cid, bytes, '');
        // Remembered only when every child is in the CAR (a walk reads the block again to name one that is not).
        const ids = links.map((link) => (link.label === '' ? this.idOf(link.cid) : -1));
        if (!ids.includes(-1)) this.#remember(id, ids);
      } catch {
        // Malformed: the caller's verification or decoding reports it.
      }
    }
    return bytes;
  }

  #remember(id: number, children: number[]): void {
    if (this.#childrenUsed + children.length > this.#childIds.length) {
      const grown = new Uint32Array(Math.max(this.#childrenUsed + children.length, this.#childIds.length * 2));
      grown.set(this.#childIds.subarray(0, this.#childrenUsed));
      this.#childIds = grown;
    }
    this.#childStarts[id] = this.#childrenUsed;
    this.#childCounts[id] = children.length;
    this.#childIds.set(children, this.#childrenUsed);
    this.#childrenUsed += children.length;
    this.#flags[id]! |= REMEMBERED;
  }

  async #read(offset: number, length: number, cid: CID): Promise<Uint8Array> {
    if (length > ALONE_BYTES) {
      const bytes = new Uint8Array(length);
      if ((await this.#fill(bytes, offset)) < length) throw this.#shrank(cid);
      return bytes;
    }
    const start = offset - (offset % WINDOW_BYTES);
    const window = await this.#windowCovering(start, offset + length);
    if (offset + length > start + window.byteLength) throw this.#shrank(cid);
    return window.slice(offset - start, offset - start + length);
  }

  /**
   * The window at `start`, reaching `end` if the file does: the one kept, or one read now. A read under way is
   * shared: the commit's parallel writers ask for the same window at once, and each read it whole.
   */
  async #windowCovering(start: number, end: number): Promise<Uint8Array> {
    const kept = this.#windows.get(start);
    if (kept !== undefined) {
      this.#windows.delete(start);
      this.#windows.set(start, kept);
      const window = await kept;
      if (start + window.byteLength >= end) return window;
    }
    const reading = this.#readWindow(start, Math.max(WINDOW_BYTES, end - start));
    this.#windows.delete(start);
    this.#windows.set(start, reading);
    if (this.#windows.size > WINDOWS_KEPT) this.#windows.delete(this.#windows.keys().next().value!);
    // A failed read is not kept: the next block asks again (and names itself in the error).
    reading.catch(() => {
      if (this.#windows.get(start) === reading) this.#windows.delete(start);
    });
    return reading;
  }

  async #readWindow(start: number, size: number): Promise<Uint8Array> {
    const buffer = new Uint8Array(size);
    return buffer.subarray(0, await this.#fill(buffer, start));
  }

  /** Reads from `offset` until `buffer` is full or the file ends; the number of bytes read. */
  async #fill(buffer: Uint8Array, offset: number): Promise<number> {
    let done = 0;
    while (done < buffer.byteLength) {
      const { bytesRead } = await this.#handle.read(buffer, done, buffer.byteLength - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done;
  }

  #shrank(cid: CID): InvalidNetlockError {
    return new InvalidNetlockError(`CAR ${this.#name} shrank while it was being imported (block ${cid})`);
  }

  /**
   * The children (as ids) of a block read before that carries no entry names and whose children are all in
   * the CAR, or undefined; forgotten once taken, since a walk takes each block's once.
   */
  takeChildren(id: number): Uint32Array | undefined {
    if ((this.#flags[id]! & REMEMBERED) === 0) return undefined;
    this.#flags[id]! &= ~REMEMBERED;
    const start = this.#childStarts[id]!;
    return this.#childIds.slice(start, start + this.#childCounts[id]!);
  }
}
