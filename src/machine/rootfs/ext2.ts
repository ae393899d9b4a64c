/**
 * The staging tree → a byte-reproducible ext2 image. What could vary, and what pins it:
 * - mtimes/atimes: every entry set to the epoch first; ctimes (which no call can set) and the times mke2fs
 *   takes from the clock: clamped to the epoch in the written image (ext2-times.ts);
 * - directory order: mke2fs -d reads each directory sorted (scandir + alphasort, e2fsprogs ≥ 1.45.3); LC_ALL=C
 *   makes that byte order, so inode numbers and directory blocks follow the names, not the host file system;
 * - owners: dpkg-deb and mke2fs run as root, or in a user namespace that maps this user to root;
 * - xattrs: not copied (no_copy_xattrs): the host's labels or ACLs are not the image's;
 * - file system parameters: our own mke2fs.conf (MKE2FS_CONFIG; the host's /etc/mke2fs.conf is not read), a
 *   fixed UUID and directory hash seed, an inode count and size computed from the tree;
 * - zero blocks: mke2fs -d stores all-zero blocks as holes whatever the source's sparseness.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, lutimes, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { throwIfAborted } from '../../errors.ts';
import type { AbortOptions } from '../../protocol/blocks.ts';
import { clampExt2Times } from './ext2-times.ts';
import { asRoot, runStep } from './tools.ts';
import type { ImageTools } from './tools.ts';

export const BLOCK_SIZE = 4096;
export const INODE_SIZE = 256;
const MIB = 1024 * 1024;
/** Fixed identities: a random UUID or hash seed would change every image. */
export const IMAGE_UUID = '6a1f0e7c-3b2d-4c5e-8f90-fe7c0a1e5b21';
export const IMAGE_HASH_SEED = '2c9d7e41-5f3a-4b6c-9d8e-0a1b2c3d4e5f';

/** mke2fs's whole configuration: the host's /etc/mke2fs.conf never applies (its defaults vary by release). */
export const MKE2FS_CONF = `[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = ${BLOCK_SIZE}
	inode_size = ${INODE_SIZE}
	inode_ratio = 16384
	reserved_ratio = 0

[fs_types]
	ext2 = {
		features = ^has_journal
	}
`;

/** What the tree holds, for sizing the image. */
export interface TreeStats {
  entries: number;
  /** Blocks the data and directories need (4 KiB each). */
  blocks: number;
}

/**
 * Walks `root`, setting every entry's atime and mtime to `epoch` (links themselves, not their targets), and
 * counts what the image must hold.
 */
export async function pinTree(root: string, epoch: number): Promise<TreeStats> {
  let entries = 0;
  let blocks = 0;
  const walk = async (dir: string): Promise<void> => {
    const names = await readdir(dir);
    // A directory's entries: 8 bytes + the name rounded up to 4, plus "." and "..".
    blocks += Math.max(1, Math.ceil((24 + names.reduce((n, name) => n + 8 + Math.ceil(Buffer.byteLength(name) / 4) * 4, 0)) / BLOCK_SIZE));
    for (const name of names) {
      const path = join(dir, name);
      const st = await lstat(path);
      entries++;
      if (st.isDirectory()) await walk(path);
      else if (st.isFile()) blocks += Math.ceil(st.size / BLOCK_SIZE) + (st.size > 12 * BLOCK_SIZE ? Math.ceil(st.size / BLOCK_SIZE / 1024) + 1 : 0);
      else if (st.isSymbolicLink() && st.size >= 60) blocks += 1; // shorter targets live in the inode
      await lutimes(path, epoch, epoch);
    }
  };
  await walk(root);
  await lutimes(root, epoch, epoch);
  return { entries: entries + 1, blocks };
}

/** Inodes and bytes for a tree plus `freeMiB` of room: whole MiB, inodes for the tree plus one per 16 KiB free. */
export function imageGeometry(stats: TreeStats, freeMiB: number): { inodes: number; bytes: number } {
  const freeBytes = freeMiB * MIB;
  const inodes = stats.entries + 1024 + Math.ceil(freeBytes / 16384);
  // Group metadata (bitmaps, descriptors, reserved descriptors for resizing) is well under 2 % at 4 KiB blocks.
  const raw = stats.blocks * BLOCK_SIZE * 1.02 + inodes * INODE_SIZE + freeBytes + 4 * MIB;
  return { inodes, bytes: Math.ceil(raw / MIB) * MIB };
}

/** sha256 of a file, hex, streamed (images are hundreds of MiB). */
export async function sha256Stream(path: string, options: AbortOptions = {}): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, options.signal === undefined ? {} : { signal: options.signal })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface Ext2Init {
  tools: ImageTools;
  /** The staging tree (every mtime is set to `epoch` here). */
  root: string;
  out: string;
  epoch: number;
  freeMiB: number;
}

/** Writes `init.root` as an ext2 image to `init.out` atomically (a temporary file beside it, then rename). */
export async function writeExt2(init: Ext2Init, options: AbortOptions = {}): Promise<{ bytes: number; sha256: string; inodes: number }> {
  throwIfAborted(options.signal);
  const stats = await pinTree(init.root, init.epoch);
  const { inodes, bytes } = imageGeometry(stats, init.freeMiB);
  const tmp = join(dirname(init.out), `.${basename(init.out)}.${process.pid}.tmp`);
  const conf = `${tmp}.mke2fs.conf`;
  await writeFile(conf, MKE2FS_CONF);
  try {
    await rm(tmp, { force: true });
    const env: NodeJS.ProcessEnv = {
      PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      MKE2FS_CONFIG: conf,
      LC_ALL: 'C',
      // mke2fs ≥ 1.47.1 clamps to these itself; older ones use the fake time where it is not 0.
      E2FSPROGS_FAKE_TIME: String(init.epoch),
      SOURCE_DATE_EPOCH: String(init.epoch),
    };
    const argv = [
      init.tools.mke2fs,
      '-q',
      '-F',
      '-t', 'ext2',
      '-b', String(BLOCK_SIZE),
      '-I', String(INODE_SIZE),
      '-N', String(inodes),
      '-m', '0',
      '-o', 'linux',
      '-U', IMAGE_UUID,
      '-E', `hash_seed=${IMAGE_HASH_SEED},root_owner=0:0,no_copy_xattrs,nodiscard`,
      '-d', init.root,
      tmp,
      `${bytes / 1024}k`,
    ];
    await runStep('mke2fs', asRoot(init.tools, argv), { env, ...options });
    await clampExt2Times(tmp, init.epoch);
    const sha256 = await sha256Stream(tmp, options);
    await rename(tmp, init.out);
    return { bytes, sha256, inodes };
  } finally {
    await rm(tmp, { force: true });
    await rm(conf, { force: true });
  }
}
