/**
 * `--output DIR`: the output drive's tar lands in DIR, which must be absent or empty (a run never mixes its
 * files with what was there). It is extracted next to DIR first and renamed into place, so DIR is either
 * untouched or complete.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { InvalidConfigError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { extractOutputTar } from './drive-tar.ts';

/** Refuses an output directory that exists and is not an empty directory (checked before boot). */
export async function checkOutputDir(dir: string): Promise<void> {
  let entries: string[];
  try {
    if (!(await stat(dir)).isDirectory()) throw new InvalidConfigError(`--output ${dir} exists and is not a directory`);
    entries = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err instanceof InvalidConfigError ? err : new InvalidConfigError(`Cannot use --output ${dir}: ${(err as Error).message}`);
  }
  if (entries.length > 0) throw new InvalidConfigError(`--output ${dir} is not empty: name a new or empty directory (the run's output replaces nothing)`);
}

/** Extracts the output tar into `dir` (absent or empty), atomically. */
export async function copyOutput(tar: Uint8Array, dir: string, logger: Logger): Promise<{ files: number; bytes: number }> {
  await checkOutputDir(dir);
  await mkdir(dirname(dir), { recursive: true });
  const tmp = join(dirname(dir), `.${basename(dir)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  await mkdir(tmp);
  try {
    const stats = tar.byteLength === 0 ? { files: 0, bytes: 0 } : await extractOutputTar(tar, tmp, logger);
    await rmdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    await rename(tmp, dir);
    return stats;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}
