import { spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, rename, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RAW_CODE, verifyingSource } from '../../src/protocol/blocks.ts';
import { cidKey } from '../../src/protocol/cid-key.ts';
import { PACKS_DIR } from '../../src/store/block-packs.ts';
import { FsBlockStore } from '../../src/store/fs-block-store.ts';
import { collectGarbage } from '../../src/store/gc.ts';
import { PACK_HEADER_BYTES, PACK_MAGIC } from '../../src/store/pack-file.ts';
import { listPacks } from '../../src/store/pack-gc.ts';
import { isQuarantined, locateBlock, tamperBlock } from '../helpers/blocks.ts';
import { buildFixtureNetlock, manySmallResponses } from '../netlock/netlock-fixture.ts';
import { verifyNetlock } from '../../src/netlock/verify.ts';
import { ROOT, tempDir } from '../helpers/run.ts';

async function rawBlock(bytes: string | Uint8Array): Promise<{ cid: CID; bytes: Uint8Array }> {
  const b = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes;
  return { cid: CID.createV1(RAW_CODE, await sha256.digest(b)), bytes: b };
}

const text = (b: Uint8Array): string => Buffer.from(b).toString();

let dir: { path: string; remove(): Promise<void> };
let packsDir: string;
beforeEach(async () => {
  dir = await tempDir('fo-packs-');
  packsDir = join(dir.path, 'blocks', PACKS_DIR);
});
afterEach(async () => {
  await dir.remove();
});

describe('FsBlockStore with packs', () => {
  it('appends small blocks to a pack, keeps big ones as files, reads both, and block files of the old layout beside them', async () => {
    const old = new FsBlockStore(dir.path, { packBelow: 0 });
    const legacy = await rawBlock('written before packs');
    await old.put(legacy.cid, legacy.bytes);
    await old.close();

    const store = new FsBlockStore(dir.path);
    const small = await rawBlock('a small block');
    const mid = await rawBlock(new Uint8Array(200 * 1024).fill(5)); // packed too, read through the pool
    const big = await rawBlock(new Uint8Array(1024 * 1024).fill(7)); // a full leaf: a file of its own
    for (const b of [small, mid, big]) await store.put(b.cid, b.bytes);
    expect(await stat(store.pathOf(big.cid))).toMatchObject({ size: 1024 * 1024 });
    for (const b of [small, mid]) await expect(stat(store.pathOf(b.cid))).rejects.toThrow(/ENOENT/);
    const packs = await readdir(packsDir);
    expect(packs).toEqual([expect.stringMatching(new RegExp(`^${process.pid}-[0-9a-f]{12}\\.pack$`))]);
    expect((await readFile(join(packsDir, packs[0]!))).subarray(0, 8)).toEqual(PACK_MAGIC);
    for (const b of [small, mid, big, legacy]) {
      expect(await store.has(b.cid)).toBe(true);
      expect(Buffer.from(await store.get(b.cid))).toEqual(Buffer.from(b.bytes));
    }
    expect(text(store.readKept(small.cid, (n) => new Uint8Array(n))!)).toBe('a small block');
    expect(store.readKept(mid.cid, (n) => new Uint8Array(n))).toBeUndefined(); // not read on the event loop…
    expect(Buffer.from(await store.readBlock(mid.cid, (n) => new Uint8Array(n)))).toEqual(Buffer.from(mid.bytes)); // …but here
    // Closing seals the pack (it takes no more entries); a new store object reads it by scanning.
    await store.close();
    expect(await readdir(packsDir)).toEqual([packs[0]!.replace(/^\d+-/, 'sealed-')]);
    const reopened = new FsBlockStore(dir.path);
    expect(text(await reopened.get(small.cid))).toBe('a small block');
    expect(text(await reopened.readBlock(small.cid, (n) => new Uint8Array(n)))).toBe('a small block');
    await expect(reopened.get((await rawBlock('never stored')).cid)).rejects.toMatchObject({ code: 'ORACLE_ERR_BLOCK_MISSING' });
    await reopened.close();
  });

  it('writes a block it holds once, and again after gc dropped the pack that held it', async () => {
    const store = new FsBlockStore(dir.path);
    const a = await rawBlock('once');
    await store.put(a.cid, a.bytes);
    const [pack] = await readdir(packsDir);
    const size = (await stat(join(packsDir, pack!))).size;
    await store.put(a.cid, a.bytes);
    expect((await stat(join(packsDir, pack!))).size).toBe(size);
    await store.close();

    // Another process object reads the sealed pack; gc then rewrites that pack without the block.
    const reader = new FsBlockStore(dir.path);
    expect(await reader.has(a.cid)).toBe(true);
    const old = new Date(Date.now() - 2 * 3600_000);
    await utimes(join(packsDir, (await readdir(packsDir))[0]!), old, old);
    const report = await collectGarbage({ dataDir: dir.path });
    expect(report.removed).toEqual({ count: 1, bytes: 4 });
    expect(await readdir(packsDir)).toEqual([]);
    await reader.put(a.cid, a.bytes); // its descriptor still reads the removed pack: the put must not trust it
    await reader.close();
    const after = new FsBlockStore(dir.path);
    expect(text(await after.get(a.cid))).toBe('once');
    await after.close();
  });

  it('seals a full pack and goes on in a new one; every block of both is read, then and after reopening', async () => {
    const store = new FsBlockStore(dir.path, { packBytes: 1024 });
    const blocks = await Promise.all(Array.from({ length: 12 }, (_, i) => rawBlock(`block ${i} `.repeat(20))));
    for (const b of blocks) await store.put(b.cid, b.bytes);
    const names = (await readdir(packsDir)).sort();
    expect(names.length).toBeGreaterThan(2);
    expect(names.filter((n) => n.startsWith('sealed-'))).toHaveLength(names.length - 1); // all but the one being written
    for (const b of blocks) expect(text(await store.get(b.cid))).toBe(text(b.bytes));
    await store.close();
    const reopened = new FsBlockStore(dir.path);
    for (const b of blocks) expect(text(await reopened.get(b.cid))).toBe(text(b.bytes));
    await reopened.close();
  });

  it('goes on appending to a sealed pack with room rather than leaving one more pack per run', async () => {
    const blocks = await Promise.all(Array.from({ length: 5 }, (_, i) => rawBlock(`run ${i}`)));
    for (const b of blocks) {
      const run = new FsBlockStore(dir.path);
      await run.put(b.cid, b.bytes);
      await run.close();
    }
    expect(await readdir(packsDir)).toEqual([expect.stringMatching(/^sealed-[0-9a-f]{12}\.pack$/)]);
    // So does a pack left by a process that is gone without sealing it (killed), when it ends on a whole entry.
    const [sealed] = await readdir(packsDir);
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    await rename(join(packsDir, sealed!), join(packsDir, sealed!.replace('sealed-', `${dead}-`)));
    const after = new FsBlockStore(dir.path);
    const z = await rawBlock('after a crash');
    await after.put(z.cid, z.bytes);
    expect(await readdir(packsDir)).toEqual([sealed!.replace('sealed-', `${process.pid}-`)]);
    await after.close();
    blocks.push(z);
    // A second writer while the first holds the pack makes its own.
    const first = new FsBlockStore(dir.path);
    const second = new FsBlockStore(dir.path);
    const [x, y] = await Promise.all(['x', 'y'].map(rawBlock));
    await first.put(x!.cid, x!.bytes);
    await second.put(y!.cid, y!.bytes);
    expect((await readdir(packsDir)).filter((n) => n.startsWith(`${process.pid}-`))).toHaveLength(2);
    await Promise.all([first.close(), second.close()]);
    const reader = new FsBlockStore(dir.path);
    for (const b of [...blocks, x!, y!]) expect(text(await reader.get(b.cid))).toBe(text(b.bytes));
    await reader.close();
  });

  it('finds blocks another store object appended after it read the packs', async () => {
    const reader = new FsBlockStore(dir.path);
    const writer = new FsBlockStore(dir.path);
    const first = await rawBlock('first');
    await writer.put(first.cid, first.bytes);
    expect(text(await reader.get(first.cid))).toBe('first');
    const later = await rawBlock('later');
    await writer.put(later.cid, later.bytes);
    expect(await reader.has(later.cid)).toBe(true);
    expect(text(await reader.readBlock(later.cid, (n) => new Uint8Array(n)))).toBe('later');
    await writer.close(); // sealed: the reader goes on reading the same file under its new name
    const third = await rawBlock('third');
    const writer2 = new FsBlockStore(dir.path);
    await writer2.put(third.cid, third.bytes);
    expect(text(await reader.get(third.cid))).toBe('third');
    expect(text(await reader.get(first.cid))).toBe('first');
    await Promise.all([reader.close(), writer2.close()]);
  });

  it('indexes every whole entry of a pack cut short by a crash, and writes the torn block again', async () => {
    const store = new FsBlockStore(dir.path);
    const blocks = await Promise.all(['one', 'two', 'three'].map((t) => rawBlock(`${t} `.repeat(50))));
    for (const b of blocks) await store.put(b.cid, b.bytes);
    const [pack] = await readdir(packsDir);
    await truncate(join(packsDir, pack!), (await stat(join(packsDir, pack!))).size - 10); // the last write torn
    const reopened = new FsBlockStore(dir.path);
    expect(text(await reopened.get(blocks[1]!.cid))).toBe('two '.repeat(50));
    await expect(reopened.get(blocks[2]!.cid)).rejects.toMatchObject({ code: 'ORACLE_ERR_BLOCK_MISSING' });
    await reopened.put(blocks[2]!.cid, blocks[2]!.bytes);
    expect(text(await reopened.get(blocks[2]!.cid))).toBe('three '.repeat(50));
    // Listed the same way: the torn tail is no damage, only bytes gc drops.
    const listed = (await listPacks(packsDir)).packs.find((p) => p.name === pack)!;
    expect(listed).toMatchObject({ entries: [{ key: cidKey(blocks[0]!.cid) }, { key: cidKey(blocks[1]!.cid) }], damage: undefined });
    expect(listed.size - listed.end).toBe(PACK_HEADER_BYTES + 36 + 300 - 10);
    await Promise.all([store.close(), reopened.close()]);
    // Bytes that are no entry header stop a scan there, said as damage.
    await writeFile(join(packsDir, pack!), Buffer.concat([PACK_MAGIC, Buffer.alloc(20, 0xee)]));
    expect((await listPacks(packsDir)).packs.find((p) => p.name === pack)).toMatchObject({ entries: [], end: 8, damage: 'no entry header at byte 8' });
  });

  it('serves a tampered packed block as it is now (its hash refuses it), and quarantines it in place for every process', async () => {
    const store = new FsBlockStore(dir.path);
    const a = await rawBlock('the true bytes');
    await store.put(a.cid, a.bytes);
    await tamperBlock(dir.path, a.cid, 'THE');
    expect(text(await store.get(a.cid))).toBe('THE true bytes');
    await expect(verifyingSource(store).get(a.cid)).rejects.toMatchObject({ code: 'ORACLE_ERR_BLOCK_CORRUPT' });
    const other = new FsBlockStore(dir.path);
    expect(await other.has(a.cid)).toBe(true);
    await store.quarantine(a.cid);
    expect(await store.has(a.cid)).toBe(false);
    expect(await isQuarantined(dir.path, a.cid)).toBe(true);
    expect(await other.has(a.cid)).toBe(false); // the state byte is read from the file, not remembered
    expect(await new FsBlockStore(dir.path).has(a.cid)).toBe(false);
    // The same bytes fetched again are stored again, and served.
    await store.put(a.cid, a.bytes);
    expect(text(await verifyingSource(other).get(a.cid))).toBe('the true bytes');
    expect((await locateBlock(dir.path, a.cid)).packed).toBe(true);
    await Promise.all([store.close(), other.close()]);
  });

  it('refuses with a StoreError naming the packs folder while it cannot be read, and works once it can', async () => {
    const store = new FsBlockStore(dir.path);
    const a = await rawBlock('after the folder is back');
    await mkdir(join(dir.path, 'blocks'), { recursive: true });
    await writeFile(packsDir, 'a file where the packs folder goes');
    const refused = { code: 'ORACLE_ERR_STORE', message: expect.stringContaining(`Cannot read the packs in ${packsDir}`) as unknown };
    await expect(store.put(a.cid, a.bytes)).rejects.toMatchObject(refused);
    await expect(store.has(a.cid)).rejects.toMatchObject(refused);
    await expect(store.get(a.cid)).rejects.toMatchObject(refused);
    await rm(packsDir);
    await store.put(a.cid, a.bytes);
    expect(text(await store.get(a.cid))).toBe('after the folder is back');
    await store.close();
  });

  it('on a full disk refuses the put with a StoreError and leaves the pack ending on a whole entry', async () => {
    // A file size limit (ulimit -f, in KiB; SIGXFSZ ignored so the write fails with EFBIG) stands in for a full disk.
    const script = `
      import { CID } from 'multiformats/cid';
      import { sha256 } from 'multiformats/hashes/sha2';
      import { FsBlockStore } from './src/store/fs-block-store.ts';
      const store = new FsBlockStore(${JSON.stringify(dir.path)});
      let n = 0;
      for (;; n++) {
        const bytes = new Uint8Array(3000).fill(n % 251);
        try { await store.put(CID.createV1(0x55, await sha256.digest(bytes)), bytes); }
        catch (err) { console.log(JSON.stringify({ n, code: err.code, message: err.message })); break; }
      }`;
    const r = spawnSync('bash', ['-c', `trap '' XFSZ; ulimit -f 64; exec node --import tsx --input-type=module -e "$0"`, script], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const failed = JSON.parse(r.stdout) as { n: number; code: string; message: string };
    expect(failed).toMatchObject({ code: 'ORACLE_ERR_STORE', message: expect.stringMatching(/Cannot write block .* to a pack in .*: .*EFBIG/) as unknown });
    expect(failed.n).toBeGreaterThan(10);
    const [pack] = (await listPacks(packsDir)).packs;
    expect(pack).toMatchObject({ damage: undefined });
    expect(pack!.end).toBe(pack!.size);
    expect(pack!.entries).toHaveLength(failed.n);
    const store = new FsBlockStore(dir.path);
    for (let n = 0; n < failed.n; n++) {
      const bytes = new Uint8Array(3000).fill(n % 251);
      expect(Buffer.from(await verifyingSource(store).get(CID.createV1(RAW_CODE, await sha256.digest(bytes))))).toEqual(Buffer.from(bytes));
    }
    await store.close();
  });
});

describe('gc of packs', () => {
  it('rewrites a sealed pack without its unreferenced and quarantined entries, and leaves a pack still being written', async () => {
    // The running writer first: a store that starts writing after the other pack is sealed would take it over.
    const writing = new FsBlockStore(dir.path);
    const fresh = await rawBlock('written by a running process');
    await writing.put(fresh.cid, fresh.bytes);
    const sealedStore = new FsBlockStore(dir.path);
    const [kept, dropped, bad] = await Promise.all(['kept', 'dropped', 'bad'].map(rawBlock));
    for (const b of [kept!, dropped!, bad!]) await sealedStore.put(b.cid, b.bytes);
    await sealedStore.quarantine(bad!.cid);
    await sealedStore.close();
    const old = new Date(Date.now() - 2 * 3600_000);
    for (const name of await readdir(packsDir)) await utimes(join(packsDir, name), old, old);
    // `kept` is a root (a netlock file may be a bare root CID); `dropped` is named by nothing.
    const keep = join(dir.path, 'kept.netlock');
    await writeFile(keep, `${kept!.cid.toString()}\n`);
    const dry = await collectGarbage({ dataDir: dir.path, keep: [keep], dryRun: true });
    expect(dry).toMatchObject({ live: { count: 1 }, removed: { count: 1 }, young: { count: 1 }, quarantined: { count: 1 } });
    expect((await readdir(packsDir)).length).toBe(2);

    const report = await collectGarbage({ dataDir: dir.path, keep: [keep] });
    expect(report).toMatchObject({ live: { count: 1 }, removed: { count: 1 }, young: { count: 1 }, quarantined: { count: 1 } });
    const reader = new FsBlockStore(dir.path);
    expect(await reader.has(fresh.cid)).toBe(true); // the running writer's pack is left as it is
    expect(await reader.has(dropped!.cid)).toBe(false);
    expect(await reader.has(bad!.cid)).toBe(false);
    expect(text(await reader.get(kept!.cid))).toBe('kept');
    const { packs } = await listPacks(packsDir);
    expect(packs.map((p) => p.entries.length).sort()).toEqual([1, 1]); // the rewritten pack holds `kept` alone
    await Promise.all([reader.close(), writing.close()]);
  });

  it('keeps a netlock whose root only the store holds, early in a pack of several MiB', async () => {
    // The root's entry is followed by more than one read of the pack's scan: the CID gc notes for it must be
    // its own bytes, not a view of the scan's buffer read over since (gc then missed the root and removed
    // the whole netlock).
    const store = new FsBlockStore(dir.path);
    const fixture = await buildFixtureNetlock(manySmallResponses(20), store);
    for (let i = 0; i < 40; i++) {
      const filler = await rawBlock(new Uint8Array(100 * 1024).fill(i));
      await store.put(filler.cid, filler.bytes);
    }
    await store.close();
    const old = new Date(Date.now() - 2 * 3600_000);
    for (const name of await readdir(packsDir)) await utimes(join(packsDir, name), old, old);

    const report = await collectGarbage({ dataDir: dir.path, minAgeMs: 0 });
    expect(report.roots.storedNetlocks).toBe(1);
    expect(report.removed.count).toBe(40); // the fillers, named by nothing
    const reader = new FsBlockStore(dir.path);
    expect((await verifyNetlock(fixture.root, reader, [fixture.signer.publicKey])).failures).toEqual([]);
    await reader.close();
  });
});
