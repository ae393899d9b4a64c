import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_BLOCK_BYTES } from '../protocol/blocks.ts';
import { PACK_HEADER_BYTES } from './pack-file.ts';
import { processAlive } from './stale-temp.ts';

/**
 * Pack indexes (docs/formats.md, "Pack indexes"): `blocks/pack-index/<pack id>.idx`, `FOPIDX1\n`, then one
 * record per entry of the pack, in the pack's order: `[entry offset u48 BE][state u8][CID length u8][data
 * length u32 BE][CID bytes]`, the entry's own header with its place in front. A store opening a pack reads its
 * index instead of the pack (~50 bytes an entry where a scan read every block: a data directory of small
 * bodies was read whole at every start). An index is a cache, never trusted for bytes: every read still
 * compares the CID in the entry it lands on, and a record that is not where the pack has an entry ends the
 * index's use there (the pack is scanned on from that point). A missing, short or torn index costs a scan of
 * what it lacks.
 */
export const PACK_INDEX_DIR = 'pack-index';
export const PACK_INDEX_MAGIC = Buffer.from('FOPIDX1\n', 'latin1');
/** A record's bytes before its CID. */
export const INDEX_RECORD_HEAD = 12;

export const packIndexPath = (blocksDir: string, packId: string): string => join(blocksDir, PACK_INDEX_DIR, `${packId}.idx`);

/** One pack entry's index record. */
export function indexRecord(offset: number, state: number, cidBytes: Uint8Array, length: number): Buffer {
  const out = Buffer.allocUnsafe(INDEX_RECORD_HEAD + cidBytes.byteLength);
  out.writeUIntBE(offset, 0, 6);
  out[6] = state;
  out[7] = cidBytes.byteLength;
  out.writeUInt32BE(length, 8);
  out.set(cidBytes, INDEX_RECORD_HEAD);
  return out;
}

export interface IndexedEntry {
  /** Where the record starts in the index. */
  at: number;
  offset: number;
  state: number;
  /** A view into the index's bytes (copy it to keep it). */
  cidBytes: Uint8Array;
  length: number;
}

/**
 * The records of an index, in order, up to the first that cannot be one (a torn tail, bytes of something
 * else); nothing at all without the magic. Entries are checked for shape only: where they land is the caller's.
 */
export function* indexRecords(bytes: Buffer): Generator<IndexedEntry> {
  if (bytes.byteLength < PACK_INDEX_MAGIC.byteLength || !bytes.subarray(0, PACK_INDEX_MAGIC.byteLength).equals(PACK_INDEX_MAGIC)) return;
  let at = PACK_INDEX_MAGIC.byteLength;
  while (at + INDEX_RECORD_HEAD <= bytes.byteLength) {
    const cidLength = bytes[at + 7]!;
    const length = bytes.readUInt32BE(at + 8);
    if (cidLength < 4 || length > MAX_BLOCK_BYTES || at + INDEX_RECORD_HEAD + cidLength > bytes.byteLength) return;
    yield { at, offset: bytes.readUIntBE(at, 6), state: bytes[at + 6]!, cidBytes: bytes.subarray(at + INDEX_RECORD_HEAD, at + INDEX_RECORD_HEAD + cidLength), length };
    at += INDEX_RECORD_HEAD + cidLength;
  }
}

/** Where the entry an index record describes ends in its pack. */
export const entryEnd = (e: { offset: number; cidBytes: Uint8Array; length: number }): number => e.offset + PACK_HEADER_BYTES + e.cidBytes.byteLength + e.length;

/** An index's bytes, or undefined when there is none (or it cannot be read: it is only a cache). */
export async function readPackIndex(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch {
    return undefined;
  }
}

/**
 * Appends records to a pack's index (the pack's writer, for what it appended since), made with its magic when
 * there is none. Not synced: a record lost in a crash is a scan of its entry at the next start.
 */
export async function appendPackIndex(path: string, records: readonly Buffer[]): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  const file = await open(path, 'a');
  try {
    const { size } = await file.stat();
    await file.write(Buffer.concat(size === 0 ? [PACK_INDEX_MAGIC, ...records] : records));
  } finally {
    await file.close();
  }
}

/** Writes a whole index (a reader that scanned a pack nobody writes), replacing any: a temp file, then a rename. */
export async function writePackIndex(path: string, records: readonly Buffer[]): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const file = await open(tmp, 'wx', 0o644);
    try {
      await file.write(Buffer.concat([PACK_INDEX_MAGIC, ...records]));
    } finally {
      await file.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Removes the indexes whose pack is gone (`gc` rewrote or removed it) and index temp files their writer left;
 * the bytes and count removed.
 */
export async function pruneIndexes(blocksDir: string, packIds: ReadonlySet<string>, dryRun: boolean): Promise<{ count: number; bytes: number }> {
  const dir = join(blocksDir, PACK_INDEX_DIR);
  const out = { count: 0, bytes: 0 };
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const index = /^([0-9a-f]{12})\.idx$/.exec(name);
    const tmp = /^[0-9a-f]{12}\.idx\.(\d+)\.[0-9a-f]{8}\.tmp$/.exec(name);
    if ((index === null || packIds.has(index[1]!)) && (tmp === null || processAlive(Number(tmp[1])))) continue;
    const st = await stat(join(dir, name)).catch(() => undefined);
    if (st === undefined || !st.isFile()) continue;
    if (!dryRun) await rm(join(dir, name), { force: true });
    out.count++;
    out.bytes += st.size;
  }
  return out;
}
