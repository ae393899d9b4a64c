/**
 * exportCar / importCar on real netlocks (signed records, UnixFS bodies), real files, and — where a Kubo is
 * available — both interop directions: Kubo's `dag import` of our CAR, and our import of Kubo's `dag export`.
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CarBlockIterator } from '@ipld/car/iterator';
import { CarIndexer } from '@ipld/car/indexer';
import { CarWriter } from '@ipld/car/writer';
import * as dagPb from '@ipld/dag-pb';
import { CID } from 'multiformats/cid';
import { base32 } from 'multiformats/bases/base32';
import { sha256 } from 'multiformats/hashes/sha2';
import { runExport, runImport } from '../../src/cli/car.ts';
import { RAW_CODE } from '../../src/protocol/blocks.ts';
import { exportCar } from '../../src/netlock/export-car.ts';
import { importCar } from '../../src/netlock/import-car.ts';
import { buildNetlockFile, renderNetlockFile } from '../../src/netlock/file.ts';
import { verifyNetlock } from '../../src/netlock/verify.ts';
import { FsBlockStore, KuboBlockStore, MemoryBlockStore, TieredBlockStore } from '../../src/store/index.ts';
import { countBlocks } from '../helpers/blocks.ts';
import { anyKubo, API_FROM_ENV, KUBO_AVAILABLE, kuboRequiredInCi, kuboRpc } from '../interop/kubo-daemon.ts';
import type { KuboDaemon } from '../interop/kubo-daemon.ts';
import { buildFixtureNetlock, manySmallResponses, MiB } from './netlock-fixture.ts';
import type { FixtureNetlock, FixtureResponse } from './netlock-fixture.ts';

/** A netlock with a two-level index (300 entries > one page), no-body, empty, 1 MiB, multi-leaf and shared bodies. */
function fixtureResponses(tag: string): FixtureResponse[] {
  return [
    ...manySmallResponses(300, 200).map((r) => ({ ...r, url: r.url.replace('registry.example', `${tag}.example`) })),
    { url: `https://${tag}.example/no-content`, bodyBytes: null },
    { url: `https://${tag}.example/empty`, bodyBytes: 0 },
    { url: `https://${tag}.example/one-mib`, bodyBytes: MiB },
    { url: `https://${tag}.example/big.bin`, bodyBytes: 2 * MiB + 17 },
    { url: `https://${tag}.example/copy-a`, bodyBytes: MiB + 1, seed: `${tag} shared` },
    { url: `https://${tag}.example/copy-b`, bodyBytes: MiB + 1, seed: `${tag} shared` },
  ];
}

async function carBlocks(path: string): Promise<{ roots: CID[]; blocks: Array<{ cid: CID; bytes: Uint8Array }> }> {
  const it = await CarBlockIterator.fromIterable(createReadStream(path));
  const blocks: Array<{ cid: CID; bytes: Uint8Array }> = [];
  for await (const b of it) blocks.push(b);
  return { roots: await it.getRoots(), blocks };
}

/** Writes a CAR with the given roots and blocks using @ipld/car (an independent writer). */
async function writeCarWith(path: string, roots: CID[], blocks: Iterable<{ cid: CID; bytes: Uint8Array }>): Promise<void> {
  const { writer, out } = CarWriter.create(roots);
  const chunks: Uint8Array[] = [];
  const collecting = (async () => {
    for await (const c of out) chunks.push(c);
  })();
  for (const b of blocks) await writer.put(b);
  await writer.close();
  await collecting;
  await writeFile(path, Buffer.concat(chunks));
}

async function filesUnder(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name));
  } catch {
    return [];
  }
}

class Collect extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.chunks.push(chunk);
    done();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

describe('exportCar / importCar (embedded store)', () => {
  let dir: string;
  let source: MemoryBlockStore;
  let fixture: FixtureNetlock;
  let car: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fo-car-'));
    source = new MemoryBlockStore();
    fixture = await buildFixtureNetlock(fixtureResponses('car'), source);
    car = join(dir, 'netlock.car');
  }, 120_000);

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes a CARv1 whose only root is the netlock root and which holds every block once', async () => {
    const result = await exportCar(fixture.root, source, car);
    expect(result).toMatchObject({ entries: 306, blocks: source.size });
    expect(result.bytes).toBe((await stat(car)).size);
    const { roots, blocks } = await carBlocks(car);
    expect(roots.map(String)).toEqual([fixture.root.toString()]);
    expect(blocks[0]!.cid.toString()).toBe(fixture.root.toString());
    const cids = blocks.map((b) => b.cid.toString());
    expect(new Set(cids).size).toBe(cids.length);
    expect([...cids].sort()).toEqual(source.cids().sort());
    for (const b of blocks) expect((await sha256.digest(b.bytes)).digest).toEqual(b.cid.multihash.digest);
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('writes the same bytes to a stream as to a file (deterministic order)', async () => {
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    await exportCar(fixture.root, source, out);
    expect(Buffer.concat(chunks).equals(await readFile(car))).toBe(true);
  });

  it('imports into a fresh store, verified, with no staging left behind', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'fo-car-import-'));
    try {
      const target = new FsBlockStore(dataDir);
      const result = await importCar(car, target);
      expect(result.root.toString()).toBe(fixture.root.toString());
      expect(result.report).toMatchObject({ entries: 306, failures: [] });
      expect(result.report.oracles).toEqual([Buffer.from(fixture.signer.publicKey).toString('hex')]);
      expect(result).toMatchObject({ blocks: source.size, unreferenced: 0, bytes: (await stat(car)).size });
      expect((await verifyNetlock(fixture.root, target, [fixture.signer.publicKey])).failures).toEqual([]);
      expect(await readdir(dataDir)).toEqual(['blocks']);
      expect(await countBlocks(dataDir)).toBe(source.size);
      expect((await filesUnder(join(dataDir, 'blocks'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('imports a CAR given as a stream (spooled beside the target, then removed), also through `import -`', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'fo-car-stream-'));
    try {
      const target = new FsBlockStore(dataDir);
      const result = await importCar(createReadStream(car), target, { name: 'piped' });
      expect(result).toMatchObject({ blocks: source.size, report: { failures: [] } });
      expect(await readdir(dataDir)).toEqual(['blocks']);
      await expect(importCar(Readable.from([(await readFile(car)).subarray(0, 4000)]), target, { name: 'piped' })).rejects.toMatchObject({
        code: 'ORACLE_ERR_INVALID_NETLOCK',
        message: expect.stringMatching(/^CAR piped is truncated/) as unknown,
      });
      expect(await readdir(dataDir)).toEqual(['blocks']);
      const out = new Collect();
      const err = new Collect();
      expect(await runImport(['-', '--data', dataDir, '--json'], { stdin: createReadStream(car), stdout: out, stderr: err })).toBe(0);
      expect(JSON.parse(out.text())).toMatchObject({ root: fixture.root.toString(), entries: 306, failures: [], blocks: source.size });
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  describe('refuses a bad CAR and imports nothing', () => {
    let dataDir: string;
    let target: FsBlockStore;

    beforeAll(async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'fo-car-bad-'));
      target = new FsBlockStore(dataDir);
    });

    afterAll(async () => {
      await rm(dataDir, { recursive: true, force: true });
    });

    const expectUntouched = async (): Promise<void> => {
      expect(await filesUnder(dataDir)).toEqual([]);
      expect((await readdir(dataDir)).filter((f) => f.startsWith('.car-import-'))).toEqual([]);
    };

    it('a block whose bytes do not hash to its CID', async () => {
      const bytes = Buffer.from(await readFile(car));
      // Flip one byte in the middle of the multi-leaf body's first leaf (a raw 1 MiB block).
      const indexer = await CarIndexer.fromBytes(bytes);
      let victim: { cid: CID; blockOffset: number; blockLength: number } | undefined;
      for await (const b of indexer) if (b.cid.code === RAW_CODE && b.blockLength === MiB) victim ??= b;
      bytes[victim!.blockOffset + 1000] = bytes[victim!.blockOffset + 1000]! ^ 0xff;
      const bad = join(dir, 'tampered.car');
      await writeFile(bad, bytes);
      const err = await importCar(bad, target).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ORACLE_ERR_BLOCK_CORRUPT', cid: victim!.cid.toString() });
      expect((err as Error).message).toMatch(new RegExp(`^CAR ${bad}: block ${victim!.cid} at byte \\d+: Block does not hash to its CID`));
      await expectUntouched();
    });

    it('a CAR cut off in the middle of a block', async () => {
      const bytes = await readFile(car);
      const bad = join(dir, 'truncated.car');
      await writeFile(bad, bytes.subarray(0, bytes.byteLength - 1000));
      const err = await importCar(bad, target).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ORACLE_ERR_INVALID_NETLOCK' });
      expect((err as Error).message).toMatch(/^CAR .*truncated\.car is truncated: its section needs \d+ bytes, only \d+ remain \(at byte \d+\)$/);
      await expectUntouched();
    });

    it('a CAR cut off between blocks (the missing blocks are named by entry)', async () => {
      const { roots, blocks } = await carBlocks(car);
      const bad = join(dir, 'short.car');
      await writeCarWith(bad, roots, blocks.slice(0, -3));
      const err = await importCar(bad, target).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'CarImportError', code: 'ORACLE_ERR_BLOCK_MISSING' });
      expect((err as Error).message).toMatch(/does not verify \(\d+ failure\(s\)\): GET https:\/\/car\.example\/.*ORACLE_ERR_BLOCK_MISSING.*nothing imported$/);
      await expectUntouched();
    });

    it('a CAR whose header names more than one root, or none', async () => {
      const { blocks } = await carBlocks(car);
      const extra = join(dir, 'two-roots.car');
      await writeCarWith(extra, [fixture.root, blocks[5]!.cid], blocks);
      await expect(importCar(extra, target)).rejects.toMatchObject({
        code: 'ORACLE_ERR_INVALID_NETLOCK',
        message: `CAR ${extra} has 2 roots (${fixture.root}, ${blocks[5]!.cid}); expected exactly one, the netlock root`,
      });
      const none = join(dir, 'no-roots.car');
      await writeCarWith(none, [], blocks);
      await expect(importCar(none, target)).rejects.toMatchObject({ code: 'ORACLE_ERR_INVALID_NETLOCK', message: expect.stringContaining('has 0 roots (none)') as unknown });
      await expectUntouched();
    });

    it('a CAR whose root is not a netlock', async () => {
      const { blocks } = await carBlocks(car);
      const body = fixture.bodies.get('https://car.example/big.bin')!;
      const bad = join(dir, 'body-root.car');
      await writeCarWith(bad, [body], blocks);
      await expect(importCar(bad, target)).rejects.toMatchObject({ code: 'ORACLE_ERR_INVALID_NETLOCK', message: expect.stringContaining(`its root ${body} is not a netlock root`) as unknown });
      await expectUntouched();
    });

    it('a file that is not a CAR, and a missing file', async () => {
      const bad = join(dir, 'not-a-car.car');
      await writeFile(bad, 'hello, this is text\n');
      await expect(importCar(bad, target)).rejects.toMatchObject({ code: 'ORACLE_ERR_INVALID_NETLOCK', message: expect.stringMatching(/not a CAR|header/) as unknown });
      await expect(importCar(join(dir, 'nope.car'), target)).rejects.toMatchObject({ code: 'ORACLE_ERR_INVALID_NETLOCK', message: expect.stringContaining('Cannot read CAR') as unknown });
      await expectUntouched();
    });

    it('records signed by a key that is not trusted, or with a bad signature', async () => {
      await expect(importCar(car, target, { trusted: [new Uint8Array(32).fill(1)] })).rejects.toMatchObject({ name: 'CarImportError', code: 'ORACLE_ERR_UNTRUSTED_KEY' });
      // A netlock whose entry carries another record's signature.
      const store = new MemoryBlockStore();
      const forged = await buildFixtureNetlock([{ url: 'https://forged.example/a', bodyBytes: 10 }, { url: 'https://forged.example/b', bodyBytes: 10 }], store);
      const [a, b] = forged.entries;
      const swapped = [{ ...a!, signed: { record: a!.signed.record, signature: b!.signed.signature } }, b!];
      const file = await buildNetlockFile(swapped, store);
      const bad = join(dir, 'forged.car');
      await exportCar(CID.parse(file.netlock), store, bad);
      const err = await importCar(bad, target).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'CarImportError', code: 'ORACLE_ERR_BAD_SIGNATURE' });
      expect((err as { report: { failures: Array<{ entry: string }> } }).report.failures.map((f) => f.entry)).toEqual(['GET https://forged.example/a']);
      await expectUntouched();
    });

    it('an already-aborted signal', async () => {
      await expect(importCar(car, target, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ORACLE_ERR_ABORTED' });
      await expect(exportCar(fixture.root, source, join(dir, 'aborted.car'), { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ORACLE_ERR_ABORTED' });
      await expectUntouched();
    });
  });

  it('skips blocks of the CAR that the netlock does not reach', async () => {
    const { roots, blocks } = await carBlocks(car);
    const strayBytes = new TextEncoder().encode('a block nothing links to');
    const stray = { cid: CID.createV1(RAW_CODE, await sha256.digest(strayBytes)), bytes: strayBytes };
    const withStray = join(dir, 'stray.car');
    await writeCarWith(withStray, roots, [...blocks, stray]);
    const dataDir = await mkdtemp(join(tmpdir(), 'fo-car-stray-'));
    try {
      const target = new FsBlockStore(dataDir);
      const result = await importCar(withStray, target);
      expect(result).toMatchObject({ blocks: blocks.length, unreferenced: 1 });
      expect(await target.has(stray.cid)).toBe(false);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('fails an export whose store lacks a body block, naming the entry, and leaves no file', async () => {
    const partial = new MemoryBlockStore();
    const bodyCid = fixture.bodies.get('https://car.example/big.bin')!;
    const leaf = dagPb.decode(await source.get(bodyCid)).Links[1]!.Hash;
    for (const c of source.cids()) if (c !== leaf.toString()) await partial.put(CID.parse(c), await source.get(CID.parse(c)));
    const out = join(dir, 'partial.car');
    await expect(exportCar(fixture.root, partial, out)).rejects.toMatchObject({
      code: 'ORACLE_ERR_BLOCK_MISSING',
      message: `Cannot export GET https://car.example/big.bin: Block not found: ${leaf}`,
    });
    await expect(stat(out)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await readdir(dir)).filter((f) => f.startsWith('partial.car'))).toEqual([]);
  });

  it('fetch-oracle export / import: CAR file, summary, netlock.json equal to the recorded one', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'fo-car-cli-'));
    const importDir = await mkdtemp(join(tmpdir(), 'fo-car-cli-in-'));
    try {
      const built = await buildFixtureNetlock(fixtureResponses('cli'), new FsBlockStore(dataDir));
      const netlockJson = join(dataDir, 'netlock.json');
      await writeFile(netlockJson, renderNetlockFile(built.file));
      const out = new Collect();
      const err = new Collect();
      const outCar = join(dataDir, 'cli.car');
      expect(await runExport(['--car', outCar, netlockJson, '--data', dataDir], { stdout: out, stderr: err })).toBe(0);
      expect(out.text()).toMatch(new RegExp(`^wrote ${outCar}: netlock ${built.root} \\(306 entries, \\d+ blocks, \\d+ bytes\\) from embedded store `));

      const importOut = new Collect();
      const writtenJson = join(importDir, 'imported.json');
      expect(await runImport([outCar, '--data', importDir, '--netlock', writtenJson], { stdout: importOut, stderr: err })).toBe(0);
      expect(importOut.text()).toContain(`netlock ${built.root}\n  entries: 306\n`);
      expect(importOut.text()).toContain('OK: every block, signature and body verified');
      expect(await readFile(writtenJson, 'utf8')).toBe(renderNetlockFile(built.file));
      expect(err.text()).toBe('');

      // The root CID alone names the netlock too; a bad CAR exits 1 with the reason.
      expect(await runExport(['--car', join(dataDir, 'again.car'), built.root.toString(), '--data', dataDir], { stdout: out, stderr: err })).toBe(0);
      const truncated = join(dataDir, 'cut.car');
      await writeFile(truncated, (await readFile(outCar)).subarray(0, 5000));
      const badErr = new Collect();
      expect(await runImport([truncated, '--data', importDir], { stdout: out, stderr: badErr })).toBe(1);
      expect(badErr.text()).toMatch(/^fetch-oracle import: ORACLE_ERR_INVALID_NETLOCK: CAR .*cut\.car is truncated/);

      const usage = new Collect();
      expect(await runExport([netlockJson, '--data', dataDir], { stdout: out, stderr: usage })).toBe(2);
      expect(usage.text()).toContain('export needs --car OUT.car');
      expect(await runImport(['--bogus'], { stdout: out, stderr: usage })).toBe(2);
      const help = new Collect();
      expect(await runImport(['--help'], { stdout: help, stderr: usage })).toBe(0);
      expect(help.text()).toMatch(/^Usage: fetch-oracle import IN\.car/);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
      await rm(importDir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('CAR interop with Kubo', () => {
  kuboRequiredInCi('the CAR interop tests');

  describe.skipIf(!KUBO_AVAILABLE)('against a running daemon', () => {
    let kubo: KuboDaemon;
    let store: KuboBlockStore;
    let dir: string;
    let source: MemoryBlockStore;
    let fixture: FixtureNetlock;
    let car: string;
    // Unique bodies per run, so that "nothing was imported into Kubo" is observable on a shared daemon.
    const tag = `kubo${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

    beforeAll(async () => {
      kubo = await anyKubo();
      store = new KuboBlockStore({ url: kubo.api });
      dir = await mkdtemp(join(tmpdir(), 'fo-car-kubo-'));
      source = new MemoryBlockStore();
      fixture = await buildFixtureNetlock(fixtureResponses(tag), source);
      car = join(dir, 'ours.car');
      await exportCar(fixture.root, source, car);
    }, 600_000);

    afterAll(async () => {
      await store?.close();
      await kubo?.dispose();
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    }, 60_000);

    it('refuses a tampered CAR without writing a single block into Kubo', async () => {
      const bytes = Buffer.from(await readFile(car));
      const indexer = await CarIndexer.fromBytes(bytes);
      let last: { blockOffset: number; blockLength: number } | undefined;
      for await (const b of indexer) last = b;
      bytes[last!.blockOffset + last!.blockLength - 1] = bytes[last!.blockOffset + last!.blockLength - 1]! ^ 0x01;
      const bad = join(dir, 'tampered.car');
      await writeFile(bad, bytes);
      await expect(importCar(bad, store)).rejects.toMatchObject({ code: 'ORACLE_ERR_BLOCK_CORRUPT' });
      for (const c of source.cids()) expect(await store.has(CID.parse(c))).toBe(false);
    });

    it("Kubo's `dag import` reads our CAR, pins its root, and then serves every block of the netlock", async () => {
      const form = new FormData();
      form.append('file', new Blob([await readFile(car)]), 'ours.car');
      const res = await kuboRpc(kubo.api, 'dag/import?pin-roots=true&stats=true', { body: form });
      const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as { Root?: { Cid: { '/': string }; PinErrorMsg: string }; Stats?: { BlockCount: number } });
      expect(lines.find((l) => l.Root !== undefined)?.Root).toEqual({ Cid: { '/': fixture.root.toString() }, PinErrorMsg: '' });
      expect(lines.find((l) => l.Stats !== undefined)?.Stats?.BlockCount).toBe(source.size);
      expect(await store.pinned(fixture.root)).toBe('recursive');
      for (const c of source.cids()) {
        const cid = CID.parse(c);
        expect(Buffer.from(await store.get(cid)).equals(Buffer.from(await source.get(cid)))).toBe(true);
      }
      // `verify` against Kubo alone.
      const report = await verifyNetlock(fixture.root, store, [fixture.signer.publicKey]);
      expect(report).toMatchObject({ entries: 306, failures: [] });
      // Our export from Kubo is byte-identical to our export from the embedded blocks.
      const again = join(dir, 'from-kubo.car');
      await exportCar(fixture.root, store, again);
      expect((await readFile(again)).equals(await readFile(car))).toBe(true);
    });

    it("importCar reads what Kubo's `dag export` writes", async () => {
      const res = await kuboRpc(kubo.api, `dag/export?arg=${fixture.root}`);
      const kuboCar = join(dir, 'kubo-export.car');
      await writeFile(kuboCar, Buffer.from(await res.arrayBuffer()));
      const { roots, blocks } = await carBlocks(kuboCar);
      expect(roots.map(String)).toEqual([fixture.root.toString()]);
      expect(blocks.map((b) => b.cid.toString()).sort()).toEqual(source.cids().sort());
      const dataDir = await mkdtemp(join(tmpdir(), 'fo-car-from-kubo-'));
      try {
        const target = new FsBlockStore(dataDir);
        const result = await importCar(kuboCar, target, { trusted: [fixture.signer.publicKey] });
        expect(result).toMatchObject({ blocks: source.size, unreferenced: 0, report: { entries: 306, failures: [] } });
        expect(await countBlocks(dataDir)).toBe(source.size);
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    });

    it('importCar into Kubo (and into Kubo with the embedded cache) stores and pins the netlock', async () => {
      const store2 = new MemoryBlockStore();
      const other = await buildFixtureNetlock(fixtureResponses(`${tag}-in`), store2);
      const otherCar = join(dir, 'other.car');
      await exportCar(other.root, store2, otherCar);
      const result = await importCar(otherCar, store);
      expect(result.report.failures).toEqual([]);
      expect(await store.pinned(other.root)).toBe('recursive');
      expect((await verifyNetlock(other.root, store, undefined)).failures).toEqual([]);

      const cacheDir = await mkdtemp(join(tmpdir(), 'fo-car-tiered-'));
      try {
        const tiered = new TieredBlockStore({ primary: new KuboBlockStore({ url: kubo.api }), cache: new FsBlockStore(cacheDir), cacheOnWrite: 'all' });
        await importCar(otherCar, tiered);
        expect(await countBlocks(cacheDir)).toBe(store2.size);
        expect(await readdir(cacheDir)).toEqual(['blocks']);
        await tiered.close();
        // The default cache takes the netlock's linking blocks on import, its leaves when first read.
        const lazyDir = await mkdtemp(join(tmpdir(), 'fo-car-lazy-'));
        try {
          const lazy = new TieredBlockStore({ primary: new KuboBlockStore({ url: kubo.api }), cache: new FsBlockStore(lazyDir) });
          await importCar(otherCar, lazy);
          const linking = store2.cids().filter((c) => CID.parse(c).code !== RAW_CODE);
          expect(await countBlocks(lazyDir)).toBe(linking.length);
          expect((await verifyNetlock(other.root, lazy, undefined)).failures).toEqual([]);
          expect(await countBlocks(lazyDir)).toBe(store2.size);
          await lazy.close();
        } finally {
          await rm(lazyDir, { recursive: true, force: true });
        }
      } finally {
        await rm(cacheDir, { recursive: true, force: true });
      }
    });

    // Needs the daemon's repo files: runs with a daemon of its own, not one from FETCH_ORACLE_KUBO_API.
    it.skipIf(API_FROM_ENV !== undefined)('verify against Kubo names the entry whose body block Kubo serves corrupted', async () => {
      const store4 = new MemoryBlockStore();
      const rotten = await buildFixtureNetlock([{ url: `https://${tag}.rotten/a.bin`, bodyBytes: MiB + 9 }, { url: `https://${tag}.rotten/b`, bodyBytes: 10 }], store4);
      for (const c of store4.cids()) await store.put(CID.parse(c), await store4.get(CID.parse(c)));
      await store.flush();
      const body = rotten.bodies.get(`https://${tag}.rotten/a.bin`)!;
      const leaf = dagPb.decode(await store.get(body)).Links[1]!.Hash;
      // Kubo's flatfs keeps a block at blocks/<next-to-last 2 chars>/<BASE32 multihash>.data and does not
      // re-hash on read (Datastore.HashOnRead is off), so it serves the flipped byte as it is.
      const key = base32.baseEncode(leaf.multihash.bytes).toUpperCase();
      const file = join(kubo.dir!, 'blocks', key.slice(-3, -1), `${key}.data`);
      const bytes = Buffer.from(await readFile(file));
      bytes[3] = bytes[3]! ^ 0xff;
      await writeFile(file, bytes);
      const report = await verifyNetlock(rotten.root, store, undefined);
      expect(report.failures).toEqual([{ entry: `GET https://${tag}.rotten/a.bin`, code: 'ORACLE_ERR_BLOCK_CORRUPT', message: `Block does not hash to its CID: ${leaf}` }]);
    });

    it('verify against Kubo names the entry whose body block Kubo lost', async () => {
      const store3 = new MemoryBlockStore();
      const lossy = await buildFixtureNetlock([{ url: `https://${tag}.lossy/a.bin`, bodyBytes: MiB + 5 }, { url: `https://${tag}.lossy/b`, bodyBytes: 10 }], store3);
      for (const c of store3.cids()) await store.put(CID.parse(c), await store3.get(CID.parse(c)));
      const body = lossy.bodies.get(`https://${tag}.lossy/a.bin`)!;
      const leaf = dagPb.decode(await store.get(body)).Links[0]!.Hash;
      await (await kuboRpc(kubo.api, `block/rm?arg=${leaf}`)).text();
      const report = await verifyNetlock(lossy.root, store, undefined);
      expect(report.failures).toEqual([{ entry: `GET https://${tag}.lossy/a.bin`, code: 'ORACLE_ERR_BLOCK_MISSING', message: `Block ${leaf} is not in Kubo at ${store.url}` }]);
    });
  });
});
