import * as dagCbor from '@ipld/dag-cbor';
import { readdir, rm, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { CID } from 'multiformats/cid';
import { InvalidNetlockError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { NOOP_LOGGER } from '../log.ts';
import { NETLOCK_TYPE } from '../netlock/dag.ts';
import { netlockRootOf } from '../netlock/file.ts';
import { DAG_CBOR_CODE, RAW_CODE } from '../protocol/blocks.ts';
import { RecordLog } from '../records/record-log.ts';
import { blockLinks } from './block-links.ts';
import { PACKS_DIR } from './block-packs.ts';
import { FsBlockStore } from './fs-block-store.ts';
import { rewritePack, scanPackFiles } from './pack-gc.ts';
import { PACK_INDEX_DIR, pruneIndexes } from './pack-index.ts';
import type { PackFile } from './pack-gc.ts';
import { PACK_NAME_RE, PACK_QUARANTINED } from './pack-file.ts';
import { StoredBlocks } from './stored-blocks.ts';
import { BLOCK_TEMP_RE, isStaleTemp, staleNetlockTempFiles, staleSpoolFiles } from './stale-temp.ts';
import { cidKey } from '../protocol/cid-key.ts';

/** Blocks younger than this are kept by default: a record run may be importing them right now. */
export const GC_DEFAULT_MIN_AGE_MS = 60 * 60 * 1000;

export interface GcOptions {
  /** The data directory (`<dataDir>/blocks`, `<dataDir>/records.jsonl`). */
  dataDir: string;
  /** Netlock files (JSON or a bare root CID) whose DAGs must be kept, wherever they are. */
  keep?: readonly string[];
  /** Count what would be removed; remove nothing. */
  dryRun?: boolean;
  /** Keep unreferenced blocks modified less than this long ago. @default GC_DEFAULT_MIN_AGE_MS */
  minAgeMs?: number;
  logger?: Logger;
}

export interface Tally {
  count: number;
  bytes: number;
}

export interface GcReport {
  dataDir: string;
  dryRun: boolean;
  /** What was kept as roots: records of the index, netlock files (given, found), netlock roots in the store, journals. */
  roots: { records: number; netlockFiles: string[]; storedNetlocks: number; journals: string[] };
  /** Blocks some root needs. */
  live: Tally;
  /** Blocks no root needs, removed (or, with dryRun, that would be). */
  removed: Tally;
  /** Unreferenced blocks kept because they are younger than minAge. */
  young: Tally;
  /** Temp files of processes that are gone (store writes, request-body spools, netlock writes). */
  temp: Tally;
  /** Blocks set aside by verification (`<cid>.corrupt`). */
  quarantined: Tally;
  /** Blocks some root names that the store does not hold (reported, not an error: `verify` says which entry). */
  missing: number;
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Netlock files and journals in the data directory (outside blocks/ and ca/), a few levels deep. */
async function findInDataDir(dir: string, depth = 0): Promise<{ netlocks: string[]; journals: string[] }> {
  const found = { netlocks: [] as string[], journals: [] as string[] };
  if (depth > 3) return found;
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      if (depth === 0 && (e.name === 'blocks' || e.name === 'ca')) continue;
      const sub = await findInDataDir(path, depth + 1);
      found.netlocks.push(...sub.netlocks);
      found.journals.push(...sub.journals);
    } else if (e.isFile()) {
      if (e.name.endsWith('.journal')) found.journals.push(path);
      else if (e.name.endsWith('.json') || e.name.endsWith('.netlock')) {
        try {
          await netlockRootOf(path);
          found.netlocks.push(path);
        } catch {
          // not a netlock
        }
      }
    }
  }
  return found;
}

/**
 * Gives the record CID of every line of a JSON-lines file (record index or journal), not only the newest per
 * key. Read line by line: the file is never held whole, as text or as entries.
 */
async function eachRecordIn(path: string, onRecord: (cid: CID) => void): Promise<number> {
  let count = 0;
  await new RecordLog(path).readEach((e) => {
    count++;
    onRecord(e.signed.record);
  });
  return count;
}

/**
 * Garbage collection of the embedded store. Keeps every block some root needs, following every link
 * (records → body DAGs and attestation documents; netlock roots → index pages → records → …), where the
 * roots are: every record line of the record index (old versions too), every netlock file given or found
 * in the data directory, every netlock root block held in the store (a netlock file may live anywhere, so
 * its DAG is never collected while its root is stored), and every journal in the data directory or beside
 * a given netlock. Removes the other blocks (unless younger than `minAgeMs`: a running record may be
 * importing them), temp files of processes that are gone, and quarantined `.corrupt` blocks.
 */
export async function collectGarbage(options: GcOptions): Promise<GcReport> {
  const logger = options.logger ?? NOOP_LOGGER;
  const dataDir = resolve(options.dataDir);
  const blocksDir = join(dataDir, 'blocks');
  const minAge = options.minAgeMs ?? GC_DEFAULT_MIN_AGE_MS;
  const dryRun = options.dryRun === true;
  const now = Date.now();
  const report: GcReport = {
    dataDir,
    dryRun,
    roots: { records: 0, netlockFiles: [], storedNetlocks: 0, journals: [] },
    live: { count: 0, bytes: 0 },
    removed: { count: 0, bytes: 0 },
    young: { count: 0, bytes: 0 },
    temp: { count: 0, bytes: 0 },
    quarantined: { count: 0, bytes: 0 },
    missing: 0,
  };

  // 1. Every block of the store: block files, and the entries of the packs.
  const store = new FsBlockStore(dataDir);
  const blocks = new StoredBlocks();
  const temps: Array<{ path: string; size: number }> = [];
  const corrupt: Array<{ path: string; size: number }> = [];
  for (const shard of await listDir(blocksDir)) {
    if (shard === PACKS_DIR || shard === PACK_INDEX_DIR) continue;
    for (const name of await listDir(join(blocksDir, shard))) {
      const path = join(blocksDir, shard, name);
      const st = await stat(path).catch(() => undefined);
      if (st === undefined || !st.isFile()) continue;
      const tmp = BLOCK_TEMP_RE.exec(name);
      if (tmp !== null) {
        if (isStaleTemp(Number(tmp[2]), st.mtimeMs, now)) temps.push({ path, size: st.size });
        continue;
      }
      if (name.endsWith('.corrupt')) {
        corrupt.push({ path, size: st.size });
        continue;
      }
      let cid: CID;
      try {
        cid = CID.parse(name);
      } catch {
        continue; // not ours: left alone
      }
      blocks.addFile(cid, path, path === store.pathOf(cid), st.size, st.mtimeMs);
    }
  }
  const packsDir = join(blocksDir, PACKS_DIR);
  /** The blocks of each pack, and its quarantined entries. */
  const packBlocks = new Map<PackFile, number[]>();
  const packQuarantined = new Map<PackFile, Tally>();
  const { packs, temps: packTemps } = await scanPackFiles(packsDir, now, (pack, e) => {
    if (e.state === PACK_QUARANTINED) {
      const q = packQuarantined.get(pack) ?? { count: 0, bytes: 0 };
      packQuarantined.set(pack, q);
      q.count++;
      q.bytes += e.length;
      return;
    }
    const ids = packBlocks.get(pack) ?? [];
    packBlocks.set(pack, ids);
    ids.push(blocks.addPacked(e.cid, e.length, pack.mtimeMs, pack.writerRunning));
  });
  temps.push(...packTemps);
  const missing = new Set<string>();
  const addMissing = (cid: CID): void => {
    missing.add(cidKey(cid));
  };
  /** Marks every block the given ids reach (the array is used up as the walk's stack). */
  const mark = async (stack: number[]): Promise<void> => {
    while (stack.length > 0) {
      const id = stack.pop()!;
      if (!blocks.markLive(id)) continue;
      const cid = blocks.cidOf(id);
      if (cid.code === RAW_CODE) continue;
      try {
        for (const link of blockLinks(cid, await store.get(cid))) {
          const child = blocks.idOf(link);
          if (child === -1) addMissing(link);
          else if (!blocks.isLive(child)) stack.push(child);
        }
      } catch (err) {
        logger.warn('gc: cannot follow the links of block %s: %s', cid.toString(), (err as Error).message);
      }
    }
  };
  /** Adds `cid`'s id to `ids` when the store holds it, else counts it missing. */
  const hold = (cid: CID, ids: number[]): void => {
    const id = blocks.idOf(cid);
    if (id === -1) addMissing(cid);
    else ids.push(id);
  };

  // 2. Roots, each marked with all it reaches: the records of the index and of journals first; then every
  // netlock root block of the store, looked for among the DAG-CBOR blocks the records do not reach (records
  // link to no netlock root, so none is skipped, and a store's many records are not decoded twice); then the
  // netlock files.
  const indexRecords: number[] = [];
  const missingRecords = new Set<string>();
  await eachRecordIn(join(dataDir, 'records.jsonl'), (cid) => {
    const id = blocks.idOf(cid);
    if (id === -1) {
      addMissing(cid);
      missingRecords.add(cidKey(cid));
    } else if (blocks.countRoot(id)) indexRecords.push(id);
  });
  report.roots.records = indexRecords.length + missingRecords.size;
  await mark(indexRecords);
  const found = await findInDataDir(dataDir);
  const given = (options.keep ?? []).map((p) => resolve(p));
  const netlockRoots: CID[] = [];
  for (const path of given) {
    // A netlock the caller asked to keep must be readable: collecting without it could lose its blocks.
    const root = await netlockRootOf(path).catch((cause: unknown) => {
      throw new InvalidNetlockError(`gc --keep ${path}: ${(cause as Error).message}; nothing collected`, { cause });
    });
    netlockRoots.push(root);
  }
  for (const path of found.netlocks) netlockRoots.push(await netlockRootOf(path));
  report.roots.netlockFiles = [...new Set([...given, ...found.netlocks])].map((p) => (p.startsWith(`${dataDir}/`) ? relative(dataDir, p) : p));
  const journals = [...new Set([...found.journals, ...given.map((p) => `${p}.journal`)])];
  for (const path of journals) {
    const records: number[] = [];
    const lines = await eachRecordIn(path, (cid) => hold(cid, records));
    if (lines > 0 || found.journals.includes(path)) report.roots.journals.push(path);
    await mark(records);
  }
  const netlockRootIds: number[] = [];
  for (let id = 0; id < blocks.count; id++) {
    if (blocks.isLive(id) || !blocks.hasCodec(id, DAG_CBOR_CODE)) continue;
    const cid = blocks.cidOf(id);
    try {
      const value = dagCbor.decode<{ type?: unknown } | null>(await store.get(cid));
      if (value !== null && typeof value === 'object' && value.type === NETLOCK_TYPE) {
        netlockRootIds.push(id);
        report.roots.storedNetlocks++;
      }
    } catch {
      // not decodable: an ordinary unreferenced block unless something links to it
    }
  }

  // 3. Mark everything the netlocks reach.
  for (const root of netlockRoots) hold(root, netlockRootIds);
  await mark(netlockRootIds);
  report.missing = missing.size;

  await store.close();

  // 4. Sweep: block files removed; packs written again without what goes (a pack still being written is left).
  const remove = async (path: string): Promise<void> => {
    if (!dryRun) await rm(path, { force: true });
  };
  for (let id = 0; id < blocks.count; id++) {
    const size = blocks.sizeOf(id);
    if (blocks.isLive(id)) {
      report.live.count++;
      report.live.bytes += size;
    } else if (now - blocks.mtimeOf(id) < minAge || blocks.inRunningPack(id)) {
      report.young.count++;
      report.young.bytes += size;
    } else {
      blocks.markGoes(id);
      if (blocks.hasFile(id)) await remove(store.pathOf(blocks.cidOf(id)));
      for (const path of blocks.otherFiles(id)) await remove(path);
      report.removed.count++;
      report.removed.bytes += size;
    }
  }
  for (const pack of packs) {
    if (pack.writerRunning) continue;
    const quarantined = packQuarantined.get(pack);
    if (quarantined !== undefined) {
      report.quarantined.count += quarantined.count;
      report.quarantined.bytes += quarantined.bytes;
    }
    const anyGoes = (packBlocks.get(pack) ?? []).some((id) => blocks.goes(id));
    if (!anyGoes && quarantined === undefined && pack.end === pack.size) continue;
    const outcome = await rewritePack(packsDir, pack, (e) => !blocks.goes(blocks.idOf(e.cid)), { dryRun });
    if (outcome.droppedTail > 0) {
      report.temp.count++;
      report.temp.bytes += outcome.droppedTail;
    }
    if (pack.damage !== undefined) logger.warn('gc: pack %s is damaged (%s): what follows is dropped', pack.name, pack.damage);
  }
  // Indexes of packs gone (rewritten under a new id, or removed): after the rewrites, by the packs there are now.
  const packIds = new Set((await listDir(packsDir)).map((name) => PACK_NAME_RE.exec(name)?.[2]).filter((id) => id !== undefined));
  const prunedIndexes = await pruneIndexes(blocksDir, packIds, dryRun);
  report.temp.count += prunedIndexes.count;
  report.temp.bytes += prunedIndexes.bytes;
  temps.push(...(await staleSpoolFiles()));
  for (const path of given) temps.push(...(await staleNetlockTempFiles(path)));
  for (const t of temps) {
    await remove(t.path);
    report.temp.count++;
    report.temp.bytes += t.size;
  }
  for (const c of corrupt) {
    await remove(c.path);
    report.quarantined.count++;
    report.quarantined.bytes += c.size;
  }
  return report;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u++;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(1)} ${units[u]} (${n} bytes)`;
}

/** The text `fetch-oracle gc` prints. */
export function renderGcReport(r: GcReport): string {
  const verb = r.dryRun ? 'would remove' : 'removed';
  const lines = [
    `gc of ${r.dataDir}${r.dryRun ? ' (dry run: nothing removed)' : ''}`,
    `  roots: ${r.roots.records} record(s) in the index, ${r.roots.netlockFiles.length} netlock file(s)${r.roots.netlockFiles.length > 0 ? ` (${r.roots.netlockFiles.join(', ')})` : ''}, ${r.roots.storedNetlocks} netlock root(s) in the store, ${r.roots.journals.length} journal(s)`,
    `  kept: ${r.live.count} block(s), ${bytes(r.live.bytes)}`,
    `  ${verb}: ${r.removed.count} unreferenced block(s), ${bytes(r.removed.bytes)}`,
    `  ${verb}: ${r.temp.count} stale temp file(s), ${bytes(r.temp.bytes)}`,
    `  ${verb}: ${r.quarantined.count} quarantined block(s), ${bytes(r.quarantined.bytes)}`,
  ];
  if (r.young.count > 0) lines.push(`  kept (younger than --min-age): ${r.young.count} unreferenced block(s), ${bytes(r.young.bytes)}`);
  if (r.missing > 0) lines.push(`  missing: ${r.missing} block(s) a root names are not in the store (run verify on your netlocks)`);
  return `${lines.join('\n')}\n`;
}
