/**
 * StagedBlocks reads a staged CAR's blocks back by offset through aligned windows of the file: whatever the
 * order and however many reads run at once, every block's bytes are exactly its own.
 */
import { open, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CID } from 'multiformats/cid';
import * as raw from 'multiformats/codecs/raw';
import { sha256 } from 'multiformats/hashes/sha2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StagedBlocks } from '../../src/netlock/staged-blocks.ts';

const KiB = 1024;

interface Placed {
  cid: CID;
  bytes: Uint8Array;
  offset: number;
}

/** Blocks of the given sizes laid end to end after a 100-byte header, each filled with its own pattern. */
async function layOut(sizes: number[]): Promise<{ file: Uint8Array; blocks: Placed[] }> {
  const blocks: Placed[] = [];
  let offset = 100;
  for (const [i, size] of sizes.entries()) {
    const bytes = new Uint8Array(size).map((_, j) => (i * 31 + j * 7) & 0xff);
    blocks.push({ cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes, offset });
    offset += size;
  }
  const file = new Uint8Array(offset);
  for (const b of blocks) file.set(b.bytes, b.offset);
  return { file, blocks };
}

/** Byte equality without vitest's element-by-element diff (slow on blocks of tens of KiB). */
function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

/** A deterministic shuffle (the order of reads matters to the windows, so it must not vary run to run). */
function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  let state = 12345;
  for (let i = out.length - 1; i > 0; i--) {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('StagedBlocks', () => {
  let dir: string;
  let handle: FileHandle | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fo-staged-'));
  });

  afterEach(async () => {
    await handle?.close();
    handle = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  // Sizes that put blocks across 256 KiB window boundaries, a few larger than a window's quarter (read alone),
  // and over 1 MiB in all, so that windows are dropped and read again.
  const sizes = Array.from({ length: 90 }, (_, i) => (i % 11 === 5 ? 70 * KiB + i : 1 + ((i * 7919) % (20 * KiB))));

  async function staged(file: Uint8Array, blocks: Placed[]): Promise<StagedBlocks> {
    const path = join(dir, 'staged.car');
    await writeFile(path, file);
    handle = await open(path, 'r');
    const s = new StagedBlocks(handle, 'staged.car');
    for (const b of blocks) s.add(b.cid, b.offset, b.bytes.byteLength);
    return s;
  }

  it('returns each block exactly, in file order, in reverse, shuffled and many at once', async () => {
    const { file, blocks } = await layOut(sizes);
    expect(file.byteLength).toBeGreaterThan(1024 * KiB);
    const s = await staged(file, blocks);
    for (const order of [blocks, [...blocks].reverse(), shuffled(blocks)]) {
      for (const b of order) expect(same(await s.get(b.cid), b.bytes)).toBe(true);
    }
    const all = await Promise.all(shuffled([...blocks, ...blocks]).map(async (b) => ({ b, got: await s.get(b.cid) })));
    for (const { b, got } of all) expect(same(got, b.bytes)).toBe(true);
  });

  it('forgets a block released (committed): the rest still read, the released one is missing', async () => {
    const { file, blocks } = await layOut(sizes.slice(0, 20));
    const s = await staged(file, blocks);
    const gone = blocks[7]!;
    s.release(s.idOf(gone.cid));
    expect(s.size).toBe(19);
    expect(s.has(gone.cid)).toBe(false);
    await expect(s.get(gone.cid)).rejects.toThrow();
    for (const b of blocks) if (b !== gone) expect(same(await s.get(b.cid), b.bytes)).toBe(true);
  });

  it('reads a window once for all the blocks in it asked for at once, and reads a failed window again', async () => {
    const { file, blocks } = await layOut(Array.from({ length: 40 }, () => 1000));
    const path = join(dir, 'counted.car');
    await writeFile(path, file);
    handle = await open(path, 'r');
    const real = handle;
    let reads = 0;
    let failNext = false;
    const counting = {
      read: (...args: Parameters<FileHandle['read']>) => {
        reads++;
        if (failNext) {
          failNext = false;
          return Promise.reject(new Error('EIO: i/o error, read'));
        }
        return real.read(...args);
      },
    } as unknown as FileHandle;
    const s = new StagedBlocks(counting, 'counted.car');
    for (const b of blocks) s.add(b.cid, b.offset, b.bytes.byteLength);
    const got = await Promise.all(blocks.map((b) => s.get(b.cid)));
    got.forEach((bytes, i) => expect(same(bytes, blocks[i]!.bytes)).toBe(true));
    expect(reads).toBe(2); // the window, then the end of the file
    const s2 = new StagedBlocks(counting, 'counted.car');
    for (const b of blocks) s2.add(b.cid, b.offset, b.bytes.byteLength);
    failNext = true;
    await expect(s2.get(blocks[0]!.cid)).rejects.toThrow(/EIO/);
    expect(same(await s2.get(blocks[0]!.cid), blocks[0]!.bytes)).toBe(true);
  });

  it('hands out copies: changing bytes one read returned changes no later read', async () => {
    const { file, blocks } = await layOut(sizes.slice(0, 8));
    const s = await staged(file, blocks);
    const first = await s.get(blocks[1]!.cid);
    first.fill(0);
    expect(await s.get(blocks[1]!.cid)).toEqual(blocks[1]!.bytes);
    expect(await s.get(blocks[2]!.cid)).toEqual(blocks[2]!.bytes);
  });

  it('says the CAR shrank when a block lies past the end of the file now, small or large', async () => {
    const { file, blocks } = await layOut([10, 20 * KiB, 100 * KiB]);
    const s = await staged(file, blocks);
    await truncate(join(dir, 'staged.car'), blocks[1]!.offset + 5);
    await expect(s.get(blocks[1]!.cid)).rejects.toThrow(/staged\.car shrank while it was being imported/);
    await expect(s.get(blocks[2]!.cid)).rejects.toThrow(/shrank/);
    expect(await s.get(blocks[0]!.cid)).toEqual(blocks[0]!.bytes);
  });
});
