import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import { readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { cidKey } from '../protocol/cid-key.ts';
import { PACK_HEADER_BYTES, PACK_MAGIC, PACK_NAME_RE, PACK_QUARANTINED, packWriterRunning, scanPack, sealedPackName } from './pack-file.ts';
import type { PackEntry } from './pack-file.ts';
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
export interface PackFile {
  name: string;
  path: string;
  size: number;
  mtimeMs: number;
  /** Not sealed, and its writer (the pid in its name) still runs: it may append yet, so gc leaves it. */
  writerRunning: boolean;
  /** The end of its last whole entry. */
  end: number;
  damage: string | undefined;
}

/** A pack with its entries listed. */
export interface PackListing extends PackFile {
  entries: PackListingEntry[];
}

/**
 * The packs in `dir`, each entry given to `onEntry` with its pack (whose `end` and `damage` are known only once
 * its scan is over; nothing is kept here: a store of 400,000 blocks has as many entries), and the temp files of
 * pack rewrites whose process is gone.
 */
export async function scanPackFiles(dir: string, now: number, onEntry: (pack: PackFile, entry: PackEntry) => void): Promise<{ packs: PackFile[]; temps: Array<{ path: string; size: number }> }> {
  const packs: PackFile[] = [];
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
    const pack: PackFile = { name, path, size: st.size, mtimeMs: st.mtimeMs, writerRunning: packWriterRunning(name), end: 0, damage: undefined };
    const fd = openSync(path, 'r');
    try {
      const scan = await scanPack(fd, 0, st.size, (e) => onEntry(pack, e));
      pack.end = scan.end;
      pack.damage = scan.damage;
      packs.push(pack);
    } finally {
      closeSync(fd);
    }
  }
  return { packs, temps };
}

/** The packs in `dir`, every entry listed (for tools and tests; `gc` uses `scanPackFiles`). */
export async function listPacks(dir: string, now = Date.now()): Promise<{ packs: PackListing[]; temps: Array<{ path: string; size: number }> }> {
  const entries = new Map<PackFile, PackListingEntry[]>();
  const { packs, temps } = await scanPackFiles(dir, now, (pack, e) => {
    const listed = entries.get(pack) ?? [];
    entries.set(pack, listed);
    listed.push({ key: cidKey(e.cid), offset: e.offset, cidLength: e.cidLength, length: e.length, quarantined: e.state === PACK_QUARANTINED });
  });
  return { packs: packs.map((pack) => ({ ...pack, entries: entries.get(pack) ?? [] })), temps };
}

/**
 * Writes a pack again with only the entries `keep` accepts (never its quarantined ones, nor a torn or damaged
 * tail), read from it again as they are copied: into a temp file, synced, renamed to a new pack, and only then
 * is the old one removed, so a crash leaves both (a copy twice, harmless) and never neither. A reader holding
 * the old pack open reads on from it. When nothing goes the copy is dropped and the pack left as it is; a pack
 * left with nothing is removed. The bytes dropped from its tail.
 */
export async function rewritePack(dir: string, pack: PackFile, keep: (e: PackEntry) => boolean, options: { dryRun: boolean }): Promise<{ droppedTail: number }> {
  const droppedTail = pack.size - pack.end;
  if (options.dryRun) return { droppedTail };
  const name = sealedPackName(randomBytes(6).toString('hex'));
  const tmp = join(dir, `${name}.${process.pid}.0.tmp`);
  const from = openSync(pack.path, 'r');
  let to: number | undefined;
  let kept = 0;
  let dropped = 0;
  try {
    to = openSync(tmp, 'wx', 0o644);
    writeSync(to, PACK_MAGIC);
    const out = to;
    await scanPack(from, 0, pack.end, (e) => {
      if (e.state === PACK_QUARANTINED || !keep(e)) {
        dropped++;
        return;
      }
      const entry = Buffer.allocUnsafe(PACK_HEADER_BYTES + e.cidLength + e.length);
      if (readSync(from, entry, 0, entry.byteLength, e.offset) !== entry.byteLength) throw new Error(`pack ${pack.name} shrank while gc read it`);
      writeSync(out, entry);
      kept++;
    });
    if (kept > 0 && (dropped > 0 || droppedTail > 0)) fsyncSync(to);
  } catch (err) {
    if (to !== undefined) closeSync(to);
    await rm(tmp, { force: true });
    throw err;
  } finally {
    closeSync(from);
  }
  closeSync(to);
  if (dropped === 0 && droppedTail === 0) {
    await rm(tmp, { force: true });
    return { droppedTail };
  }
  if (kept === 0) {
    await rm(tmp, { force: true });
    await rm(pack.path, { force: true });
    return { droppedTail };
  }
  await rename(tmp, join(dir, name));
  await rm(pack.path, { force: true });
  return { droppedTail };
}
