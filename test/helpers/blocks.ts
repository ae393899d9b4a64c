import { open, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CID } from 'multiformats/cid';
import * as raw from 'multiformats/codecs/raw';
import { sha256 } from 'multiformats/hashes/sha2';
import { PACK_INDEX_DIR } from '../../src/store/pack-index.ts';
import { PACKS_DIR } from '../../src/store/block-packs.ts';
import { FsBlockStore } from '../../src/store/fs-block-store.ts';
import { cidKey } from '../../src/protocol/cid-key.ts';
import { listPacks, rewritePack } from '../../src/store/pack-gc.ts';

const DAG_CBOR = 0x71;

/** `count` distinct CIDs of SHA-256 digests: CIDv0, raw CIDv1 and DAG-CBOR CIDv1 in turn. */
export async function cidsOf(count: number): Promise<CID[]> {
  const out: CID[] = [];
  for (let i = 0; i < count; i++) {
    const digest = await sha256.digest(new TextEncoder().encode(`block ${i}`));
    out.push(i % 3 === 0 ? CID.createV0(digest) : CID.createV1(i % 3 === 1 ? raw.code : DAG_CBOR, digest));
  }
  return out;
}

const asCid = (cid: CID | string): CID => (typeof cid === 'string' ? CID.parse(cid) : cid);

/** Where a block of the embedded store under `dataDir` is (a block file, or an entry of a pack). */
export async function locateBlock(dataDir: string, cid: CID | string): Promise<{ path: string; offset: number; length: number; packed: boolean }> {
  const store = new FsBlockStore(dataDir);
  try {
    const place = await store.locate(asCid(cid));
    if (place === undefined) throw new Error(`test: block ${cid.toString()} is not in ${dataDir}`);
    return { path: place.path, offset: place.offset, length: place.length, packed: 'stateOffset' in place };
  } finally {
    await store.close();
  }
}

/**
 * Tampers with a block where it lies: a block file is rewritten with `bytes`; a packed block's bytes are
 * overwritten in place with as much of `bytes` as fits (its length stays, as a pack entry's must).
 */
export async function tamperBlock(dataDir: string, cid: CID | string, bytes: string | Uint8Array): Promise<void> {
  const data = typeof bytes === 'string' ? Buffer.from(bytes) : Buffer.from(bytes);
  const where = await locateBlock(dataDir, cid);
  if (!where.packed) return writeFile(where.path, data);
  const file = await open(where.path, 'r+');
  try {
    await file.write(data.subarray(0, where.length), 0, Math.min(data.byteLength, where.length), where.offset);
  } finally {
    await file.close();
  }
}

/** Whether a block was set aside by verification: a `<cid>.corrupt` file, or a pack entry marked quarantined. */
export async function isQuarantined(dataDir: string, cid: CID | string): Promise<boolean> {
  const id = cid.toString();
  const shard = await readdir(join(dataDir, 'blocks', id.slice(-2))).catch(() => [] as string[]);
  if (shard.some((f) => f.startsWith(id) && f.endsWith('.corrupt'))) return true;
  const key = cidKey(asCid(cid));
  const { packs } = await listPacks(join(dataDir, 'blocks', PACKS_DIR));
  return packs.some((p) => p.entries.some((e) => e.quarantined && e.key === key));
}

/** Removes a block from the store (what `gc` does to one nothing needs): its file, or its pack entries. */
export async function removeBlock(dataDir: string, cid: CID | string): Promise<void> {
  const key = cidKey(asCid(cid));
  await rm(new FsBlockStore(dataDir).pathOf(asCid(cid)), { force: true });
  const dir = join(dataDir, 'blocks', PACKS_DIR);
  for (const pack of (await listPacks(dir)).packs) {
    if (pack.entries.some((e) => e.key === key)) await rewritePack(dir, pack, (e) => cidKey(e.cid) !== key, { dryRun: false });
  }
}

/** How many blocks the store under `dataDir` holds (block files and live pack entries). */
export async function countBlocks(dataDir: string): Promise<number> {
  const blocks = join(dataDir, 'blocks');
  let n = 0;
  for (const shard of await readdir(blocks).catch(() => [] as string[])) {
    if (shard === PACKS_DIR || shard === PACK_INDEX_DIR) continue;
    n += (await readdir(join(blocks, shard))).filter((f) => !f.endsWith('.tmp') && !f.endsWith('.corrupt')).length;
  }
  const ids = new Set<string>();
  for (const pack of (await listPacks(join(blocks, PACKS_DIR))).packs) for (const e of pack.entries) if (!e.quarantined) ids.add(e.key);
  return n + ids.size;
}
