import { mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CID } from 'multiformats/cid';
import { BlockMissingError, StoreError, throwIfAborted } from '../errors.ts';
import type { AbortOptions, BlockSink, BlockSource } from '../protocol/blocks.ts';

/**
 * The embedded block store: one file per block under `<dir>/blocks/<2 chars>/<cid>`. Writes are atomic
 * (temporary file + rename), so a crash never leaves a partial block under a CID. Reads are not verified
 * here; wrap with `verifyingSource` where bytes leave the process.
 */
export class FsBlockStore implements BlockSource, BlockSink {
  readonly dir: string;
  readonly #madeDirs = new Set<string>();
  /** Blocks this process wrote (bounded: a reminder, not an index). */
  readonly #written = new Set<string>();
  #nextTmp = 0;

  constructor(dir: string) {
    this.dir = join(dir, 'blocks');
  }

  pathOf(cid: CID): string {
    const s = cid.toString();
    // The last characters of a base32 CID are evenly spread; the first ones are the shared prefix.
    return join(this.dir, s.slice(-2), s);
  }

  async put(cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<void> {
    throwIfAborted(options?.signal);
    const path = this.pathOf(cid);
    // No stat first: on the record path almost every block is new, and a failed stat costs an exception.
    // Rewriting a block that is there (same bytes, atomic rename) is harmless; this process skips its own
    // while they are still there (`fetch-oracle gc` may have removed one that nothing needed at the time).
    if (this.#written.has(path) && (await exists(path))) return;
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
      await unlink(tmp).catch(() => {}); // a full disk leaves no partial temp file behind
      throw new StoreError(`Cannot write block ${cid} to ${path}: ${(cause as Error).message}`, { cause });
    }
  }

  async get(cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    throwIfAborted(options?.signal);
    try {
      return await readFile(this.pathOf(cid));
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new BlockMissingError(cid.toString(), `Block ${cid} is not in the store ${this.dir}`);
      }
      throw new StoreError(`Cannot read block ${cid}: ${(cause as Error).message}`, { cause });
    }
  }

  has(cid: CID): Promise<boolean> {
    return exists(this.pathOf(cid));
  }

  #rememberWritten(path: string): void {
    if (this.#written.size >= MAX_REMEMBERED_WRITES) this.#written.delete(this.#written.values().next().value!);
    this.#written.add(path);
  }

  /** Moves a block that failed verification aside (kept for inspection, never served again). */
  async quarantine(cid: CID): Promise<void> {
    const path = this.pathOf(cid);
    this.#written.delete(path);
    try {
      await rename(path, `${path}.corrupt`);
    } catch {
      await unlink(path).catch(() => {});
    }
  }
}

const MAX_REMEMBERED_WRITES = 65_536;

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
