import type { FileHandle } from 'node:fs/promises';
import type { CID } from 'multiformats/cid';
import { BlockMissingError, InvalidNetlockError, throwIfAborted } from '../errors.ts';
import { RAW_CODE } from '../protocol/blocks.ts';
import type { AbortOptions, BlockSource } from '../protocol/blocks.ts';
import { carLinks } from './car-links.ts';
import { cidKey } from '../protocol/cid-key.ts';

/** How much of the CAR one read brings in around a small block: an aligned window of the file. */
const WINDOW_BYTES = 256 * 1024;
/** Windows kept, least recently used dropped first. */
const WINDOWS_KEPT = 4;
/** Blocks larger than this (body leaves) are read alone, straight into their own buffer. */
const ALONE_BYTES = WINDOW_BYTES / 4;

/**
 * The blocks of the CAR by CID, read back from the file by offset. Small blocks come from aligned windows of
 * the file: verification reads them nearly in file order (a CAR is written depth first) and the commit in
 * the reverse order, and one `pread` per 4 KiB block made the import of 100,000 entries wait on the thread
 * pool for most of its time (issue #15). A few windows are kept, for a block many entries share (one body
 * under many URLs). Each window is a buffer of its own, never refilled, so that concurrent reads never see
 * it change.
 *
 * The children of every block read are remembered as keys (`cidKey`), so that the walk for the commit need
 * not read again the blocks verification read: records and body nodes, nearly all of a netlock's non-leaf
 * blocks. A leaf index page is not remembered: its links carry the entries' names, which a walk reads from
 * the page again, and which would cost a string per entry kept for the whole import (issue #15).
 */
export class StagedBlocks implements BlockSource {
  readonly #handle: FileHandle;
  readonly #name: string;
  /**
   * Blocks by key, each holding its key: the walk and the children lists use that one string, not a copy per
   * use (200,000 blocks' keys are 11 MB each time), and mark blocks reached on it rather than in a set.
   */
  readonly #index = new Map<string, { key: string; offset: number; length: number; reached: boolean }>();
  readonly #children = new Map<string, string[]>();
  /** Windows (read, or being read) by their start, in the order they were last used. */
  readonly #windows = new Map<number, Promise<Uint8Array>>();

  constructor(handle: FileHandle, name: string) {
    this.#handle = handle;
    this.#name = name;
  }

  add(cid: CID, offset: number, length: number): void {
    const key = cidKey(cid);
    if (!this.#index.has(key)) this.#index.set(key, { key, offset, length, reached: false });
  }

  has(cid: CID): boolean {
    return this.#index.has(cidKey(cid));
  }

  /** `has`, by `cidKey`. */
  hasKey(key: string): boolean {
    return this.#index.has(key);
  }

  /**
   * Marks a block reached by a walk: its key as the index holds it when this is the first time, undefined when
   * it was reached before or the CAR lacks it.
   */
  reach(key: string): string | undefined {
    const at = this.#index.get(key);
    if (at === undefined || at.reached) return undefined;
    at.reached = true;
    return at.key;
  }

  get size(): number {
    return this.#index.size;
  }

  /** Forgets a block (committed, not to be read again): the index shrinks as the store's grows. */
  release(key: string): void {
    this.#index.delete(key);
  }

  async get(cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    throwIfAborted(options?.signal);
    const key = cidKey(cid);
    const at = this.#index.get(key);
    if (at === undefined) throw new BlockMissingError(cid.toString(), `Block ${cid} is not in CAR ${this.#name}`);
    const bytes = await this.#read(at.offset, at.length, cid);
    if (cid.code !== RAW_CODE && !this.#children.has(key)) {
      try {
        const links = carLinks(cid, bytes, '');
        if (links.every((link) => link.label === '')) {
          this.#children.set(key, links.map((link) => {
            const child = cidKey(link.cid);
            return this.#index.get(child)?.key ?? child;
          }));
        }
      } catch {
        // Malformed: the caller's verification or decoding reports it.
      }
    }
    return bytes;
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
   * The children (as keys) of a block read before that carries no entry names, or undefined; forgotten once
   * taken, since a walk takes each block's once.
   */
  takeChildren(key: string): string[] | undefined {
    const children = this.#children.get(key);
    this.#children.delete(key);
    return children;
  }
}
