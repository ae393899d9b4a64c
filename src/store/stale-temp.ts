import { readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../log.ts';

/**
 * Temporary files this project makes, and whose process made them (the pid is in the name):
 * - the embedded store's `<blocks>/<shard>/<cid>.<pid>.<n>.tmp` (a block being written; renamed into place);
 * - request-body spool files `<tmpdir>/fetch-oracle-body-<pid>-<hex>` (src/proxy/exchange.ts);
 * - a netlock being written, `<netlock>.<pid>.<hex>.tmp` (src/netlock/file.ts).
 * A crash (kill -9, a full disk) leaves them behind; nothing else ever removes them.
 */
export const BLOCK_TEMP_RE = /^(.+)\.(\d+)\.(\d+)\.tmp$/;
export const SPOOL_TEMP_RE = /^fetch-oracle-body-(\d+)-[0-9a-f]+$/;
export const NETLOCK_TEMP_RE = /\.(\d+)\.[0-9a-f]+\.tmp$/;

/** A temp file older than this is stale even if a process with its pid runs (the pid was reused). */
export const STALE_TEMP_AGE_MS = 24 * 60 * 60 * 1000;

export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether a temp file written by `pid`, last modified at `mtimeMs`, is left over from a process that is gone. */
export function isStaleTemp(pid: number, mtimeMs: number, now = Date.now()): boolean {
  if (pid === process.pid) return false;
  return !processAlive(pid) || now - mtimeMs > STALE_TEMP_AGE_MS;
}

export interface TempSweep {
  files: number;
  bytes: number;
  paths: string[];
}

async function sizeAndTime(path: string): Promise<{ size: number; mtimeMs: number } | undefined> {
  try {
    const s = await stat(path);
    return { size: s.size, mtimeMs: s.mtimeMs };
  } catch {
    return undefined;
  }
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/** Stale spool files of request bodies in the system temp directory. */
export async function staleSpoolFiles(dir = tmpdir()): Promise<Array<{ path: string; size: number }>> {
  const out: Array<{ path: string; size: number }> = [];
  for (const name of await listDir(dir)) {
    const m = SPOOL_TEMP_RE.exec(name);
    if (m === null) continue;
    const path = join(dir, name);
    const st = await sizeAndTime(path);
    if (st !== undefined && isStaleTemp(Number(m[1]), st.mtimeMs)) out.push({ path, size: st.size });
  }
  return out;
}

/** Stale temp files of the embedded store under `<dataDir>/blocks`. */
export async function staleBlockTempFiles(dataDir: string): Promise<Array<{ path: string; size: number }>> {
  const blocks = join(dataDir, 'blocks');
  const out: Array<{ path: string; size: number }> = [];
  for (const shard of await listDir(blocks)) {
    for (const name of await listDir(join(blocks, shard))) {
      const m = BLOCK_TEMP_RE.exec(name);
      if (m === null) continue;
      const path = join(blocks, shard, name);
      const st = await sizeAndTime(path);
      if (st !== undefined && isStaleTemp(Number(m[2]), st.mtimeMs)) out.push({ path, size: st.size });
    }
  }
  return out;
}

/** Stale temp files of a netlock being written at `netlockPath` (beside it). */
export async function staleNetlockTempFiles(netlockPath: string): Promise<Array<{ path: string; size: number }>> {
  const dir = join(netlockPath, '..');
  const base = netlockPath.slice(dir.length + 1);
  const out: Array<{ path: string; size: number }> = [];
  for (const name of await listDir(dir)) {
    if (!name.startsWith(`${base}.`)) continue;
    const m = NETLOCK_TEMP_RE.exec(name.slice(base.length));
    if (m === null) continue;
    const path = join(dir, name);
    const st = await sizeAndTime(path);
    if (st !== undefined && isStaleTemp(Number(m[1]), st.mtimeMs)) out.push({ path, size: st.size });
  }
  return out;
}

/**
 * Start-up clean-up: removes the temp files crashed processes left in the data directory's store, beside
 * the netlock (when given) and in the system temp directory (request-body spools). Files of live processes
 * are never touched. Never throws: a clean-up that fails is logged and the start goes on.
 */
export async function removeStaleTempFiles(dataDir: string, logger: Logger, netlockPath?: string): Promise<TempSweep> {
  const sweep: TempSweep = { files: 0, bytes: 0, paths: [] };
  try {
    const found = [...(await staleBlockTempFiles(dataDir)), ...(await staleSpoolFiles()), ...(netlockPath === undefined ? [] : await staleNetlockTempFiles(netlockPath))];
    for (const f of found) {
      try {
        await rm(f.path, { force: true });
        sweep.files++;
        sweep.bytes += f.size;
        sweep.paths.push(f.path);
      } catch (err) {
        logger.warn('cannot remove stale temp file %s: %s', f.path, (err as Error).message);
      }
    }
    if (sweep.files > 0) logger.info('removed %d stale temp file(s) (%d bytes) left by processes that are gone', sweep.files, sweep.bytes);
  } catch (err) {
    logger.warn('stale temp file clean-up failed: %s', (err as Error).message);
  }
  return sweep;
}
