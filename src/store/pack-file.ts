import { read } from 'node:fs';
import { CID } from 'multiformats/cid';
import { MAX_BLOCK_BYTES } from '../protocol/blocks.ts';
import { processAlive } from './stale-temp.ts';

/**
 * The pack file format (docs/formats.md, "Data directory"): `FOPACK1\n`, then entries, each
 * `[state u8][CID length u8][0 u16][data length u32 BE][CID bytes][data]`. Appended by one writer only (the
 * process whose pid starts its name); a state byte is the only thing ever written in place.
 */
export const PACK_MAGIC = Buffer.from('FOPACK1\n', 'latin1');
export const PACK_HEADER_BYTES = 8;
export const PACK_LIVE = 1;
/** Set in place on an entry that failed its hash: never served again, dropped by `gc`. */
export const PACK_QUARANTINED = 2;
/**
 * `<writer pid>-<12 hex id>.pack` in `blocks/packs/` while its writer may append to it; `sealed-<id>.pack` once
 * it never will (closed, rotated, or written whole by `gc`). Only a sealed pack, or one whose writer is gone,
 * is ever written again by `gc`.
 */
export const PACK_NAME_RE = /^(\d+|sealed)-([0-9a-f]{12})\.pack$/;
export const sealedPackName = (id: string): string => `sealed-${id}.pack`;

/**
 * Whether the writer a pack's name gives may still append to it: not sealed, and its pid runs (only the pid,
 * not the age: a pack written after a day's pause by a process still running must not be taken from it).
 */
export function packWriterRunning(name: string): boolean {
  const writer = PACK_NAME_RE.exec(name)?.[1];
  return writer !== undefined && writer !== 'sealed' && processAlive(Number(writer));
}

/** Bytes read at a time while scanning: entries of small blocks, so a read covers many. */
const SCAN_CHUNK = 1024 * 1024;

export interface PackEntry {
  /** Where the entry (its header) starts. */
  offset: number;
  state: number;
  cid: CID;
  cidLength: number;
  /** The block's length; its bytes start at offset + PACK_HEADER_BYTES + cidLength. */
  length: number;
}

export interface PackScan {
  /** The end of the last whole entry: where a scan of a pack that grows goes on. */
  end: number;
  /** Why the scan stopped before the end of the file on something that is not an entry being written. */
  damage: string | undefined;
}

/** An entry's header and CID bytes. */
export function entryHead(cid: CID, length: number, state = PACK_LIVE): Buffer {
  const head = Buffer.allocUnsafe(PACK_HEADER_BYTES + cid.bytes.byteLength);
  head[0] = state;
  head[1] = cid.bytes.byteLength;
  head.writeUInt16BE(0, 2);
  head.writeUInt32BE(length, 4);
  head.set(cid.bytes, PACK_HEADER_BYTES);
  return head;
}

function readAt(fd: number, buffer: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buffer, 0, buffer.byteLength, position, (err, n) => (err === null ? resolve(n) : reject(err))));
}

/**
 * Reads a pack's entries from `from` (0, or where an earlier scan ended) to `size`, through the thread pool a
 * chunk at a time (the data is skipped, not kept). An entry that runs past `size` ends the scan quietly: it is
 * being written, or was torn by a crash. A header that cannot be one ends it with `damage` said.
 */
export async function scanPack(fd: number, from: number, size: number, onEntry: (entry: PackEntry) => void): Promise<PackScan> {
  const buffer = Buffer.allocUnsafe(Math.min(SCAN_CHUNK, Math.max(size, PACK_MAGIC.byteLength)));
  let start = 0;
  let filled = 0;
  /** Makes the buffer hold [at, at + want) of the file, or as much of it as there is. */
  const cover = async (at: number, want: number): Promise<number> => {
    if (at >= start && at + want <= start + filled) return at - start;
    start = at;
    filled = await readAt(fd, buffer, at);
    return 0;
  };
  let pos = from;
  if (pos === 0) {
    if (size < PACK_MAGIC.byteLength) return { end: 0, damage: undefined };
    await cover(0, PACK_MAGIC.byteLength);
    if (!buffer.subarray(0, PACK_MAGIC.byteLength).equals(PACK_MAGIC)) return { end: 0, damage: 'not a pack file (no FOPACK1 magic)' };
    pos = PACK_MAGIC.byteLength;
  }
  while (pos + PACK_HEADER_BYTES <= size) {
    const want = Math.min(PACK_HEADER_BYTES + 255, size - pos);
    let h = await cover(pos, want);
    const state = buffer[h]!;
    const cidLength = buffer[h + 1]!;
    const length = buffer.readUInt32BE(h + 4);
    if ((state !== PACK_LIVE && state !== PACK_QUARANTINED) || buffer.readUInt16BE(h + 2) !== 0 || cidLength < 4 || length > MAX_BLOCK_BYTES) {
      return { end: pos, damage: `no entry header at byte ${pos}` };
    }
    const end = pos + PACK_HEADER_BYTES + cidLength + length;
    if (end > size) break;
    h = await cover(pos, PACK_HEADER_BYTES + cidLength);
    let cid: CID;
    try {
      // A copy (Buffer's `slice` is a view): the buffer is read over, and a CID's digest is a view of its bytes.
      cid = CID.decode(new Uint8Array(buffer.subarray(h + PACK_HEADER_BYTES, h + PACK_HEADER_BYTES + cidLength)));
    } catch {
      return { end: pos, damage: `no CID in the entry at byte ${pos}` };
    }
    onEntry({ offset: pos, state, cid, cidLength, length });
    pos = end;
  }
  return { end: pos, damage: undefined };
}
