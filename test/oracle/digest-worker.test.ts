import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { CID } from 'multiformats/cid';
import { StoreError } from '../../src/errors.ts';
import { DigestWorker, importThroughWorkers, MAX_LEAVES_IN_FLIGHT } from '../../src/oracle/digest-worker.ts';
import { CHUNK_BYTES, importBody } from '../../src/protocol/unixfs.ts';
import { MemoryBlockStore } from '../../src/store/memory-block-store.ts';
import { pseudoRandomBytes } from '../records/netlock-fixture.ts';

const MiB = 1024 * 1024;

async function* pieces(seed: string, length: number): AsyncGenerator<Uint8Array> {
  yield* pseudoRandomBytes(seed, length);
}

async function bytesOf(seed: string, length: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of pieces(seed, length)) parts.push(Buffer.from(p));
  return Buffer.concat(parts);
}

describe('DigestWorker: leaves and whole-body digests on two worker threads', () => {
  const workers = new DigestWorker();
  afterAll(() => workers.close());

  // Sizes around every boundary: empty, one byte, exactly one leaf, one leaf and a byte, and more leaves than
  // may be in flight at once (the producer must wait for the store and the workers).
  for (const size of [0, 1, CHUNK_BYTES, CHUNK_BYTES + 1, (MAX_LEAVES_IN_FLIGHT + 3) * CHUNK_BYTES + 7]) {
    it(`imports ${size} bytes to the CIDs importBody gives, with the digests node:crypto gives`, async () => {
      const ours = new MemoryBlockStore();
      const job = workers.begin({ leaves: true });
      const imported = await importThroughWorkers(pieces(`body ${size}`, size), job, ours);
      const digests = await job.digest();
      const reference = new MemoryBlockStore();
      const expected = await importBody(pieces(`body ${size}`, size), reference);
      expect(imported).toEqual({ cid: expected.cid, size });
      expect(ours.cids().sort()).toEqual(reference.cids().sort());
      const body = await bytesOf(`body ${size}`, size);
      expect(Buffer.from(digests.sha256).toString('hex')).toBe(createHash('sha256').update(body).digest('hex'));
      expect(Buffer.from(digests.sha512).toString('hex')).toBe(createHash('sha512').update(body).digest('hex'));
    });
  }

  it('gives the same CIDs and digests whatever the size hint says (right, short, long, absent)', async () => {
    const size = 2 * CHUNK_BYTES + 12345;
    const expected = await importBody(pieces('hinted', size), new MemoryBlockStore());
    for (const sizeHint of [size, 10, 5 * CHUNK_BYTES, 0, undefined]) {
      const job = workers.begin({ leaves: true, ...(sizeHint === undefined ? {} : { sizeHint }) });
      const got = await importThroughWorkers(pieces('hinted', size), job, new MemoryBlockStore());
      expect(got.cid.toString(), `hint ${sizeHint}`).toBe(expected.cid.toString());
      expect(Buffer.from((await job.digest()).sha256).toString('hex')).toBe(createHash('sha256').update(await bytesOf('hinted', size)).digest('hex'));
    }
  });

  it('keeps concurrent jobs apart', async () => {
    const [a, b] = await Promise.all(
      ['one', 'two'].map(async (seed) => {
        const job = workers.begin({ leaves: true });
        const store = new MemoryBlockStore();
        await importThroughWorkers(pieces(seed, 5 * MiB + 3), job, store);
        return Buffer.from((await job.digest()).sha512).toString('hex');
      }),
    );
    expect(a).toBe(createHash('sha512').update(await bytesOf('one', 5 * MiB + 3)).digest('hex'));
    expect(b).toBe(createHash('sha512').update(await bytesOf('two', 5 * MiB + 3)).digest('hex'));
  });

  it('digests a body without importing it', async () => {
    const job = workers.begin();
    for await (const p of pieces('plain', 3 * MiB + 1)) await job.update(p);
    expect(Buffer.from((await job.digest()).sha256).toString('hex')).toBe(createHash('sha256').update(await bytesOf('plain', 3 * MiB + 1)).digest('hex'));
  });

  it('fails with the store error when a leaf write fails, and writes no root', async () => {
    const store = new MemoryBlockStore();
    let writes = 0;
    const failing = {
      put: async (cid: CID, bytes: Uint8Array) => {
        if (++writes === 3) throw new StoreError('disk full (simulated)');
        await store.put(cid, bytes);
      },
    };
    const job = workers.begin({ leaves: true });
    await expect(importThroughWorkers(pieces('failing store', 40 * MiB), job, failing)).rejects.toThrow('disk full (simulated)');
    expect(store.cids().every((c) => c.startsWith('bafkrei'))).toBe(true);
    await expect(job.digest()).rejects.toThrow(/abandoned/);
  });

  it('fails with the source error when the body breaks off, and the workers serve the next job', async () => {
    const broken = async function* (): AsyncGenerator<Uint8Array> {
      yield* pseudoRandomBytes('broken', 3 * MiB);
      throw new Error('upstream reset (simulated)');
    };
    const store = new MemoryBlockStore();
    await expect(importThroughWorkers(broken(), workers.begin({ leaves: true }), store)).rejects.toThrow('upstream reset (simulated)');
    expect(store.cids().every((c) => c.startsWith('bafkrei'))).toBe(true);
    const job = workers.begin({ leaves: true });
    const next = await importThroughWorkers(pieces('after', 2 * MiB), job, new MemoryBlockStore());
    expect(next.cid.toString()).toBe((await importBody(pieces('after', 2 * MiB), new MemoryBlockStore())).cid.toString());
  });
});

describe('DigestWorker.sha256: verifying reads', () => {
  const workers = new DigestWorker();
  afterAll(() => workers.close());

  it('hashes small blocks here and big ones on a worker, to the same digests, leaving the caller its bytes', async () => {
    for (const size of [0, 1000, 256 * 1024, MiB + 5]) {
      const bytes = await bytesOf(`hash ${size}`, size);
      const digests = await Promise.all([workers.sha256(bytes), workers.sha256(bytes)]);
      for (const d of digests) expect(Buffer.from(d).toString('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
      expect(bytes.byteLength).toBe(size); // still usable: posted as a copy, not transferred
    }
  });
});
