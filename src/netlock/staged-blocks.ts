import type { FileHandle } from 'node:fs/promises';
import type { CID } from 'multiformats/cid';
import { BlockMissingError, InvalidNetlockError, throwIfAborted } from '../errors.ts';
import { RAW_CODE } from '../protocol/blocks.ts';
import type { AbortOptions, BlockSource } from '../protocol/blocks.ts';
import { carLinks } from './car-links.ts';
import type { CarLink } from './car-links.ts';
import { cidKey } from '../protocol/cid-key.ts';

/**
 * The blocks of the CAR by CID, read back from the file by offset (one `pread` each). The links of every
 * block read are remembered, so that the walk for the commit need not read the blocks verification read.
 */
export class StagedBlocks implements BlockSource {
  readonly #handle: FileHandle;
  readonly #name: string;
  readonly #index = new Map<string, { offset: number; length: number }>();
  readonly #links = new Map<string, CarLink[]>();

  constructor(handle: FileHandle, name: string) {
    this.#handle = handle;
    this.#name = name;
  }

  add(cid: CID, offset: number, length: number): void {
    const key = cidKey(cid);
    if (!this.#index.has(key)) this.#index.set(key, { offset, length });
  }

  has(cid: CID): boolean {
    return this.#index.has(cidKey(cid));
  }

  get size(): number {
    return this.#index.size;
  }

  async get(cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    throwIfAborted(options?.signal);
    const at = this.#index.get(cidKey(cid));
    if (at === undefined) throw new BlockMissingError(cid.toString(), `Block ${cid} is not in CAR ${this.#name}`);
    const bytes = new Uint8Array(at.length);
    let done = 0;
    while (done < at.length) {
      const { bytesRead } = await this.#handle.read(bytes, done, at.length - done, at.offset + done);
      if (bytesRead === 0) throw new InvalidNetlockError(`CAR ${this.#name} shrank while it was being imported (block ${cid})`);
      done += bytesRead;
    }
    if (cid.code !== RAW_CODE && !this.#links.has(cidKey(cid))) {
      try {
        // Labels are filled in by the walk (a leaf page labels its records with their entries).
        this.#links.set(cidKey(cid), carLinks(cid, bytes, ''));
      } catch {
        // Malformed: the caller's verification or decoding reports it.
      }
    }
    return bytes;
  }

  /** The links of a block read before, or undefined. */
  linksRead(cid: CID): CarLink[] | undefined {
    return this.#links.get(cidKey(cid));
  }
}
