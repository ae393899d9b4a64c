import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { DeviceBlockSource } from '../../guest/device-block-source.ts';
import { BlockMissingError, DeviceError } from '../../src/errors.ts';
import { startGioSimulator } from '../../src/machine/sim/gio-simulator.ts';
import type { GioSimulator } from '../../src/machine/sim/gio-simulator.ts';
import { mapSource, verifyingSource } from '../../src/protocol/blocks.ts';
import { importBody, readBody } from '../../src/protocol/unixfs.ts';
import { MemoryBlockStore } from '../../src/store/memory-block-store.ts';
import { ensureHostSimHelper, HelperProcess } from './cmio-helper-process.ts';

const MiB = 1024 * 1024;
const EMPTY_RAW_BLOCK = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku';
// Helper statuses (guest/cmio/cmio-helper.c HELPER_STATUS_*).
const STATUS = { OK: 0, BAD_REQUEST: 1, DEVICE: 2, YIELD_FAILED: 3, REPLY_TOO_LARGE: 4, EMPTY_REPLY: 5, HOST_ERROR: 6, NO_RESPONSE: 7 } as const;

let helperPath: string;
let dir: string;
let n = 0;

beforeAll(async () => {
  helperPath = await ensureHostSimHelper();
  dir = await mkdtemp(join(tmpdir(), 'cmio-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function rawCid(bytes: Uint8Array): Promise<CID> {
  return CID.createV1(0x55, await sha256.digest(bytes));
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

/** A simulator over `store` plus a helper connected to it, both torn down after the test. */
async function rig(store: MemoryBlockStore): Promise<{ sim: GioSimulator; helper: HelperProcess; socketPath: string }> {
  const socketPath = join(dir, `sim-${n++}.sock`);
  const sim = await startGioSimulator({ socketPath, source: store });
  const helper = new HelperProcess(helperPath, { CMIO_SIM_SOCKET: socketPath });
  onTestFinished(async () => {
    helper.child.kill('SIGKILL');
    await sim.close();
  });
  return { sim, helper, socketPath };
}

describe('cmio-helper (host-sim build) with startGioSimulator', () => {
  it('fetches every block of a 3 MiB body by CID through the stdin/stdout frames and reassembles it', async () => {
    const store = new MemoryBlockStore();
    const body = randomBytes(3 * MiB);
    const { cid: root } = await importBody([body], store);
    expect(store.size).toBe(4); // three 1 MiB raw leaves + one dag-pb root
    const { sim, helper } = await rig(store);

    const fetched = new Map<string, Uint8Array>();
    let bytes = 0;
    for (const text of store.cids()) {
      const cid = CID.parse(text);
      const reply = await helper.request(cid.bytes);
      expect(reply.status).toBe(STATUS.OK);
      expect(reply.data.equals(Buffer.from(await store.get(cid)))).toBe(true);
      fetched.set(text, reply.data);
      bytes += reply.data.byteLength;
    }
    const reassembled = await collect(readBody(root, verifyingSource(mapSource(fetched))));
    expect(reassembled.byteLength).toBe(body.byteLength);
    expect(reassembled.equals(body)).toBe(true);
    expect(sim.stats).toEqual({ requests: 4, bytes, errors: 0 });
    expect(await helper.end()).toBe(0);
  });

  it('serves the guest shim (DeviceBlockSource + readBody) with the production frame format', async () => {
    const store = new MemoryBlockStore();
    const body = randomBytes(3 * MiB + 12345);
    const { cid: root } = await importBody([body], store);
    const socketPath = join(dir, `sim-${n++}.sock`);
    const sim = await startGioSimulator({ socketPath, source: store });
    const device = new DeviceBlockSource({ helperPath, env: { CMIO_SIM_SOCKET: socketPath } });
    onTestFinished(async () => {
      await device.close();
      await sim.close();
    });
    const got = await collect(readBody(root, verifyingSource(device)));
    expect(got.equals(body)).toBe(true);
    expect(device.roundTrips).toBe(store.size);
    expect(sim.stats.requests).toBe(store.size);
  });

  it('the guest shim rethrows the host\'s in-band refusal as its class, and a device failure as DeviceError', async () => {
    const store = new MemoryBlockStore();
    const unknown = await rawCid(randomBytes(10));
    const socketPath = join(dir, `sim-${n++}.sock`);
    const sim = await startGioSimulator({ socketPath, source: store });
    const device = new DeviceBlockSource({ helperPath, env: { CMIO_SIM_SOCKET: socketPath } });
    const nowhere = new DeviceBlockSource({ helperPath, env: { CMIO_SIM_SOCKET: join(dir, 'nobody-listens.sock') } });
    onTestFinished(async () => {
      await device.close();
      await nowhere.close();
      await sim.close();
    });
    const missing = await device.get(unknown).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(BlockMissingError);
    expect(missing).toMatchObject({ code: 'ORACLE_ERR_BLOCK_MISSING', cid: unknown.toString() });
    expect((missing as Error).message).toContain('host refused the request');
    const down = await nowhere.get(unknown).catch((e: unknown) => e);
    expect(down).toBeInstanceOf(DeviceError);
    expect((down as Error).message).toMatch(/status 2: .*connect to simulator/);
  });

  it('carries a block of exactly 2 MiB; one byte more is refused in band and the helper keeps serving', async () => {
    const store = new MemoryBlockStore();
    const max = randomBytes(2 * MiB);
    const maxCid = await rawCid(max);
    await store.put(maxCid, max);
    const over = randomBytes(2 * MiB + 1);
    const overCid = await rawCid(over);
    await store.put(overCid, over);
    const { sim, helper } = await rig(store);

    const ok = await helper.request(maxCid.bytes);
    expect(ok.status).toBe(STATUS.OK);
    expect(ok.data.byteLength).toBe(2 * MiB);
    expect(ok.data.equals(max)).toBe(true);

    const refused = await helper.request(overCid.bytes);
    expect(refused.status).toBe(STATUS.HOST_ERROR);
    expect(refused.data.toString()).toMatch(/ORACLE_ERR_STORE: .*2097153 bytes/);

    expect((await helper.request(maxCid.bytes)).data.equals(max)).toBe(true);
    expect(sim.stats).toEqual({ requests: 3, bytes: 4 * MiB, errors: 1 });
    expect(await helper.end()).toBe(0);
  });

  it('reports an unknown CID with a non-zero status and the host message, then keeps serving', async () => {
    const store = new MemoryBlockStore();
    const known = randomBytes(5000);
    const knownCid = await rawCid(known);
    await store.put(knownCid, known);
    const unknownCid = await rawCid(randomBytes(10));
    const { sim, helper } = await rig(store);

    const miss = await helper.request(unknownCid.bytes);
    expect(miss.status).not.toBe(STATUS.OK);
    expect(miss.status).toBe(STATUS.HOST_ERROR);
    expect(miss.data.toString()).toContain('ORACLE_ERR_BLOCK_MISSING');
    expect(miss.data.toString()).toContain(unknownCid.toString());

    const garbage = await helper.request(new Uint8Array([0xde, 0xad, 0xbe, 0xef]));
    expect(garbage.status).toBe(STATUS.HOST_ERROR);
    expect(garbage.data.toString()).toContain('ORACLE_ERR_DEVICE');

    const hit = await helper.request(knownCid.bytes);
    expect(hit.status).toBe(STATUS.OK);
    expect(hit.data.equals(known)).toBe(true);
    expect(sim.stats.errors).toBe(2);
    expect(helper.child.exitCode).toBeNull();
    expect(await helper.end()).toBe(0);
  });

  it('passes the empty raw block through as status 0 with no bytes', async () => {
    const store = new MemoryBlockStore();
    const { cid } = await importBody([], store);
    expect(cid.toString()).toBe(EMPTY_RAW_BLOCK);
    const { helper } = await rig(store);
    const reply = await helper.request(cid.bytes);
    expect(reply).toEqual({ status: STATUS.OK, data: Buffer.alloc(0) });
    expect(await helper.end()).toBe(0);
  });

  it('drains a request id larger than the tx buffer, answers status 1 and stays in frame', async () => {
    const store = new MemoryBlockStore();
    const block = randomBytes(100);
    const cid = await rawCid(block);
    await store.put(cid, block);
    const { sim, helper } = await rig(store);
    const big = Buffer.alloc(4 + 2 * MiB + 1);
    big.writeUInt32BE(2 * MiB + 1, 0);
    const refused = await helper.request(new Uint8Array(0), big);
    expect(refused.status).toBe(STATUS.BAD_REQUEST);
    expect(refused.data.toString()).toContain('2097153');
    expect((await helper.request(cid.bytes)).data.equals(block)).toBe(true);
    expect(sim.stats.requests).toBe(1); // the oversized id never reached the machine
    expect(await helper.end()).toBe(0);
  });

  it('answers every request with status 2 when the simulated device is unreachable, and exits 0 on EOF', async () => {
    const cid = await rawCid(new Uint8Array([1]));
    const nowhere = new HelperProcess(helperPath, { CMIO_SIM_SOCKET: join(dir, 'nobody-listens.sock') });
    onTestFinished(() => void nowhere.child.kill('SIGKILL'));
    for (let i = 0; i < 2; i++) {
      const reply = await nowhere.request(cid.bytes);
      expect(reply.status).toBe(STATUS.DEVICE);
      expect(reply.data.toString()).toMatch(/connect to simulator .*nobody-listens\.sock/);
    }
    expect(await nowhere.end()).toBe(0);

    const unset = new HelperProcess(helperPath, {});
    onTestFinished(() => void unset.child.kill('SIGKILL'));
    const reply = await unset.request(cid.bytes);
    expect(reply.status).toBe(STATUS.DEVICE);
    expect(reply.data.toString()).toContain('CMIO_SIM_SOCKET is not set');
    expect(await unset.end()).toBe(0);
  });

  it('startGioSimulator honours an already-aborted signal and close() removes the socket', async () => {
    const socketPath = join(dir, `sim-${n++}.sock`);
    const err = await startGioSimulator({ socketPath, source: new MemoryBlockStore(), signal: AbortSignal.abort() }).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('ORACLE_ERR_ABORTED');
    expect(existsSync(socketPath)).toBe(false);
    const sim = await startGioSimulator({ socketPath, source: new MemoryBlockStore() });
    expect(existsSync(socketPath)).toBe(true);
    await sim.close();
    await sim.close();
    expect(existsSync(socketPath)).toBe(false);
  });

  it('exits non-zero when stdin ends inside a frame', async () => {
    const helper = new HelperProcess(helperPath, { CMIO_SIM_SOCKET: join(dir, 'unused.sock') });
    helper.child.stdin.write(Buffer.from([0, 0]));
    expect(await helper.end()).toBe(1);
    expect(helper.stderr).toContain('inside a request frame header');
  });
});

describe('cmio-helper checks on the fromhost word (scripted fake machine)', () => {
  it('sends the GIO yield word and id, and flags too-large, unanswered and empty replies while staying in frame', async () => {
    // Each entry: the fromhost word and rx bytes this fake machine answers to the next yield.
    const script: { word: bigint; data: Buffer }[] = [
      { word: (1n << 32n) | BigInt(2 * MiB + 1), data: randomBytes(2 * MiB + 1) },
      { word: 0n, data: Buffer.alloc(0) },
      { word: 1n << 32n, data: Buffer.alloc(0) },
      { word: (0xffffn << 32n) | 4n, data: Buffer.from('nope') },
      { word: (0x25n << 32n) | 3n, data: Buffer.from('abc') },
    ];
    const seen: { word: bigint; id: Buffer }[] = [];
    const socketPath = join(dir, `fake-${n++}.sock`);
    const server = createServer((socket: Socket) => {
      let buf = Buffer.alloc(0);
      socket.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.byteLength >= 8) {
          const word = buf.readBigUInt64BE(0);
          const len = Number(word & 0xffffffffn);
          if (buf.byteLength < 8 + len) return;
          seen.push({ word, id: buf.subarray(8, 8 + len) });
          buf = buf.subarray(8 + len);
          const next = script.shift();
          if (next === undefined) return void socket.destroy();
          const head = Buffer.alloc(8);
          head.writeBigUInt64BE(next.word);
          socket.write(Buffer.concat([head, next.data]));
        }
      });
    });
    await new Promise<void>((r) => server.listen(socketPath, () => r()));
    const helper = new HelperProcess(helperPath, { CMIO_SIM_SOCKET: socketPath });
    onTestFinished(async () => {
      helper.child.kill('SIGKILL');
      await new Promise<void>((r) => server.close(() => r()));
    });
    const cid = await rawCid(new Uint8Array([1, 2, 3]));

    const tooLarge = await helper.request(cid.bytes);
    expect(tooLarge.status).toBe(STATUS.REPLY_TOO_LARGE);
    expect(tooLarge.data.toString()).toContain('2097153');
    const unanswered = await helper.request(cid.bytes);
    expect(unanswered.status).toBe(STATUS.NO_RESPONSE);
    const empty = await helper.request(cid.bytes);
    expect(empty.status).toBe(STATUS.EMPTY_REPLY);
    const refused = await helper.request(cid.bytes);
    expect(refused.status).toBe(STATUS.HOST_ERROR);
    expect(refused.data.toString()).toMatch(/0xffff\): nope$/);
    const ok = await helper.request(cid.bytes);
    expect(ok).toEqual({ status: STATUS.OK, data: Buffer.from('abc') });
    // The fake machine is gone after its script: the next yield fails, reported, not fatal.
    const broken = await helper.request(cid.bytes);
    expect(broken.status).toBe(STATUS.YIELD_FAILED);

    // cartesi-gio.md §2.2: dev 2, cmd 1 (manual), reason 0x25, data = id length; the id at tx offset 0.
    expect(seen).toHaveLength(6);
    for (const s of seen) {
      expect(s.word).toBe(0x0201002500000000n | BigInt(cid.bytes.byteLength));
      expect(s.id.equals(Buffer.from(cid.bytes))).toBe(true);
    }
    expect(cid.bytes.byteLength).toBe(36);
    expect(seen[0]!.word).toBe(0x0201002500000024n);
    expect(await helper.end()).toBe(0);
  });
});
