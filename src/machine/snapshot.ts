/**
 * Fast start (docs/cartesi.md "Snapshot"): the machine stored at its first control yield (`{"op":"config"}`:
 * booted, the shim loaded and its CA made, nothing run-specific read yet), keyed by everything that state
 * depends on: the image, kernel and emulator bytes, the RAM and drive sizes, the bootargs. Every later run
 * with the same key loads it, swaps in its own input drive and answers the same yield, so its root hash is
 * the one a cold boot gives (the emulator's store/load is deterministic).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { throwIfAborted } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { AbortOptions } from '../protocol/blocks.ts';
import type { MachineDriver } from './machine-driver.ts';

/** Bump when what is stored changes meaning (e.g. a new snapshot point). */
export const SNAPSHOT_FORMAT = 1;
const MACHINE_SUBDIR = 'machine';
const META_FILE = 'snapshot.json';
const DIGESTS_FILE = 'digests.json';

export interface SnapshotKeyParts {
  format: number;
  /** sha256 (hex) of the root image, the kernel and the emulator binary. */
  image: string;
  kernel: string;
  emulator: string;
  /** The server's JSON-RPC API version. */
  jsonrpcApi: string;
  ramMib: number;
  inputMib: number;
  outputMib: number;
  resultBytes: number;
  bootargs: string;
}

/** The cache key: sha256 of the parts as JSON (field order fixed by SnapshotKeyParts' construction). */
export function snapshotKey(parts: SnapshotKeyParts): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

interface DigestMemo {
  [path: string]: { dev: number; ino: number; size: number; mtimeMs: number; sha256: string };
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}

/** A machine snapshot directory per key under `dir` (`DATA/machine-snapshots`). */
export class SnapshotCache {
  readonly dir: string;
  readonly #logger: Logger;

  constructor(dir: string, logger: Logger) {
    this.dir = dir;
    this.#logger = logger;
  }

  /**
   * sha256 of a file, remembered by (device, inode, size, mtime) so that a 512 MiB image is read once, not
   * on every run.
   */
  async fileSha256(path: string, options: AbortOptions = {}): Promise<string> {
    const st = await stat(path);
    const memoPath = join(this.dir, DIGESTS_FILE);
    let memo: DigestMemo = {};
    try {
      memo = JSON.parse(await readFile(memoPath, 'utf8')) as DigestMemo;
    } catch {
      memo = {};
    }
    const known = memo[path];
    if (known !== undefined && known.dev === st.dev && known.ino === st.ino && known.size === st.size && known.mtimeMs === st.mtimeMs) return known.sha256;
    throwIfAborted(options.signal);
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
    const sha256 = hash.digest('hex');
    memo[path] = { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, sha256 };
    await mkdir(this.dir, { recursive: true });
    await writeAtomic(memoPath, `${JSON.stringify(memo)}\n`).catch((err: unknown) => this.#logger.warn('cannot remember file digests in %s: %s', memoPath, (err as Error).message));
    return sha256;
  }

  /** The stored machine's directory for `key`, when there is a complete one. */
  async find(key: string): Promise<string | undefined> {
    const dir = join(this.dir, key);
    try {
      const meta = JSON.parse(await readFile(join(dir, META_FILE), 'utf8')) as { key?: unknown };
      if (meta.key !== key) return undefined;
      await stat(join(dir, MACHINE_SUBDIR));
      return join(dir, MACHINE_SUBDIR);
    } catch {
      return undefined;
    }
  }

  /**
   * Stores the parked machine under `key`: into a temporary directory, then renamed into place, so that a
   * reader never finds half a snapshot and two runs storing at once keep one. Returns its root hash.
   */
  async store(driver: MachineDriver, key: string, parts: SnapshotKeyParts, info: Record<string, unknown>, options: AbortOptions = {}): Promise<string> {
    await mkdir(this.dir, { recursive: true });
    const tmp = join(this.dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    await mkdir(tmp);
    try {
      // Hashing first stores an up-to-date hash tree: a machine loaded from it then hashes only the pages
      // its run touches (measured: the final root hash of a run took ~6 s instead of ~1 s without it). The
      // hash names the build environment, as a template hash names a Cartesi application.
      const rootHash = Buffer.from(await driver.rootHash(options)).toString('hex');
      // The emulator refuses to store into an existing directory: give it a fresh one inside ours.
      await driver.store(join(tmp, MACHINE_SUBDIR), { sharing: 'all', ...(options.signal === undefined ? {} : { signal: options.signal }) });
      await writeFile(join(tmp, META_FILE), `${JSON.stringify({ key, rootHash, parts, ...info }, null, 2)}\n`);
      try {
        await rename(tmp, join(this.dir, key));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw err;
        this.#logger.info('another run stored snapshot %s first; keeping that one', key);
        await rm(tmp, { recursive: true, force: true });
      }
      return rootHash;
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
  }
}
