import { randomBytes } from 'node:crypto';
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
    if (await exists(path)) return;
    const shard = join(path, '..');
    try {
      if (!this.#madeDirs.has(shard)) {
        await mkdir(shard, { recursive: true });
        this.#madeDirs.add(shard);
      }
      const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
      await writeFile(tmp, bytes);
      await rename(tmp, path);
    } catch (cause) {
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

  /** Moves a block that failed verification aside (kept for inspection, never served again). */
  async quarantine(cid: CID): Promise<void> {
    const path = this.pathOf(cid);
    try {
      await rename(path, `${path}.corrupt`);
    } catch {
      await unlink(path).catch(() => {});
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
