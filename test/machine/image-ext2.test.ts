import { chmod, link, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageBuildError } from '../../src/errors.ts';
import { clampExt2Times } from '../../src/machine/rootfs/ext2-times.ts';
import { IMAGE_UUID, imageGeometry, writeExt2 } from '../../src/machine/rootfs/ext2.ts';
import { findImageTools } from '../../src/machine/rootfs/tools.ts';
import type { ImageTools } from '../../src/machine/rootfs/tools.ts';
import { run, tempDir } from '../helpers/run.ts';

/** Every time debugfs reports for `path` in `image` (ctime, atime, mtime, crtime), as seconds (NaN if it has nanoseconds). */
async function inodeTimes(image: string, path: string): Promise<Record<string, number>> {
  const r = await run('debugfs', ['-R', `stat ${path}`, image]);
  const times: Record<string, number> = {};
  for (const m of r.stdout.matchAll(/^\s*(ctime|atime|mtime|crtime): 0x([0-9a-f]+):([0-9a-f]+)/gm)) times[m[1]!] = Number.parseInt(m[3]!, 16) === 0 ? Number.parseInt(m[2]!, 16) : Number.NaN;
  return times;
}

async function superblock(image: string): Promise<string> {
  return (await run('dumpe2fs', ['-h', image], { env: { ...process.env, TZ: 'UTC' } })).stdout;
}

/** A small tree with what a package tree has: nested directories, modes, a hard link, short and long links, a big file. */
async function makeTree(root: string, reverse: boolean): Promise<void> {
  const names = ['a', 'b', 'c', 'zeta', 'Alpha', 'dir with space'];
  for (const name of reverse ? [...names].reverse() : names) {
    await mkdir(join(root, 'usr', name), { recursive: true });
    await writeFile(join(root, 'usr', name, 'file'), `content of ${name}\n`);
  }
  await writeFile(join(root, 'usr', 'big'), Buffer.alloc(200_000, 7));
  await writeFile(join(root, 'usr', 'zeros'), Buffer.alloc(65_536)); // all-zero blocks: holes in the image
  await chmod(join(root, 'usr', 'big'), 0o755);
  await link(join(root, 'usr', 'big'), join(root, 'usr', 'big-hardlink'));
  await symlink('usr/a', join(root, 'short-link'));
  await symlink(`/${'x'.repeat(100)}`, join(root, 'long-link'));
}

describe('writeExt2 (reproducible ext2 from a tree)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let tools: ImageTools;

  beforeAll(async () => {
    dir = await tempDir('fo-ext2-');
    tools = findImageTools();
  });
  afterAll(async () => dir.remove());

  it('gives byte-identical images from two trees made in different orders, every time (host ctimes of now included) clamped to the epoch', async () => {
    const shas: string[] = [];
    for (const [i, reverse] of [false, true].entries()) {
      const root = join(dir.path, `tree${i}`);
      await makeTree(root, reverse);
      const out = join(dir.path, `image${i}.ext2`);
      const r = await writeExt2({ tools, root, out, epoch: 0, freeMiB: 1 });
      expect(r.bytes % (1024 * 1024)).toBe(0);
      shas.push(r.sha256);
      // The host gave the files ctimes of now; the image has 0 everywhere, superblock included.
      for (const path of ['/', '/usr', '/usr/big', '/usr/a/file', '/lost+found', '/long-link']) {
        expect(await inodeTimes(out, path), path).toEqual({ ctime: 0, atime: 0, mtime: 0, crtime: 0 });
      }
      const sb = await superblock(out);
      expect(sb).toMatch(/Last write time:\s+Thu Jan\s+1 00:00:00 1970/);
      expect(sb).toMatch(/Last checked:\s+Thu Jan\s+1 00:00:00 1970/);
      expect(sb).not.toMatch(/Filesystem created:/); // dumpe2fs prints it only when it is not 0
      expect(sb).toContain(`Filesystem UUID:          ${IMAGE_UUID}`);
      expect((await run('e2fsck', ['-fn', out])).code).toBe(0);
    }
    expect(shas[1]).toBe(shas[0]);
  });

  it('sets every time to a non-zero --epoch, keeps modes, owners, links and hard links', async () => {
    const root = join(dir.path, 'tree-epoch');
    await makeTree(root, false);
    const out = join(dir.path, 'epoch.ext2');
    await writeExt2({ tools, root, out, epoch: 1_700_000_000, freeMiB: 0 });
    expect(await inodeTimes(out, '/usr/a/file')).toEqual({ ctime: 1_700_000_000, atime: 1_700_000_000, mtime: 1_700_000_000, crtime: 1_700_000_000 });
    expect(await inodeTimes(out, '/')).toEqual({ ctime: 1_700_000_000, atime: 1_700_000_000, mtime: 1_700_000_000, crtime: 1_700_000_000 });
    expect(await superblock(out)).toMatch(/Filesystem created:\s+Tue Nov 14 22:13:20 2023/);
    const big = (await run('debugfs', ['-R', 'stat /usr/big', out])).stdout;
    expect(big).toMatch(/Mode:\s+0755/);
    expect(big).toMatch(/User:\s+0\s+Group:\s+0/);
    expect(big).toMatch(/Links: 2/);
    const ls = (await run('debugfs', ['-R', 'ls -l /', out])).stdout;
    expect(ls).toMatch(/short-link/);
    expect((await run('debugfs', ['-R', 'cat "/usr/dir with space/file"', out])).stdout).toBe('content of dir with space\n');
    expect((await run('e2fsck', ['-fn', out])).code).toBe(0);
  });

  it('clampExt2Times changes nothing the second time, and refuses a file that is not ext2', async () => {
    const out = join(dir.path, 'image0.ext2');
    const before = await readFile(out);
    expect(await clampExt2Times(out, 0)).toEqual({ inodes: 0, superblocks: 0 });
    expect((await readFile(out)).equals(before)).toBe(true);
    const junk = join(dir.path, 'junk.img');
    await writeFile(junk, Buffer.alloc(8192));
    await expect(clampExt2Times(junk, 0)).rejects.toThrow(ImageBuildError);
    await expect(clampExt2Times(out, -1)).rejects.toThrow(/does not fit/);
  });

  it('sizes the image for its content, its inodes and the free space asked for', () => {
    const g = imageGeometry({ entries: 10_000, blocks: 25_000 }, 512);
    expect(g.bytes % (1024 * 1024)).toBe(0);
    expect(g.bytes).toBeGreaterThan(25_000 * 4096 + 512 * 1024 * 1024 + g.inodes * 256);
    expect(g.inodes).toBeGreaterThan(10_000 + 512 * 64);
  });
});
