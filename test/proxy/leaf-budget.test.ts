/**
 * Issue #15: streamed answers read their leaves ahead, so a replay's memory grew with its number of streams
 * (64 clients of a 10 MiB body: 239–277 MB of RSS). Leaves now hold permits of one budget for the process
 * (`leaf-budget.ts`), given back once the socket sent the leaf or the answer ended. These pin down that
 * permits always come back (a stream must never wait forever), and that streams beyond the budget still get
 * their bytes whole.
 */
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { CID } from 'multiformats/cid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RAW_CODE } from '../../src/protocol/blocks.ts';
import { CHUNK_BYTES } from '../../src/protocol/unixfs.ts';
import { LEAF_BUDGET, LEAVES_HELD_MAX, LeafBudget } from '../../src/proxy/leaf-budget.ts';
import { LeafBuffers } from '../../src/proxy/leaf-buffers.ts';
import type { BlockReader } from '../../src/proxy/leaf-buffers.ts';
import { pseudoRandomChunks, startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { replayOfRecorded } from '../helpers/oracle.ts';
import type { TestOracle } from '../helpers/oracle.ts';
import { tempDir } from '../helpers/run.ts';

const leafCid = (n: number): CID => CID.create(1, RAW_CODE, { code: 0x12, size: 32, digest: new Uint8Array(32).fill(n), bytes: Uint8Array.of(0x12, 32, ...new Uint8Array(32).fill(n)) });

/** A reader whose blocks are `size` bytes of their CID's digest byte, read at once. */
function fakeReader(size = CHUNK_BYTES): BlockReader {
  return {
    readKept: (cid, alloc) => alloc(size).fill(cid.multihash.digest[0]!),
    readBlock: (cid, alloc) => Promise.resolve(alloc(size).fill(cid.multihash.digest[0]!)),
    forget: () => {},
  };
}

const settled = async (p: Promise<unknown>): Promise<boolean> => {
  let done = false;
  void p.then(() => (done = true), () => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
};

describe('LeafBudget and the leaves of one answer', () => {
  it('hands permits out in the order they are asked for', async () => {
    const budget = new LeafBudget(1);
    await budget.acquire();
    const order: number[] = [];
    const second = budget.acquire().then(() => order.push(2));
    const third = budget.acquire().then(() => order.push(3));
    expect(budget.waiting).toBe(2);
    budget.release();
    await second;
    budget.release();
    await third;
    expect(order).toEqual([2, 3]);
    budget.release();
    expect(budget.free).toBe(1);
  });

  it('makes a leaf wait once the budget is held, and gives its permit back when the socket sent the leaf', async () => {
    const budget = new LeafBudget(2);
    const a = new LeafBuffers(budget);
    const b = new LeafBuffers(budget);
    const first = await a.sourceOver(fakeReader()).get(leafCid(1));
    await b.sourceOver(fakeReader()).get(leafCid(2));
    expect(budget.free).toBe(0);
    const third = b.sourceOver(fakeReader()).get(leafCid(3));
    expect(await settled(third)).toBe(false);
    a.give(first);
    expect((await third)[0]).toBe(3);
    expect(budget.free).toBe(0);
    a.close();
    b.close();
    expect(budget.free).toBe(2);
  });

  it('gives back the permit of a leaf sent only in part (a range), and every permit when the answer ends', async () => {
    const budget = new LeafBudget(3);
    const buffers = new LeafBuffers(budget);
    const source = buffers.sourceOver(fakeReader(1000));
    const [x, y] = [await source.get(leafCid(4)), await source.get(leafCid(5))];
    buffers.give(x.subarray(10, 20));
    expect(budget.free).toBe(2);
    void y; // read ahead, never sent: its permit comes back with the answer's end
    buffers.close();
    buffers.close(); // once
    expect(budget.free).toBe(3);
    await expect(source.get(leafCid(6))).rejects.toThrow(/ended/);
    expect(budget.free).toBe(3);
  });

  it('gives the permit back when a leaf cannot be read, or the answer ended while it waited', async () => {
    const budget = new LeafBudget(1);
    const failing: BlockReader = { readKept: () => undefined, readBlock: () => Promise.reject(new Error('disk gone')), forget: () => {} };
    await expect(new LeafBuffers(budget).sourceOver(failing).get(leafCid(7))).rejects.toThrow(/disk gone/);
    expect(budget.free).toBe(1);
    const holder = new LeafBuffers(budget);
    await holder.sourceOver(fakeReader()).get(leafCid(8));
    const waiter = new LeafBuffers(budget);
    const waiting = waiter.sourceOver(fakeReader()).get(leafCid(9));
    waiter.close();
    holder.close();
    await expect(waiting).rejects.toThrow(/ended/);
    expect(budget.free).toBe(1);
    // The answer ends while its leaf is being read: the leaf is dropped, its permit comes back.
    let finish!: () => void;
    const slow: BlockReader = { readKept: () => undefined, readBlock: (_cid, alloc) => new Promise((r) => (finish = () => r(alloc(10).fill(1)))), forget: () => {} };
    const reading = new LeafBuffers(budget);
    const read = reading.sourceOver(slow).get(leafCid(10));
    await new Promise((r) => setImmediate(r));
    expect(budget.free).toBe(0);
    reading.close();
    finish();
    await read;
    expect(budget.free).toBe(1);
  });
});

describe('streamed answers beyond the leaf budget', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  let replay: TestOracle;
  const body = Buffer.concat([...pseudoRandomChunks(3 * CHUNK_BYTES + 4321, 31)]);

  beforeAll(async () => {
    dir = await tempDir('fo-leaf-budget-');
    const data = join(dir.path, 'data');
    const netlockPath = join(dir.path, 'netlock.json');
    origin = await startOrigin();
    origin.route('*', (_q, r) => {
      r.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.byteLength) });
      r.end(body);
    });
    replay = await replayOfRecorded(origin, ['/big'], { dataDir: data, netlockPath });
  });

  afterAll(async () => {
    await replay?.close();
    await dir?.remove();
  });

  const budgetBackInFull = async (): Promise<void> => {
    for (let i = 0; i < 100 && LEAF_BUDGET.free !== LEAVES_HELD_MAX; i++) await new Promise((r) => setTimeout(r, 20));
    expect(LEAF_BUDGET.free).toBe(LEAVES_HELD_MAX);
  };

  it('sends every stream whole when more stream at once than the budget has leaves for, then has them all back', async () => {
    const streams = LEAVES_HELD_MAX; // each reads ahead up to three leaves: three times what the budget holds
    const got = await Promise.all(Array.from({ length: streams }, () => replay.fetch(`${origin.url}/big`)));
    for (const r of got) {
      expect(r.status).toBe(200);
      expect(r.body.equals(body)).toBe(true);
    }
    await budgetBackInFull();
  });

  it('has every permit back after clients leave in the middle of their bodies', async () => {
    const port = replay.oracle.proxyAddress().port;
    await Promise.all(
      Array.from({ length: 12 }, () =>
        new Promise<void>((resolve) => {
          const s = createConnection(port, '127.0.0.1', () => s.write(`GET ${origin.url}/big HTTP/1.1\r\nHost: ${origin.url.slice(7)}\r\n\r\n`));
          let seen = 0;
          s.on('data', (c: Buffer) => {
            seen += c.byteLength;
            if (seen > CHUNK_BYTES) s.destroy();
          });
          s.on('close', () => resolve());
          s.on('error', () => {});
        }),
      ),
    );
    await budgetBackInFull();
    const r = await replay.fetch(`${origin.url}/big`);
    expect(r.body.equals(body)).toBe(true);
  });
});
