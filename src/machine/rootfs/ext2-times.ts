/**
 * Clamps every timestamp of an ext2 image to an epoch, in place: what `SOURCE_DATE_EPOCH` makes mke2fs do
 * from e2fsprogs 1.47.1 on, for the mke2fs of Debian 12 (1.47.0) and older. Without it an image differs per
 * build even with every mtime set: mke2fs copies each file's ctime from the host (the time it was unpacked;
 * no call can set a ctime), and with E2FSPROGS_FAKE_TIME=0 it falls back to the clock for the superblock,
 * the root directory and lost+found (`fs->now ? fs->now : time(0)`).
 *
 * Layout per the ext2 specification (Poirier, "The Second Extended File System", and the kernel's
 * Documentation/filesystems/ext4/ for the 256-byte inode's extra fields): little-endian fields; superblock
 * at byte 1024 with copies at the start of the groups that hold one; 32-byte group descriptors after it;
 * each group's inode bitmap and inode table. Only images without metadata checksums are accepted (the
 * fields here would need them recomputed), which `mke2fs -t ext2` never makes.
 */
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { ImageBuildError } from '../../errors.ts';

const SUPERBLOCK_OFFSET = 1024;
const EXT2_MAGIC = 0xef53;
/** Superblock time fields (u32 seconds) and their high bytes (u8, 64-bit time). */
const SB_TIMES: ReadonlyArray<[number, number]> = [
  [0x2c, 0x275], // s_mtime / s_mtime_hi
  [0x30, 0x274], // s_wtime / s_wtime_hi
  [0x40, 0x277], // s_lastcheck / s_lastcheck_hi
  [0x108, 0x276], // s_mkfs_time / s_mkfs_time_hi
  [0x198, 0x278], // s_first_error_time / _hi
  [0x1cc, 0x279], // s_last_error_time / _hi
];
const RO_COMPAT_SPARSE_SUPER = 0x1;
const RO_COMPAT_CHECKSUMS = 0x10 | 0x400; // gdt_csum, metadata_csum
const INCOMPAT_64BIT = 0x80;

/** Inode time fields: [seconds offset, extra (nanoseconds + epoch bits) offset or -1]. */
const INODE_TIMES: ReadonlyArray<[number, number]> = [
  [0x08, 0x8c], // i_atime / i_atime_extra
  [0x0c, 0x84], // i_ctime / i_ctime_extra
  [0x10, 0x88], // i_mtime / i_mtime_extra
  [0x90, 0x94], // i_crtime / i_crtime_extra (only in the extra part)
];
const EXTRA_ISIZE = 0x80;

async function readAt(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await fh.read(buf, 0, length, offset);
  if (bytesRead !== length) throw new ImageBuildError(`ext2 image truncated at byte ${offset + bytesRead} (wanted ${length} bytes at ${offset})`);
  return buf;
}

/** Whether group `g` holds a superblock copy: every group, or with sparse_super 0, 1 and powers of 3, 5, 7. */
function hasSuperblock(g: number, sparse: boolean): boolean {
  if (!sparse || g <= 1) return true;
  for (const base of [3, 5, 7]) {
    let n = base;
    while (n < g) n *= base;
    if (n === g) return true;
  }
  return false;
}

/** Clamps `[secondsAt, extraAt]` in `buf` to `epoch`; true if anything changed. */
function clamp(buf: Buffer, secondsAt: number, extraAt: number, epoch: number, extraIsByte: boolean): boolean {
  const seconds = buf.readUInt32LE(secondsAt);
  const extra = extraAt < 0 ? 0 : extraIsByte ? buf.readUInt8(extraAt) : buf.readUInt32LE(extraAt);
  // extra: for inodes, 2 epoch bits (times past 2038) + nanoseconds << 2; for the superblock, the high byte.
  const later = extraIsByte ? extra > 0 || seconds > epoch : (extra & 3) > 0 || seconds > epoch || (seconds === epoch && extra !== 0);
  if (!later) return false;
  buf.writeUInt32LE(epoch, secondsAt);
  if (extraAt >= 0) {
    if (extraIsByte) buf.writeUInt8(0, extraAt);
    else buf.writeUInt32LE(0, extraAt);
  }
  return true;
}

export interface ClampReport {
  inodes: number;
  superblocks: number;
}

/** Sets every timestamp later than `epoch` (seconds, < 2^32) in the ext2 image at `path` to `epoch`. */
export async function clampExt2Times(path: string, epoch: number): Promise<ClampReport> {
  if (!Number.isInteger(epoch) || epoch < 0 || epoch >= 2 ** 32) throw new ImageBuildError(`epoch ${epoch} does not fit an ext2 timestamp`);
  const fh = await open(path, 'r+');
  try {
    const sb = await readAt(fh, SUPERBLOCK_OFFSET, 1024);
    if (sb.readUInt16LE(0x38) !== EXT2_MAGIC) throw new ImageBuildError(`${path} is not an ext2 image (no superblock magic)`);
    const roCompat = sb.readUInt32LE(0x64);
    if ((roCompat & RO_COMPAT_CHECKSUMS) !== 0 || (sb.readUInt32LE(0x60) & INCOMPAT_64BIT) !== 0) {
      throw new ImageBuildError(`${path} has metadata checksums or 64-bit group descriptors: not the ext2 mke2fs -t ext2 makes`);
    }
    const inodesCount = sb.readUInt32LE(0x00);
    const blocksCount = sb.readUInt32LE(0x04);
    const firstDataBlock = sb.readUInt32LE(0x14);
    const blockSize = 1024 << sb.readUInt32LE(0x18);
    const blocksPerGroup = sb.readUInt32LE(0x20);
    const inodesPerGroup = sb.readUInt32LE(0x28);
    const inodeSize = sb.readUInt32LE(0x4c) >= 1 ? sb.readUInt16LE(0x58) : 128;
    const groups = Math.ceil((blocksCount - firstDataBlock) / blocksPerGroup);
    const gdt = await readAt(fh, (firstDataBlock + 1) * blockSize, groups * 32);

    let inodes = 0;
    for (let g = 0; g < groups; g++) {
      const bitmap = await readAt(fh, gdt.readUInt32LE(g * 32 + 4) * blockSize, Math.ceil(inodesPerGroup / 8));
      const table = await readAt(fh, gdt.readUInt32LE(g * 32 + 8) * blockSize, inodesPerGroup * inodeSize);
      let dirty = false;
      for (let i = 0; i < inodesPerGroup && g * inodesPerGroup + i < inodesCount; i++) {
        if ((bitmap[i >> 3]! & (1 << (i & 7))) === 0) continue;
        const inode = table.subarray(i * inodeSize, (i + 1) * inodeSize);
        const extraEnd = inodeSize > 128 ? 128 + inode.readUInt16LE(EXTRA_ISIZE) : 128;
        let changed = false;
        for (const [at, extraAt] of INODE_TIMES) {
          if (at + 4 > 128 && at + 4 > extraEnd) continue; // i_crtime: only when the extra part holds it
          changed = clamp(inode, at, extraAt + 4 <= extraEnd ? extraAt : -1, epoch, false) || changed;
        }
        if (changed) inodes++;
        dirty ||= changed;
      }
      if (dirty) await fh.write(table, 0, table.byteLength, gdt.readUInt32LE(g * 32 + 8) * blockSize);
    }

    let superblocks = 0;
    const sparse = (roCompat & RO_COMPAT_SPARSE_SUPER) !== 0;
    for (let g = 0; g < groups; g++) {
      if (!hasSuperblock(g, sparse)) continue;
      const at = g === 0 ? SUPERBLOCK_OFFSET : (firstDataBlock + g * blocksPerGroup) * blockSize;
      const copy = g === 0 ? sb : await readAt(fh, at, 1024);
      if (copy.readUInt16LE(0x38) !== EXT2_MAGIC) throw new ImageBuildError(`${path}: no superblock copy in group ${g} where ext2 puts one`);
      let changed = false;
      for (const [secondsAt, hiAt] of SB_TIMES) changed = clamp(copy, secondsAt, hiAt, epoch, true) || changed;
      if (changed) {
        await fh.write(copy, 0, 1024, at);
        superblocks++;
      }
    }
    await fh.sync();
    return { inodes, superblocks };
  } finally {
    await fh.close();
  }
}
