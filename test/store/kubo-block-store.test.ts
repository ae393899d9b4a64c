/**
 * KuboBlockStore and TieredBlockStore against a real Kubo (test/kubo/kubo.sh), never mocked. The stop /
 * restart cases need a daemon this file owns (test/kubo/bin/ipfs); the rest also run against
 * FETCH_ORACLE_KUBO_API.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as dagPb from '@ipld/dag-pb';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { DAG_PB_CODE, RAW_CODE, verifyingSource } from '../../src/protocol/blocks.ts';
import { encodeCborBlock } from '../../src/protocol/record.ts';
import { importBody, readBody } from '../../src/protocol/unixfs.ts';
import { createBlockStore, FsBlockStore, KuboBlockStore, kuboApiUrl, MemoryBlockStore, TieredBlockStore } from '../../src/store/index.ts';
import { tamperBlock } from '../helpers/blocks.ts';
import { anyKubo, HAVE_BINARY, KUBO_AVAILABLE, kuboRequiredInCi, kuboRpc, ownKubo } from '../interop/kubo-daemon.ts';
import type { KuboDaemon } from '../interop/kubo-daemon.ts';
import { MiB, pseudoRandomBytes } from '../netlock/netlock-fixture.ts';

async function rawBlock(text: string): Promise<{ cid: CID; bytes: Uint8Array }> {
  const bytes = new TextEncoder().encode(text);
  return { cid: CID.createV1(RAW_CODE, await sha256.digest(bytes)), bytes };
}

async function sha256Of(chunks: AsyncIterable<Uint8Array>): Promise<string> {
  const h = createHash('sha256');
  for await (const c of chunks) h.update(c);
  return h.digest('hex');
}

const aborted = (): { signal: AbortSignal } => ({ signal: AbortSignal.abort() });

describe('kuboApiUrl', () => {
  it('accepts http URLs and /ip4 multiaddrs and rejects anything else', () => {
    expect(kuboApiUrl('http://127.0.0.1:5001/')).toBe('http://127.0.0.1:5001');
    expect(kuboApiUrl('/ip4/127.0.0.1/tcp/5001')).toBe('http://127.0.0.1:5001');
    expect(kuboApiUrl('/ip6/::1/tcp/5001')).toBe('http://[::1]:5001');
    expect(() => kuboApiUrl('https://127.0.0.1:5001')).toThrow(/must be http/);
    expect(() => kuboApiUrl('127.0.0.1:5001')).toThrow(/Invalid Kubo API address/);
  });
});

describe('createBlockStore', () => {
  it('gives the embedded store, Kubo with the embedded cache, or Kubo alone', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fo-store-'));
    try {
      expect(createBlockStore({ dataDir: dir })).toBeInstanceOf(FsBlockStore);
      const tiered = createBlockStore({ dataDir: dir, ipfs: 'http://127.0.0.1:5001' });
      expect(tiered).toBeInstanceOf(TieredBlockStore);
      expect(tiered.description).toMatch(/^Kubo at http:\/\/127\.0\.0\.1:5001 \(cache: embedded store /);
      expect(createBlockStore({ dataDir: dir, ipfs: 'http://127.0.0.1:5001', cache: false })).toBeInstanceOf(KuboBlockStore);
      expect(createBlockStore({ ipfs: 'http://127.0.0.1:5001' })).toBeInstanceOf(KuboBlockStore);
      expect(() => createBlockStore({})).toThrow(/needs a data directory/);
      await Promise.all([tiered.close()]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('KuboBlockStore', () => {
  kuboRequiredInCi('KuboBlockStore');

  describe.skipIf(!KUBO_AVAILABLE)('against a running daemon', () => {
    let kubo: KuboDaemon;
    let store: KuboBlockStore;

    beforeAll(async () => {
      kubo = await anyKubo();
      store = new KuboBlockStore({ url: kubo.api });
      expect(await store.version()).toMatch(/^0\.\d+\.\d+/);
    }, 600_000);

    afterAll(async () => {
      await store?.close();
      await kubo?.dispose();
    }, 60_000);

    it('stores raw, dag-pb and dag-cbor blocks under our CIDs and reads them back', async () => {
      const raw = await rawBlock(`raw ${Date.now()} ${Math.random()}`);
      const cbor = await encodeCborBlock({ hello: 'world', at: Date.now(), link: raw.cid });
      const pbBytes = dagPb.encode(dagPb.prepare({ Data: new Uint8Array([8, 1]), Links: [{ Hash: raw.cid, Name: 'x', Tsize: raw.bytes.byteLength }] }));
      const pb = { cid: CID.createV1(DAG_PB_CODE, await sha256.digest(pbBytes)), bytes: pbBytes };
      for (const b of [raw, cbor, pb]) {
        expect(await store.has(b.cid)).toBe(false);
        await store.put(b.cid, b.bytes);
        expect(await store.has(b.cid)).toBe(true);
        expect(Buffer.from(await store.get(b.cid)).equals(Buffer.from(b.bytes))).toBe(true);
        // Kubo itself lists the block under the same CID string.
        const stat = (await (await kuboRpc(kubo.api, `block/stat?arg=${b.cid}`)).json()) as { Key: string; Size: number };
        expect(stat).toEqual({ Key: b.cid.toString(), Size: b.bytes.byteLength });
      }
    });

    it('gives a body the same root CID and blocks as the embedded importer, and streams it back', async () => {
      const length = 3 * MiB + 12_345;
      const memory = new MemoryBlockStore();
      const ours = await importBody(pseudoRandomBytes('kubo store body', length), memory);
      const viaKubo = await importBody(pseudoRandomBytes('kubo store body', length), store);
      expect(viaKubo.cid.toString()).toBe(ours.cid.toString());
      for (const c of memory.cids()) expect(await store.has(CID.parse(c))).toBe(true);
      expect(await sha256Of(readBody(viaKubo.cid, verifyingSource(store)))).toBe(await sha256Of(pseudoRandomBytes('kubo store body', length)));
    });

    it('throws StoreError when Kubo stores a block under another CID than ours', async () => {
      // A linking block is written before put returns: the mismatch is put's own error.
      const a = await encodeCborBlock({ mismatch: Math.random() });
      const b = await encodeCborBlock({ other: Math.random() });
      const err = await store.put(a.cid, b.bytes).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ORACLE_ERR_STORE' });
      expect((err as Error).message).toContain(`Kubo at ${store.url} stored block ${a.cid} under another CID ${b.cid}`);
      // A raw leaf is written ahead: the mismatch surfaces at flush, or when a block linking it is stored.
      const x = await rawBlock(`mismatch x ${Math.random()}`);
      const y = await rawBlock(`mismatch y ${Math.random()}`);
      await store.put(x.cid, y.bytes);
      await expect(store.flush()).rejects.toMatchObject({ code: 'ORACLE_ERR_STORE', message: expect.stringContaining(`stored block ${x.cid} under another CID ${y.cid}`) as unknown });
      const fresh = new KuboBlockStore({ url: kubo.api });
      await fresh.put(x.cid, y.bytes);
      const parent = await encodeCborBlock({ leaf: x.cid });
      const linked = await fresh.put(parent.cid, parent.bytes).catch((e: unknown) => e);
      expect(linked).toMatchObject({ code: 'ORACLE_ERR_STORE' });
      expect((linked as Error).message).toMatch(new RegExp(`^Cannot store block ${parent.cid}: it links to block ${x.cid}, which did not reach Kubo at .*under another CID`));
      expect(await fresh.has(parent.cid)).toBe(false);
      await fresh.close();
      // Unbuffered: the leaf's own put throws.
      const direct = new KuboBlockStore({ url: kubo.api, writeAheadBlocks: 0 });
      await expect(direct.put(x.cid, y.bytes)).rejects.toMatchObject({ code: 'ORACLE_ERR_STORE' });
      await direct.close();
    });

    it('never stores a block before the leaves it links to', async () => {
      // Many leaves written ahead, then their root: by the time put(root) returns, Kubo has every leaf.
      const memory = new MemoryBlockStore();
      const body = await importBody(pseudoRandomBytes(`order ${Math.random()}`, 40 * MiB), memory);
      const root = dagPb.decode(await memory.get(body.cid));
      for (const l of root.Links) await store.put(l.Hash, await memory.get(l.Hash));
      await store.put(body.cid, await memory.get(body.cid));
      const direct = new KuboBlockStore({ url: kubo.api, writeAheadBlocks: 0 });
      for (const l of root.Links) expect(await direct.has(l.Hash)).toBe(true);
      await direct.close();
      await store.flush();
    });

    it('reports a missing block as BlockMissingError naming Kubo, and has() as false', async () => {
      const missing = await rawBlock(`never stored ${Math.random()}`);
      expect(await store.has(missing.cid)).toBe(false);
      await expect(store.get(missing.cid)).rejects.toMatchObject({ code: 'ORACLE_ERR_BLOCK_MISSING', message: `Block ${missing.cid} is not in Kubo at ${store.url}` });
    });

    it('pins a DAG recursively so that repo gc keeps it, and drops what is not pinned', async () => {
      const pinned = await importBody(pseudoRandomBytes(`pinned ${Math.random()}`, 2 * MiB + 1), store);
      const loose = await importBody(pseudoRandomBytes(`loose ${Math.random()}`, 1000), store);
      await store.pin(pinned.cid, { recursive: true });
      expect(await store.pinned(pinned.cid)).toBe('recursive');
      const leaf = dagPb.decode(await store.get(pinned.cid)).Links[0]!.Hash;
      expect(await store.pinned(leaf)).toBe('indirect');
      expect(await store.pinned(loose.cid)).toBeUndefined();
      await (await kuboRpc(kubo.api, 'repo/gc')).text();
      expect(await store.has(pinned.cid)).toBe(true);
      expect(await store.has(leaf)).toBe(true);
      expect(await store.has(loose.cid)).toBe(false);
    });

    it('refuses to pin a DAG with a missing block, naming that block', async () => {
      const child = await rawBlock(`absent child ${Math.random()}`);
      const parent = await encodeCborBlock({ child: child.cid });
      await store.put(parent.cid, parent.bytes);
      const err = await store.pin(parent.cid).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ORACLE_ERR_BLOCK_MISSING' });
      expect((err as Error).message).toContain(`Cannot pin ${parent.cid} in Kubo at ${store.url}: block ${child.cid} of its DAG is missing`);
    });

    it('stores many blocks with one dag/import', async () => {
      const blocks = await Promise.all(Array.from({ length: 50 }, (_, i) => rawBlock(`bulk ${i} ${Math.random()}`)));
      expect(await store.putMany(blocks)).toBe(50);
      for (const b of blocks) expect(await store.has(b.cid)).toBe(true);
      expect(await store.putMany([])).toBe(0);
    });

    it('honours an already-aborted signal in every method', async () => {
      const b = await rawBlock('aborted');
      await expect(store.put(b.cid, b.bytes, aborted())).rejects.toMatchObject({ code: 'ORACLE_ERR_ABORTED' });
      await expect(store.get(b.cid, aborted())).rejects.toMatchObject({ code: 'ORACLE_ERR_ABORTED' });
      await expect(store.has(b.cid, aborted())).rejects.toMatchObject({ code: 'ORACLE_ERR_ABORTED' });
      await expect(store.pin(b.cid, aborted())).rejects.toMatchObject({ code: 'ORACLE_ERR_ABORTED' });
      await expect(store.pinned(b.cid, aborted())).rejects.toMatchObject({ code: 'ORACLE_ERR_ABORTED' });
      await expect(store.putMany([b], aborted())).rejects.toMatchObject({ code: 'ORACLE_ERR_ABORTED' });
      await expect(store.check(aborted())).rejects.toMatchObject({ code: 'ORACLE_ERR_ABORTED' });
      await expect(store.flush(aborted())).rejects.toMatchObject({ code: 'ORACLE_ERR_ABORTED' });
      await store.check();
    });
  });
});

describe('KuboBlockStore when Kubo goes down and comes back', () => {
  kuboRequiredInCi('the restart tests', true);

  describe.skipIf(!HAVE_BINARY)('with a daemon of its own', () => {
    let kubo: KuboDaemon;
    let cacheDir: string;

    beforeAll(async () => {
      kubo = await ownKubo();
      cacheDir = await mkdtemp(join(tmpdir(), 'fo-tiered-'));
    }, 600_000);

    afterAll(async () => {
      await kubo?.dispose();
      if (cacheDir !== undefined) await rm(cacheDir, { recursive: true, force: true });
    }, 60_000);

    it('fails every call with a StoreError naming the URL while Kubo is down, and works again once it is back', async () => {
      const store = new KuboBlockStore({ url: kubo.api, timeoutMs: 10_000, writeAheadBlocks: 0 });
      const before = await rawBlock(`before ${Math.random()}`);
      await store.put(before.cid, before.bytes); // opens a keep-alive connection that the restart breaks
      await kubo.stop();
      const during = await rawBlock(`during ${Math.random()}`);
      for (const call of [
        () => store.put(during.cid, during.bytes),
        () => store.get(before.cid),
        () => store.has(before.cid),
        () => store.pin(before.cid),
        () => store.putMany([during]),
        () => store.version(),
        () => store.check(),
      ]) {
        const err = await call().catch((e: unknown) => e);
        expect(err).toMatchObject({ code: 'ORACLE_ERR_STORE', name: 'StoreError' });
        expect((err as Error).message).toContain(`Kubo at ${kubo.api}`);
        expect((err as Error).message).toMatch(/unreachable \(ECONNREFUSED|fetch failed\)|is the daemon/);
      }
      await kubo.start();
      await store.put(during.cid, during.bytes);
      expect(Buffer.from(await store.get(before.cid)).toString()).toBe(Buffer.from(before.bytes).toString());
      expect(await store.has(during.cid)).toBe(true);
      await store.close();
    }, 120_000);

    it('with write-ahead: the first failed leaf surfaces at flush, later leaves fail at once, all recover', async () => {
      const store = new KuboBlockStore({ url: kubo.api, timeoutMs: 10_000 });
      const warm = await rawBlock(`warm ${Math.random()}`);
      await store.put(warm.cid, warm.bytes);
      await store.flush();
      await kubo.stop();
      try {
        const first = await rawBlock(`first while down ${Math.random()}`);
        await store.put(first.cid, first.bytes); // accepted: written ahead
        await expect(store.flush()).rejects.toMatchObject({ code: 'ORACLE_ERR_STORE', message: expect.stringContaining(`Kubo at ${kubo.api} is unreachable`) as unknown });
        // Now known to fail: a leaf is written through, so its caller gets the error itself.
        const second = await rawBlock(`second while down ${Math.random()}`);
        await expect(store.put(second.cid, second.bytes)).rejects.toMatchObject({ code: 'ORACLE_ERR_STORE', message: expect.stringContaining(`Kubo at ${kubo.api}`) as unknown });
      } finally {
        await kubo.start();
      }
      const after = await rawBlock(`after ${Math.random()}`);
      await store.put(after.cid, after.bytes);
      const parent = await encodeCborBlock({ after: after.cid });
      await store.put(parent.cid, parent.bytes);
      expect(await store.has(after.cid)).toBe(true);
      await store.close();
    }, 120_000);

    it('times out against a daemon that hangs (SIGSTOP), naming it, and works once it runs again', async () => {
      const store = new KuboBlockStore({ url: kubo.api, timeoutMs: 1500, hasTimeoutMs: 1500, writeAheadBlocks: 0 });
      const a = await encodeCborBlock({ hang: Math.random() });
      await store.put(a.cid, a.bytes);
      const resume = await kubo.suspend();
      try {
        const b = await encodeCborBlock({ hang: Math.random() });
        const calls = { put: () => store.put(b.cid, b.bytes), get: () => store.get(a.cid), has: () => store.has(a.cid), check: () => store.check() };
        for (const [name, call] of Object.entries(calls)) {
          const started = performance.now();
          const err = await call().then(
            (value: unknown) => ({ answered: name, value }),
            (e: unknown) => e,
          );
          expect(err, name).toMatchObject({ code: 'ORACLE_ERR_STORE' });
          expect((err as Error).message).toMatch(new RegExp(`^Kubo at ${kubo.api} did not answer \\S+( \\S+)? within 1500 ms`));
          expect(performance.now() - started).toBeLessThan(10_000);
        }
      } finally {
        resume();
      }
      expect(await store.has(a.cid)).toBe(true);
      await store.close();
    }, 60_000);

    it('fails a body import cleanly when Kubo stops in the middle, and imports it after the restart', async () => {
      const store = new KuboBlockStore({ url: kubo.api, timeoutMs: 10_000 });
      const length = 64 * MiB;
      let sent = 0;
      let stopped: Promise<void> | undefined;
      const body = async function* (): AsyncGenerator<Uint8Array> {
        for await (const chunk of pseudoRandomBytes('mid-import stop', length)) {
          sent += chunk.byteLength;
          if (stopped === undefined && sent > 8 * MiB) stopped = kubo.stop();
          yield chunk;
        }
      };
      const err = await importBody(body(), store).catch((e: unknown) => e);
      await stopped;
      expect(err).toMatchObject({ code: 'ORACLE_ERR_STORE' });
      expect((err as Error).message).toContain(`Kubo at ${kubo.api}`);
      await kubo.start();
      const again = await importBody(pseudoRandomBytes('mid-import stop', length), store);
      expect(again.cid.toString()).toBe((await importBody(pseudoRandomBytes('mid-import stop', length), new MemoryBlockStore())).cid.toString());
      await store.pin(again.cid);
      await store.close();
    }, 180_000);

    it('TieredBlockStore: writes both tiers, reads the cache while Kubo is down, refuses writes then', async () => {
      const kuboStore = new KuboBlockStore({ url: kubo.api, timeoutMs: 10_000 });
      const cache = new FsBlockStore(cacheDir);
      const tiered = new TieredBlockStore({ primary: kuboStore, cache, cacheOnWrite: 'all' });
      const a = await rawBlock(`tiered a ${Math.random()}`);
      await tiered.put(a.cid, a.bytes);
      expect(await kuboStore.has(a.cid)).toBe(true);
      await tiered.flush(); // the cache write runs behind
      expect(await cache.has(a.cid)).toBe(true);

      // By default only linking blocks are cached on write; leaves when first read.
      const lazy = new TieredBlockStore({ primary: kuboStore, cache });
      const leaf = await rawBlock(`tiered leaf ${Math.random()}`);
      const node = await encodeCborBlock({ leaf: leaf.cid });
      await lazy.put(leaf.cid, leaf.bytes);
      await lazy.put(node.cid, node.bytes);
      await lazy.flush();
      expect(await cache.has(leaf.cid)).toBe(false);
      expect(await cache.has(node.cid)).toBe(true);
      await lazy.get(leaf.cid);
      expect(await cache.has(leaf.cid)).toBe(true);

      // Read-through: a block only Kubo has is fetched once, verified, and kept in the cache.
      const b = await rawBlock(`tiered b ${Math.random()}`);
      await kuboStore.put(b.cid, b.bytes);
      expect(await cache.has(b.cid)).toBe(false);
      expect(Buffer.from(await tiered.get(b.cid)).toString()).toBe(Buffer.from(b.bytes).toString());
      expect(await cache.has(b.cid)).toBe(true);

      await kubo.stop();
      try {
        expect(Buffer.from(await tiered.get(a.cid)).toString()).toBe(Buffer.from(a.bytes).toString());
        const c = await encodeCborBlock({ tiered: Math.random() });
        await expect(tiered.put(c.cid, c.bytes)).rejects.toMatchObject({ code: 'ORACLE_ERR_STORE', message: expect.stringContaining(`Kubo at ${kubo.api}`) as unknown });
        await expect(tiered.has(a.cid)).rejects.toMatchObject({ code: 'ORACLE_ERR_STORE' });
      } finally {
        await kubo.start();
      }
      expect(await tiered.has(a.cid)).toBe(true);
      await tiered.close();
    }, 120_000);

    it('TieredBlockStore: quarantines a corrupt cached copy and then serves the good one from Kubo', async () => {
      const kuboStore = new KuboBlockStore({ url: kubo.api });
      const cache = new FsBlockStore(cacheDir);
      const tiered = new TieredBlockStore({ primary: kuboStore, cache, cacheOnWrite: 'all' });
      const a = await rawBlock(`corrupt cache ${Math.random()}`);
      await tiered.put(a.cid, a.bytes);
      await tiered.flush();
      await tamperBlock(cacheDir, a.cid, 'not the bytes');
      await expect(verifyingSource(tiered).get(a.cid)).rejects.toMatchObject({ code: 'ORACLE_ERR_BLOCK_CORRUPT' });
      await tiered.quarantine(a.cid);
      expect(Buffer.from(await verifyingSource(tiered).get(a.cid)).toString()).toBe(Buffer.from(a.bytes).toString());
      expect(await kuboStore.has(a.cid)).toBe(true);
      await tiered.close();
    });
  });
});
