import type { CID } from 'multiformats/cid';
import { CidIndex } from '../protocol/cid-index.ts';

/** Flags of a block. */
const FILE = 1;
const IN_RUNNING_PACK = 2;
const LIVE = 4;
const GOES = 8;
const ROOT_COUNTED = 16;

/**
 * The blocks of a store as `gc` sees them, by id (`CidIndex`): size and age (a packed block's: its pack's),
 * whether it has a file where the store reads it from, whether a pack a running process writes holds a copy
 * (gc leaves those), whether some root reaches it, and whether this gc removes it. In typed arrays, ~80 bytes
 * a block: `gc` of a 200,000-entry netlock's store (400,000 blocks) peaked at 257–262 MB with a `Map` of
 * `cidKey` strings and an object per block, and every pack entry listed as an object (issue #15).
 */
export class StoredBlocks {
  readonly #index = new CidIndex();
  #sizes = new Float64Array(0);
  #mtimes = new Float64Array(0);
  #flags = new Uint8Array(0);
  /** Files of a block under another name than the one the store reads (rare: a file copied in by hand). */
  readonly #otherFiles = new Map<number, string[]>();

  /** Blocks known. */
  get count(): number {
    return this.#index.size;
  }

  /** A block file: at the path the store reads `cid` from (`canonical`), or another. */
  addFile(cid: CID, path: string, canonical: boolean, size: number, mtimeMs: number): void {
    const id = this.#add(cid, size, mtimeMs);
    if (canonical) this.#flags[id]! |= FILE;
    else this.#otherFiles.set(id, [...(this.#otherFiles.get(id) ?? []), path]);
  }

  /** A copy in a pack; the id of its block. A block file's size and age stand over a pack's. */
  addPacked(cid: CID, size: number, mtimeMs: number, inRunningPack: boolean): number {
    const id = this.#add(cid, size, mtimeMs);
    if (inRunningPack) this.#flags[id]! |= IN_RUNNING_PACK;
    return id;
  }

  #add(cid: CID, size: number, mtimeMs: number): number {
    const before = this.#index.size;
    const id = this.#index.add(cid);
    if (id < before) return id;
    this.#sizes = this.#index.fit(this.#sizes);
    this.#mtimes = this.#index.fit(this.#mtimes);
    this.#flags = this.#index.fit(this.#flags);
    this.#sizes[id] = size;
    this.#mtimes[id] = mtimeMs;
    return id;
  }

  /** The id of `cid`, or -1 when the store does not hold it. */
  idOf(cid: CID): number {
    return this.#index.idOf(cid);
  }

  cidOf(id: number): CID {
    return this.#index.cidOf(id);
  }

  /** Whether the block's CID is a CIDv1 with this one-byte codec (read from its bytes: no CID made). */
  hasCodec(id: number, code: number): boolean {
    return code < 0x80 && this.#index.byteOf(id, 0) === 1 && this.#index.byteOf(id, 1) === code;
  }

  sizeOf(id: number): number {
    return this.#sizes[id]!;
  }

  mtimeOf(id: number): number {
    return this.#mtimes[id]!;
  }

  inRunningPack(id: number): boolean {
    return (this.#flags[id]! & IN_RUNNING_PACK) !== 0;
  }

  /** Whether the block has a file where the store reads it; `otherFiles` gives the rest. */
  hasFile(id: number): boolean {
    return (this.#flags[id]! & FILE) !== 0;
  }

  otherFiles(id: number): readonly string[] {
    return this.#otherFiles.get(id) ?? [];
  }

  isLive(id: number): boolean {
    return (this.#flags[id]! & LIVE) !== 0;
  }

  /** Marks a block live: true the first time. */
  markLive(id: number): boolean {
    return this.#set(id, LIVE);
  }

  /** Counts a block as a root once: true the first time. */
  countRoot(id: number): boolean {
    return this.#set(id, ROOT_COUNTED);
  }

  goes(id: number): boolean {
    return (this.#flags[id]! & GOES) !== 0;
  }

  markGoes(id: number): void {
    this.#flags[id]! |= GOES;
  }

  #set(id: number, flag: number): boolean {
    if ((this.#flags[id]! & flag) !== 0) return false;
    this.#flags[id]! |= flag;
    return true;
  }
}
