import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RAW_CODE } from '../../src/protocol/blocks.ts';
import { FsBlockStore } from '../../src/store/fs-block-store.ts';
import { tempDir } from '../helpers/run.ts';

async function rawBlock(text: string): Promise<{ cid: CID; bytes: Uint8Array }> {
  const bytes = new TextEncoder().encode(text);
  return { cid: CID.createV1(RAW_CODE, await sha256.digest(bytes)), bytes };
}

const aborted = (): { signal: AbortSignal } => ({ signal: AbortSignal.abort() });

let dir: { path: string; remove(): Promise<void> };
beforeEach(async () => {
  dir = await tempDir('fo-fs-store-');
});
afterEach(async () => {
  await dir.remove();
});

describe('FsBlockStore', () => {
  it('stores one file per block under <dataDir>/blocks and reads it back (packs off)', async () => {
    const store = new FsBlockStore(dir.path, { packBelow: 0 });
    const a = await rawBlock('a');
    expect(store.description).toBe(`embedded store ${join(dir.path, 'blocks')}`);
    expect(await store.has(a.cid)).toBe(false);
    await store.put(a.cid, a.bytes);
    expect(await store.has(a.cid)).toBe(true);
    expect(Buffer.from(await store.get(a.cid))).toEqual(Buffer.from(a.bytes));
    expect(await readFile(store.pathOf(a.cid))).toEqual(Buffer.from(a.bytes));
    await expect(store.get((await rawBlock('missing')).cid)).rejects.toMatchObject({ code: 'ORACLE_ERR_BLOCK_MISSING' });
  });

  it('stores many blocks, treats pin and check as the no-ops they are for files, and flushes (syncs) what it wrote', async () => {
    const store = new FsBlockStore(dir.path);
    const blocks = await Promise.all(['x', 'y', 'z'].map(rawBlock));
    expect(await store.putMany(blocks)).toBe(3);
    await store.pin(blocks[0]!.cid);
    await store.check();
    await store.flush();
    for (const b of blocks) expect(Buffer.from(await store.get(b.cid))).toEqual(Buffer.from(b.bytes));
    await store.close();
    await store.close();
  });

  it('syncs block files and their folders at sync, and one removed since it was written (gc, quarantine) is nothing to sync', async () => {
    const store = new FsBlockStore(dir.path, { packBelow: 0 });
    const [kept, gone] = await Promise.all(['kept', 'gone'].map(rawBlock));
    await store.put(kept!.cid, kept!.bytes);
    await store.put(gone!.cid, gone!.bytes);
    await store.quarantine(gone!.cid);
    await rm(`${store.pathOf(gone!.cid)}.corrupt`);
    await store.sync();
    await store.sync(); // nothing written since: nothing to do
    expect(Buffer.from(await store.get(kept!.cid))).toEqual(Buffer.from(kept!.bytes));
    await expect(store.sync(aborted())).rejects.toMatchObject({ code: 'ORACLE_ERR_ABORTED' });
  });

  it('quarantines a block file: moved aside, no longer served', async () => {
    const store = new FsBlockStore(dir.path, { packBelow: 0 });
    const a = await rawBlock('bad');
    await store.put(a.cid, a.bytes);
    await store.quarantine(a.cid);
    expect(await store.has(a.cid)).toBe(false);
    expect(await readdir(join(store.pathOf(a.cid), '..'))).toEqual([`${a.cid}.corrupt`]);
  });

  it('rejects an already-aborted signal in every method that takes one', async () => {
    const store = new FsBlockStore(dir.path);
    const a = await rawBlock('a');
    const code = { code: 'ORACLE_ERR_ABORTED' };
    await expect(store.put(a.cid, a.bytes, aborted())).rejects.toMatchObject(code);
    await expect(store.putMany([a], aborted())).rejects.toMatchObject(code);
    await expect(store.get(a.cid, aborted())).rejects.toMatchObject(code);
    await expect(store.has(a.cid, aborted())).rejects.toMatchObject(code);
    await expect(store.pin(a.cid, aborted())).rejects.toMatchObject(code);
    await expect(store.check(aborted())).rejects.toMatchObject(code);
    await expect(store.flush(aborted())).rejects.toMatchObject(code);
  });
});

describe('FsBlockStore.readBlock / readKept (replay answers)', () => {
  const alloc = (n: number): Uint8Array => new Uint8Array(n);
  const text = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : Buffer.from(b).toString());

  it('keeps a small block file open after readBlock, reads a rewrite in place as it is now, and a replaced file after forget', async () => {
    const store = new FsBlockStore(dir.path, { packBelow: 0 });
    const a = await rawBlock('block a');
    await store.put(a.cid, a.bytes);
    expect(store.readKept(a.cid, alloc)).toBeUndefined(); // nothing open yet
    expect(text(await store.readBlock(a.cid, alloc))).toBe('block a');
    expect(text(store.readKept(a.cid, alloc))).toBe('block a');
    await writeFile(store.pathOf(a.cid), 'block A'); // same file, new bytes: what a tamper in place does
    expect(text(store.readKept(a.cid, alloc))).toBe('block A');
    expect(text(await store.get(a.cid))).toBe('block A');
    await writeFile(store.pathOf(a.cid), 'block'); // shorter: fewer bytes, which its hash then refuses
    expect(text(store.readKept(a.cid, alloc))).toBe('block');
    await writeFile(`${store.pathOf(a.cid)}.new`, 'block a');
    await rename(`${store.pathOf(a.cid)}.new`, store.pathOf(a.cid)); // another file under the name
    expect(text(store.readKept(a.cid, alloc))).toBe('block'); // still the file held open…
    store.forget(a.cid);
    expect(store.readKept(a.cid, alloc)).toBeUndefined(); // …until the caller says it failed its hash
    expect(text(await store.readBlock(a.cid, alloc))).toBe('block a');
    await store.close();
    await store.close();
    expect(store.readKept(a.cid, alloc)).toBeUndefined(); // close closed the files; the store still reads
    expect(text(await store.get(a.cid))).toBe('block a');
  });

  it('reads into the memory it is given, refuses a file larger than any block unread, and names a missing one', async () => {
    const store = new FsBlockStore(dir.path, { packBelow: 0 });
    const a = await rawBlock('into');
    await store.put(a.cid, a.bytes);
    const given = new Uint8Array(4);
    expect(await store.readBlock(a.cid, (n) => (n === 4 ? given : alloc(n)))).toBe(given);
    const big = await rawBlock('big');
    await mkdir(join(store.pathOf(big.cid), '..'), { recursive: true });
    await writeFile(store.pathOf(big.cid), Buffer.alloc(2 * 1024 * 1024 + 1));
    let allocated = 0;
    await expect(store.readBlock(big.cid, (n) => (allocated++, alloc(n)))).rejects.toMatchObject({ code: 'ORACLE_ERR_BLOCK_CORRUPT' });
    expect(allocated).toBe(0);
    await expect(store.get(big.cid)).rejects.toMatchObject({ code: 'ORACLE_ERR_BLOCK_CORRUPT' });
    await expect(store.readBlock((await rawBlock('none')).cid, alloc)).rejects.toMatchObject({ code: 'ORACLE_ERR_BLOCK_MISSING' });
    await store.close();
  });
});
