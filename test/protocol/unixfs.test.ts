import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { importer } from 'ipfs-unixfs-importer';
import { fixedSize } from 'ipfs-unixfs-importer/chunker';
import { balanced } from 'ipfs-unixfs-importer/layout';
import type { CID } from 'multiformats/cid';
import { rawBodySha256, verifyingSource } from '../../src/protocol/blocks.ts';
import type { BlockSink } from '../../src/protocol/blocks.ts';
import { BodyImporter, CHUNK_BYTES, importBody, readBody } from '../../src/protocol/unixfs.ts';
import { MemoryBlockStore } from '../../src/store/memory-block-store.ts';
import { importerOptions } from './importer-options.ts';

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

describe('importBody', () => {
  it('gives the unixfs-v1-2025 CIDs recorded in environment.md', async () => {
    const store = new MemoryBlockStore();
    const cid = async (s: string): Promise<string> => (await importBody([Buffer.from(s)], store)).cid.toString();
    expect(await cid('0123456789')).toBe('bafkreiee3cmhp4guaqppw27zdilpajepf7kxhzvpaxaz7fv63opyql3yqi');
    expect(await cid('hello world\n')).toBe('bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4');
    expect(await cid('')).toBe('bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku');
  });

  it('keeps a body of exactly 1 MiB as one raw block and splits 1 MiB + 1 into a dag-pb root', async () => {
    const store = new MemoryBlockStore();
    const one = await importBody([randomBytes(CHUNK_BYTES)], store);
    expect(one.cid.code).toBe(0x55);
    const two = await importBody([randomBytes(CHUNK_BYTES + 1)], store);
    expect(two.cid.code).toBe(0x70);
    expect(two.size).toBe(CHUNK_BYTES + 1);
  });
});

describe('rawBodySha256', () => {
  it('is the SHA-256 of a body of one raw leaf, read off its CID, and nothing for a body of many leaves or none', async () => {
    for (const size of [0, 1, 4096, CHUNK_BYTES]) {
      const body = randomBytes(size);
      const { cid } = await importBody([body], new MemoryBlockStore());
      expect(Buffer.from(rawBodySha256(cid)!).toString('hex'), `${size} bytes`).toBe(createHash('sha256').update(body).digest('hex'));
    }
    const { cid } = await importBody([randomBytes(CHUNK_BYTES + 1)], new MemoryBlockStore());
    expect(cid.code).not.toBe(0x55);
    expect(rawBodySha256(cid)).toBeUndefined();
    expect(rawBodySha256(null)).toBeUndefined();
  });
});

describe('BodyImporter', () => {
  it('gives the DAG importBody gives for bytes pushed as they come, empty pieces included', async () => {
    const shape = { chunkBytes: 16, maxLinks: 3 };
    for (const size of [0, 1, 15, 16, 17, 48, 145, 433]) {
      const data = randomBytes(size);
      const expected = await importBody([data], new MemoryBlockStore(), { shape });
      const store = new MemoryBlockStore();
      const importer = new BodyImporter(store, { shape });
      for (let i = 0; i < size; i += 5) {
        await importer.write(data.subarray(i, i + 5));
        await importer.write(new Uint8Array(0));
      }
      const got = await importer.end();
      expect(got.cid.toString(), `${size} bytes`).toBe(expected.cid.toString());
      expect(got.size).toBe(size);
      expect((await collect(readBody(got.cid, verifyingSource(store)))).equals(data), `${size} bytes`).toBe(true);
    }
  });
});

describe('BodyImporter sized by a declared length', () => {
  it('gives the same DAG whether the declared size is right, short, long, zero or absent', async () => {
    const shape = { chunkBytes: 16, maxLinks: 3 };
    for (const size of [0, 1, 15, 16, 17, 145]) {
      const data = randomBytes(size);
      const expected = await importBody([data], new MemoryBlockStore(), { shape });
      for (const sizeHint of [size, Math.max(0, size - 3), size + 9, 0, 1000, undefined]) {
        const store = new MemoryBlockStore();
        const importer = new BodyImporter(store, sizeHint === undefined ? { shape } : { shape, sizeHint });
        for (let i = 0; i < size; i += 4) await importer.write(data.subarray(i, i + 4));
        const got = await importer.end();
        expect(got.cid.toString(), `${size} bytes, hint ${sizeHint}`).toBe(expected.cid.toString());
        expect((await collect(readBody(got.cid, verifyingSource(store)))).equals(data), `${size} bytes, hint ${sizeHint}`).toBe(true);
      }
    }
  });

  it('fills one chunk of the declared size for a body that fits one, with no chunk grown on the way', async () => {
    const data = randomBytes(100 * 1024);
    const puts: Uint8Array[] = [];
    const store = new MemoryBlockStore();
    const sink: BlockSink = { put: async (cid, bytes) => void (puts.push(bytes), await store.put(cid, bytes)) };
    const importer = new BodyImporter(sink, { sizeHint: data.byteLength });
    for (let i = 0; i < data.byteLength; i += 65536) await importer.write(data.subarray(i, i + 65536));
    const { cid } = await importer.end();
    expect(puts).toHaveLength(1);
    expect(puts[0]!.buffer.byteLength).toBe(data.byteLength); // its own memory is the body's size, not a doubling of 16 KiB
    expect(Buffer.from(rawBodySha256(cid)!).toString('hex')).toBe(createHash('sha256').update(data).digest('hex'));
  });
});

describe('importBody reusing leaf memory', () => {
  /** A sink that copies what it is given (keeping no bytes) and notes each put's memory. */
  function copyingSink(putKeepsNoBytes: boolean): { sink: BlockSink; store: MemoryBlockStore; memory: Uint8Array[] } {
    const store = new MemoryBlockStore();
    const memory: Uint8Array[] = [];
    const sink: BlockSink = {
      putKeepsNoBytes,
      put: async (cid, bytes) => {
        memory.push(bytes);
        await store.put(cid, Uint8Array.from(bytes));
      },
    };
    return { sink, store, memory };
  }

  it('fills the memory of stored leaves again when the sink keeps no bytes, and gets the same DAG', async () => {
    const body = randomBytes(20 * CHUNK_BYTES + 5);
    // In 64 KiB pieces, as a socket delivers them.
    const pieces = Array.from({ length: Math.ceil(body.byteLength / 65536) }, (_, i) => body.subarray(i * 65536, (i + 1) * 65536));
    const reusing = copyingSink(true);
    const fresh = copyingSink(false);
    const a = await importBody(pieces, reusing.sink);
    const b = await importBody(pieces, fresh.sink);
    expect(a.cid.equals(b.cid)).toBe(true);
    expect((await collect(readBody(a.cid, verifyingSource(reusing.store)))).equals(body)).toBe(true);
    const leafMemory = (m: Uint8Array[]): Set<ArrayBufferLike> => new Set(m.filter((x) => x.byteLength === CHUNK_BYTES).map((x) => x.buffer));
    // 20 whole leaves: fresh memory for each without the promise, a few buffers taking turns with it.
    expect(leafMemory(fresh.memory).size).toBe(20);
    expect(leafMemory(reusing.memory).size).toBeLessThan(20);
  });
});

describe('importBody and buildFileDag against ipfs-unixfs-importer', () => {
  // Narrow shapes give trees up to five levels deep from a few KiB, so every remainder case of the balanced
  // layout (a full level, one leftover leaf, a leftover subtree) is compared with the library's.
  const cases: [chunkBytes: number, maxLinks: number, sizes: number[]][] = [
    [16, 3, [0, 1, 15, 16, 17, 47, 48, 49, 143, 144, 145, 432, 433, 1296, 1297, 3000]],
    [7, 2, [0, 6, 7, 8, 14, 15, 28, 29, 56, 57, 112, 113, 500]],
    [64, 1024, [0, 64, 65, 64 * 1024, 64 * 1024 + 1, 64 * 1025 + 3]],
  ];
  for (const [chunkBytes, maxLinks, sizes] of cases) {
    it(`gives the library's root CID and blocks for ${chunkBytes}-byte chunks, ${maxLinks} links per node`, async () => {
      for (const size of sizes) {
        const data = randomBytes(size);
        const reference = new MemoryBlockStore();
        const blockstore = { put: async (c: CID, b: Uint8Array) => (await reference.put(c, b), c) };
        let expected: CID | undefined;
        for await (const e of importer([{ content: [data] }], blockstore, importerOptions({ chunkBytes, maxLinks }))) expected = e.cid;
        const ours = new MemoryBlockStore();
        // Uneven pieces: chunk boundaries must not depend on how the stream arrives.
        const pieces = [data.subarray(0, size / 3), data.subarray(size / 3, size / 2), data.subarray(size / 2)];
        const got = await importBody(pieces, ours, { shape: { chunkBytes, maxLinks } });
        expect(got.cid.toString(), `${size} bytes`).toBe(expected!.toString());
        expect(got.size).toBe(size);
        expect(ours.cids().sort(), `${size} bytes`).toEqual(reference.cids().sort());
      }
    });
  }
});

describe('importBody with overlapping leaf writes', () => {
  it('fails with the first failed write, in order, and stores no root', async () => {
    const store = new MemoryBlockStore();
    let writes = 0;
    const sink = {
      put: async (c: CID, b: Uint8Array) => {
        writes++;
        // The third leaf fails late, after later leaves were written: the error must still surface.
        if (writes === 3) {
          await new Promise((r) => setTimeout(r, 20));
          throw new Error('disk full (simulated)');
        }
        await store.put(c, b);
      },
    };
    await expect(importBody([randomBytes(16 * 40)], sink, { shape: { chunkBytes: 16, maxLinks: 3 } })).rejects.toThrow('disk full (simulated)');
    expect(store.cids().every((c) => c.startsWith('bafkrei'))).toBe(true);
  });

  it('stops on an aborted signal, before or during the stream', async () => {
    const store = new MemoryBlockStore();
    await expect(importBody([Buffer.from('x')], store, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ORACLE_ERR_ABORTED' });
    const abort = new AbortController();
    // eslint-disable-next-line @typescript-eslint/require-await -- an AsyncIterable body source with nothing to await
    const source = async function* (): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 100; i++) {
        if (i === 50) abort.abort();
        yield randomBytes(16);
      }
    };
    await expect(importBody(source(), store, { signal: abort.signal, shape: { chunkBytes: 16, maxLinks: 3 } })).rejects.toMatchObject({ code: 'ORACLE_ERR_ABORTED' });
  });
});

describe('readBody', () => {
  it('reads whole bodies and every kind of range of a multi-level DAG', async () => {
    // A small-chunked, narrow DAG (16-byte leaves, 3 links per node) has 4 levels for 1000 bytes.
    const store = new MemoryBlockStore();
    const data = randomBytes(1000);
    let root: CID | undefined;
    const blockstore = { put: async (c: CID, b: Uint8Array) => (await store.put(c, b), c) };
    for await (const e of importer([{ content: [data] }], blockstore, { cidVersion: 1, rawLeaves: true, chunker: fixedSize({ chunkSize: 16 }), layout: balanced({ maxChildrenPerNode: 3 }) })) root = e.cid;
    const source = verifyingSource(store);
    expect((await collect(readBody(root!, source))).equals(data)).toBe(true);
    for (const [offset, length] of [[0, 1], [15, 2], [16, 16], [999, 1], [123, 456], [0, 1000], [500, 10_000]] as const) {
      const got = await collect(readBody(root!, source, { offset, length }));
      expect(got.equals(data.subarray(offset, offset + length)), `${offset}+${length}`).toBe(true);
    }
    expect((await collect(readBody(root!, source, { offset: 10, length: 0 }))).byteLength).toBe(0);
  });

  it('fails with BLOCK_CORRUPT on a tampered leaf and on a lying blockSizes', async () => {
    const store = new MemoryBlockStore();
    const body = await importBody([randomBytes(CHUNK_BYTES * 2 + 5)], store);
    const leaf = store.cids().find((c) => c.startsWith('bafkrei'))!;
    const tampered = new MemoryBlockStore();
    for (const c of store.cids()) {
      const { CID } = await import('multiformats/cid');
      const bytes = await store.get(CID.parse(c));
      await tampered.put(CID.parse(c), c === leaf ? bytes.slice(1) : bytes);
    }
    await expect(collect(readBody(body.cid, verifyingSource(tampered)))).rejects.toMatchObject({ code: 'ORACLE_ERR_BLOCK_CORRUPT' });
  });

  it('honours an aborted signal', async () => {
    const store = new MemoryBlockStore();
    const body = await importBody([Buffer.from('x')], store);
    await expect(collect(readBody(body.cid, store, { signal: AbortSignal.abort() }))).rejects.toMatchObject({ code: 'ORACLE_ERR_ABORTED' });
  });
});
