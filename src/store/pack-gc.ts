import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import { readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { cidKey } from '../protocol/cid-key.ts';
import { PACK_HEADER_BYTES, PACK_MAGIC, PACK_NAME_RE, PACK_QUARANTINED, packWriterRunning, scanPack, sealedPackName } from './pack-file.ts';
import { BLOCK_TEMP_RE, isStaleTemp } from './stale-temp.ts';

export interface PackListingEntry {
  /** The entry's CID as `cidKey` (`cidFromKey` gives the CID): a store of 200,000 blocks lists as many. */
  key: string;
  offset: number;
  cidLength: number;
  length: number;
  quarantined: boolean;
}

/** One pack as `gc` sees it. */
export interface PackListing {
  name: string;
  path: string;
  size: number;
  mtimeMs: number;
  /** Not sealed, and its writer (the pid in its name) still runs: it may append yet, so gc leaves it. */
  writerRunning: boolean;
  entries: PackListingEntry[];
  /** The end of its last whole entry. */
  end: number;
  damage: string | undefined;
}

/** The packs in `dir`, every entry listed, and the temp files of pack rewrites whose process is gone. */
export async function listPacks(dir: string, now = Date.now()): Promise<{ packs: PackListing[]; temps: Array<{ path: string; size: number }> }> {
  const packs: PackListing[] = [];
  const temps: Array<{ path: string; size: number }> = [];
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { packs, temps };
    throw err;
  }
  for (const name of names.sort()) {
    const path = join(dir, name);
    const isPack = PACK_NAME_RE.test(name);
    const tmp = isPack ? null : BLOCK_TEMP_RE.exec(name);
    if (!isPack && tmp === null) continue; // not ours: left alone
    const st = await stat(path).catch(() => undefined);
    if (st === undefined || !st.isFile()) continue;
    if (tmp !== null) {
      if (isStaleTemp(Number(tmp[2]), st.mtimeMs, now)) temps.push({ path, size: st.size });
      continue;
    }
    const entries: PackListingEntry[] = [];
    const fd = openSync(path, 'r');
    try {
      const scan = await scanPack(fd, 0, st.size, (e) => entries.push({ key: cidKey(e.cid), offset: e.offset, cidLength: e.cidLength, length: e.length, quarantined: e.state === PACK_QUARANTINED }));
      packs.push({ name, path, size: st.size, mtimeMs: st.mtimeMs, writerRunning: packWriterRunning(name), entries, end: scan.end, damage: scan.damage });
    } finally {
      closeSync(fd);
    }
  }
  return { packs, temps };
}

/**
 * Writes a pack again with only the entries `keep` accepts (never its quarantined ones, nor a torn or damaged
 * tail): into a temp file, synced, renamed to a new pack, and only then is the old one removed, so a crash
 * leaves both (a copy twice, harmless) and never neither. A reader holding the old pack open reads on from it.
 * Nothing is written when nothing goes; a pack left with nothing is removed. The bytes dropped from its tail.
 */
export async function rewritePack(dir: string, pack: PackListing, keep: (e: PackListingEntry) => boolean, options: { dryRun: boolean }): Promise<{ droppedTail: number }> {
  const kept = pack.entries.filter((e) => !e.quarantined && keep(e));
  const droppedTail = pack.size - pack.end;
  if (kept.length === pack.entries.length && droppedTail === 0) return { droppedTail };
  if (options.dryRun) return { droppedTail };
  if (kept.length === 0) {
    await rm(pack.path, { force: true });
    return { droppedTail };
  }
  const name = sealedPackName(randomBytes(6).toString('hex'));
  const tmp = join(dir, `${name}.${process.pid}.0.tmp`);
  const from = openSync(pack.path, 'r');
  const to = openSync(tmp, 'wx', 0o644);
  try {
    writeSync(to, PACK_MAGIC);
    for (const e of kept) {
      const entry = Buffer.allocUnsafe(PACK_HEADER_BYTES + e.cidLength + e.length);
      if (readSync(from, entry, 0, entry.byteLength, e.offset) !== entry.byteLength) throw new Error(`pack ${pack.name} shrank while gc read it`);
      writeSync(to, entry);
    }
    fsyncSync(to);
  } catch (err) {
    closeSync(to);
    await rm(tmp, { force: true });
    throw err;
  } finally {
    closeSync(from);
  }
  closeSync(to);
  await rename(tmp, join(dir, name));
  await rm(pack.path, { force: true });
  return { droppedTail };
}
