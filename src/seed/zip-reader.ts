import { Readable } from 'node:stream';
import { createInflateRaw } from 'node:zlib';
import { InvalidArchiveError } from '../errors.ts';

/** Random access to a body: `read(offset, length)` returns exactly those bytes; `stream` streams a range. */
export interface RangeReader {
  size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  stream(offset: number, length: number): AsyncIterable<Uint8Array>;
}

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  /** Offset of the local file header. */
  localOffset: number;
}

/** Largest central directory read into memory (Go caps module zips at 500 MB and their files at 64k). */
export const MAX_CENTRAL_DIRECTORY_BYTES = 64 * 1024 * 1024;
const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;

function bad(why: string): never {
  throw new InvalidArchiveError(`not a readable zip file: ${why}`);
}

/**
 * Lists a zip's entries from its central directory (zip64 included). Written here because the files of a
 * Go module zip must be hashed as they stream out of the block store, without a temporary copy; zip
 * libraries for Node want a file or the whole buffer.
 */
export async function listZip(reader: RangeReader): Promise<ZipEntry[]> {
  const tailLength = Math.min(reader.size, 22 + 65535);
  if (tailLength < 22) bad('shorter than an end-of-central-directory record');
  const tail = Buffer.from(await reader.read(reader.size - tailLength, tailLength));
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIGNATURE) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) bad('no end-of-central-directory record');
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || tail.readUInt32LE(loc) !== ZIP64_LOCATOR_SIGNATURE) bad('zip64 fields without a zip64 locator');
    const z64 = Buffer.from(await reader.read(Number(tail.readBigUInt64LE(loc + 8)), 56));
    if (z64.readUInt32LE(0) !== ZIP64_EOCD_SIGNATURE) bad('bad zip64 end-of-central-directory record');
    count = Number(z64.readBigUInt64LE(32));
    cdSize = Number(z64.readBigUInt64LE(40));
    cdOffset = Number(z64.readBigUInt64LE(48));
  }
  if (cdSize > MAX_CENTRAL_DIRECTORY_BYTES || cdOffset + cdSize > reader.size) bad(`central directory of ${cdSize} bytes at ${cdOffset} does not fit`);
  const cd = Buffer.from(await reader.read(cdOffset, cdSize));
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== CENTRAL_SIGNATURE) bad(`central directory entry ${i} is malformed`);
    const method = cd.readUInt16LE(p + 10);
    let compressedSize = cd.readUInt32LE(p + 20);
    let size = cd.readUInt32LE(p + 24);
    const nameLength = cd.readUInt16LE(p + 28);
    const extraLength = cd.readUInt16LE(p + 30);
    const commentLength = cd.readUInt16LE(p + 32);
    let localOffset = cd.readUInt32LE(p + 42);
    const name = cd.toString('utf8', p + 46, p + 46 + nameLength);
    // zip64 extended information: only the fields whose 32-bit value is saturated are present, in order.
    let e = p + 46 + nameLength;
    const extraEnd = e + extraLength;
    while (e + 4 <= extraEnd) {
      const id = cd.readUInt16LE(e);
      const len = cd.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let f = e + 4;
        if (size === 0xffffffff) {
          size = Number(cd.readBigUInt64LE(f));
          f += 8;
        }
        if (compressedSize === 0xffffffff) {
          compressedSize = Number(cd.readBigUInt64LE(f));
          f += 8;
        }
        if (localOffset === 0xffffffff) localOffset = Number(cd.readBigUInt64LE(f));
      }
      e += 4 + len;
    }
    entries.push({ name, method, compressedSize, size, localOffset });
    p = extraEnd + commentLength;
  }
  return entries;
}

/** Streams one entry's uncompressed bytes (stored or deflated; anything else is refused). */
export async function* readZipEntry(reader: RangeReader, entry: ZipEntry): AsyncGenerator<Uint8Array> {
  const head = Buffer.from(await reader.read(entry.localOffset, 30));
  if (head.readUInt32LE(0) !== LOCAL_SIGNATURE) bad(`no local header for ${entry.name}`);
  const dataOffset = entry.localOffset + 30 + head.readUInt16LE(26) + head.readUInt16LE(28);
  if (dataOffset + entry.compressedSize > reader.size) bad(`${entry.name} runs past the end of the file`);
  const raw = reader.stream(dataOffset, entry.compressedSize);
  let total = 0;
  if (entry.method === 0) {
    for await (const c of raw) {
      total += c.byteLength;
      yield c;
    }
  } else if (entry.method === 8) {
    const inflate = createInflateRaw();
    Readable.from(raw).on('error', (err) => inflate.destroy(err)).pipe(inflate);
    for await (const c of inflate as AsyncIterable<Buffer>) {
      total += c.byteLength;
      yield c;
    }
  } else {
    bad(`${entry.name} uses compression method ${entry.method} (only stored and deflate are read)`);
  }
  if (total !== entry.size) bad(`${entry.name} inflates to ${total} bytes, its directory says ${entry.size}`);
}
