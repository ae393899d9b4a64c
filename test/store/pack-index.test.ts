import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RAW_CODE, verifyingSource } from '../../src/protocol/blocks.ts';
import { PACKS_DIR } from '../../src/store/block-packs.ts';
import { FsBlockStore } from '../../src/store/fs-block-store.ts';
import { collectGarbage } from '../../src/store/gc.ts';
import { INDEX_RECORD_HEAD, PACK_INDEX_DIR, PACK_INDEX_MAGIC, indexRecords } from '../../src/store/pack-index.ts';
import { cidDigest } from '../../src/store/pack-slots.ts';
import { tempDir } from '../helpers/run.ts';

async function rawBlock(bytes: string): Promise<{ cid: CID; bytes: Uint8Array }> {
  const b = new TextEncoder().encode(bytes);
  return { cid: CID.createV1(RAW_CODE, await sha256.digest(b)), bytes: b };
}

const text = (b: Uint8Array): string => Buffer.from(b).toString();

let dir: { path: string; remove(): Promise<void> };
let indexDir: string;
beforeEach(async () => {
  dir = await tempDir('fo-pack-index-');
  indexDir = join(dir.path, 'blocks', PACK_INDEX_DIR);
});
afterEach(async () => {
  await dir.remove();
});

/** Blocks put by one store that is synced (as a record run's checkpoints do) and closed. */
async function written(n: number, prefix = 'block', sameLength = false): Promise<Array<{ cid: CID; bytes: Uint8Array }>> {
  const blocks = await Promise.all(Array.from({ length: n }, (_, i) => rawBlock(sameLength ? `${prefix} ${i}` : `${prefix} ${i} `.repeat(1 + (i % 7)))));
  const store = new FsBlockStore(dir.path);
  for (const b of blocks) await store.put(b.cid, b.bytes);
  await store.sync();
  await store.close();
  return blocks;
}

/** A fresh store: every block read back through its hash, and what opening the packs took. */
async function readAll(blocks: ReadonlyArray<{ cid: CID; bytes: Uint8Array }>): Promise<{ entriesFromIndexes: number; bytesScanned: number }> {
  const store = new FsBlockStore(dir.path);
  try {
    for (const b of blocks) expect(text(await verifyingSource(store).get(b.cid))).toBe(text(b.bytes));
    return store.packIndexing;
  } finally {
    await store.close();
  }
}

const indexFile = async (): Promise<string> => {
  const names = await readdir(indexDir);
  expect(names).toHaveLength(1);
  return join(indexDir, names[0]!);
};

describe('pack indexes', () => {
  it('a synced store indexes its pack; a fresh store files every block from the index without reading the pack', async () => {
    const blocks = await written(40);
    const [pack] = await readdir(join(dir.path, 'blocks', PACKS_DIR));
    expect(await readdir(indexDir)).toEqual([`${/-([0-9a-f]{12})\.pack$/.exec(pack!)![1]}.idx`]);
    expect(await readAll(blocks)).toEqual({ entriesFromIndexes: 40, bytesScanned: 0 });
  });

  it('scans a pack without an index once (a data directory from before indexes), and indexes it for the next store', async () => {
    const blocks = await written(25);
    await rm(indexDir, { recursive: true });
    const first = await readAll(blocks);
    expect(first.entriesFromIndexes).toBe(0);
    expect(first.bytesScanned).toBeGreaterThan(25 * 8);
    expect(await readAll(blocks)).toEqual({ entriesFromIndexes: 25, bytesScanned: 0 });
  });

  it('scans what an index lacks (a tail its writer never indexed, records missing in the middle) and mends it', async () => {
    const blocks = await written(30);
    const path = await indexFile();
    const bytes = await readFile(path);
    const records = [...indexRecords(bytes)];
    expect(records).toHaveLength(30);
    const cut = (i: number): number => records[i]!.at;
    // Records 10-14 gone from the middle, 25 on never written, and a torn half record at the end.
    await writeFile(path, Buffer.concat([bytes.subarray(0, cut(10)), bytes.subarray(cut(15), cut(25)), bytes.subarray(cut(25), cut(25) + 5)]));
    const mended = await readAll(blocks);
    expect(mended.entriesFromIndexes).toBe(20);
    expect(mended.bytesScanned).toBeGreaterThan(0);
    expect([...indexRecords(await readFile(path))].map((r) => r.offset)).toEqual(records.map((r) => r.offset));
    expect(await readAll(blocks)).toEqual({ entriesFromIndexes: 30, bytesScanned: 0 });
  });

  it('never serves a block from where a lying index points: the pack is scanned again and the index rewritten', async () => {
    const blocks = await written(6, 'same length', true);
    const path = await indexFile();
    const bytes = await readFile(path);
    const [a, b] = [...indexRecords(bytes)];
    // Records 0 and 1 swap their CIDs (their blocks are of one length, so every record still lands where an
    // entry starts): each names the other's entry.
    expect(a!.length).toBe(b!.length);
    const lie = Buffer.from(bytes);
    Buffer.from(b!.cidBytes).copy(lie, a!.at + INDEX_RECORD_HEAD);
    Buffer.from(a!.cidBytes).copy(lie, b!.at + INDEX_RECORD_HEAD);
    await writeFile(path, lie);
    const store = new FsBlockStore(dir.path);
    // Each read lands on the other block's entry, which holds another CID: refused there, found by a scan.
    for (const blk of blocks) expect(text(await verifyingSource(store).get(blk.cid))).toBe(text(blk.bytes));
    expect(store.packIndexing.bytesScanned).toBeGreaterThan(0);
    await store.close();
    expect((await readFile(path)).equals(bytes)).toBe(true);
    expect(await readAll(blocks)).toEqual({ entriesFromIndexes: 6, bytesScanned: 0 });
  });

  it('is ignored without its magic; one naming an entry past the end of the pack has the pack scanned whole', async () => {
    const blocks = await written(8);
    const path = await indexFile();
    const bytes = await readFile(path);
    await writeFile(path, Buffer.concat([Buffer.from('NOTANIDX'), bytes.subarray(PACK_INDEX_MAGIC.byteLength)]));
    expect((await readAll(blocks)).entriesFromIndexes).toBe(0);
    // The index was rewritten whole by that store; now one that names entries the pack does not have.
    const good = await readFile(path);
    const last = [...indexRecords(good)].at(-1)!;
    const past = Buffer.from(good.subarray(last.at, last.at + INDEX_RECORD_HEAD + last.cidBytes.byteLength));
    past.writeUIntBE(last.offset + 1_000_000, 0, 6);
    await writeFile(path, Buffer.concat([good, past]));
    const rescanned = await readAll(blocks);
    expect(rescanned.bytesScanned).toBeGreaterThan(8 * 8);
    expect((await readFile(path)).equals(good)).toBe(true);
    expect(await readAll(blocks)).toEqual({ entriesFromIndexes: 8, bytesScanned: 0 });
  });

  it('indexes every 1,024 entries a store appends between checkpoints, and the rest at the next one', async () => {
    const blocks = await Promise.all(Array.from({ length: 1100 }, (_, i) => rawBlock(`many ${i}`)));
    const store = new FsBlockStore(dir.path);
    for (const b of blocks) await store.put(b.cid, b.bytes);
    // No checkpoint yet: the first 1,024 are indexed all the same (written in the background).
    const indexed = async (): Promise<number> => {
      const [name] = await readdir(indexDir).catch(() => []);
      return name === undefined ? 0 : [...indexRecords(await readFile(join(indexDir, name)))].length;
    };
    for (let i = 0; i < 200 && (await indexed()) < 1024; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect([...indexRecords(await readFile(await indexFile()))]).toHaveLength(1024);
    await store.sync();
    expect([...indexRecords(await readFile(await indexFile()))]).toHaveLength(1100);
    await store.close();
    expect(await readAll(blocks)).toEqual({ entriesFromIndexes: 1100, bytesScanned: 0 });
  });

  it('goes on in the index of a pack a later run takes over, and gc removes the index of a pack it rewrote', async () => {
    const first = await written(5, 'first run');
    const second = await written(5, 'second run'); // appended to the first run's sealed pack
    expect(await readdir(join(dir.path, 'blocks', PACKS_DIR))).toHaveLength(1);
    expect(await readAll([...first, ...second])).toEqual({ entriesFromIndexes: 10, bytesScanned: 0 });
    const before = await readdir(indexDir);
    // Nothing keeps these blocks: gc drops them all, and with their pack its index.
    await collectGarbage({ dataDir: dir.path, keep: [], minAgeMs: 0 });
    expect(await readdir(join(dir.path, 'blocks', PACKS_DIR))).toEqual([]);
    expect(before).toHaveLength(1);
    expect(await readdir(indexDir)).toEqual([]);
  });
});

describe('cidDigest', () => {
  it('is the digest multiformats decodes, for CIDv0 and CIDv1, and nothing for bytes that are not a CID', async () => {
    const v1 = (await rawBlock('x')).cid;
    const v0 = CID.createV0(await sha256.digest(Buffer.from('x')));
    for (const cid of [v1, v0, CID.createV1(0x71, v1.multihash)]) expect(Buffer.from(cidDigest(cid.bytes)!).equals(Buffer.from(cid.multihash.digest))).toBe(true);
    expect(cidDigest(v1.bytes.subarray(0, 20))).toBeUndefined();
    expect(cidDigest(Buffer.concat([v1.bytes, Buffer.of(0)]))).toBeUndefined();
    expect(cidDigest(Buffer.of(2, 0x55, 0x12, 0x01, 7))).toBeUndefined();
  });
});
