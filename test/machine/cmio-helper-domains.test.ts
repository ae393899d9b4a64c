import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { DeviceBlockSource } from '../../guest/device-block-source.ts';
import { DeviceError, UpstreamTimeoutError } from '../../src/errors.ts';
import { GIO_RESPONSE_OK, gioErrorResponse } from '../../src/machine/gio-responder.ts';
import type { GioHandler } from '../../src/machine/gio-responder.ts';
import { startGioSimulator } from '../../src/machine/sim/gio-simulator.ts';
import type { GioSimulator } from '../../src/machine/sim/gio-simulator.ts';
import { MemoryBlockStore } from '../../src/store/memory-block-store.ts';
import { ensureHostSimHelper, HelperProcess } from './cmio-helper-process.ts';

// Helper statuses (guest/cmio/cmio-helper.c HELPER_STATUS_*).
const STATUS = { OK: 0, BAD_REQUEST: 1, EMPTY_REPLY: 5 } as const;

let helperPath: string;
let dir: string;
let n = 0;
beforeAll(async () => {
  helperPath = await ensureHostSimHelper();
  dir = await mkdtemp(join(tmpdir(), 'cmio-dom-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The frame that names its domain: u32 BE (0x80000000 | id length) ‖ u32 BE domain ‖ id. */
function domainFrame(domain: number, id: Uint8Array): Buffer {
  const frame = Buffer.alloc(8 + id.byteLength);
  frame.writeUInt32BE((0x8000_0000 | id.byteLength) >>> 0, 0);
  frame.writeUInt32BE(domain >>> 0, 4);
  frame.set(id, 8);
  return frame;
}

/** A simulator whose domains 0x26 and 0x27 echo what they got (0x27 answers nothing), plus a store for 0x25. */
async function rig(): Promise<{ sim: GioSimulator; store: MemoryBlockStore; seen: Array<{ domain: number; id: string }>; block: Buffer; cid: CID }> {
  const store = new MemoryBlockStore();
  const block = randomBytes(1000);
  const cid = CID.createV1(0x55, await sha256.digest(block));
  await store.put(cid, block);
  const seen: Array<{ domain: number; id: string }> = [];
  const echo = (domain: number, reply: (id: Uint8Array) => Uint8Array): GioHandler => (id) => {
    seen.push({ domain, id: Buffer.from(id).toString() });
    return Promise.resolve({ code: GIO_RESPONSE_OK, data: reply(id) });
  };
  const handlers = new Map<number, GioHandler>([
    [0x26, echo(0x26, (id) => Buffer.concat([Buffer.from('0x26:'), id]))],
    [0x27, echo(0x27, () => new Uint8Array(0))],
    [0x28, () => Promise.resolve(gioErrorResponse(new UpstreamTimeoutError('slow origin')))],
  ]);
  const sim = await startGioSimulator({ socketPath: join(dir, `sim-${n++}.sock`), source: store, handlers });
  onTestFinished(() => sim.close());
  return { sim, store, seen, block, cid };
}

describe('cmio-helper frames that name their GIO domain (host-sim build, SIMULATED device)', () => {
  it('yields to the named domain, allows an empty reply there, and keeps 0x25 frames (both kinds) working', async () => {
    const { sim, seen, block, cid } = await rig();
    const helper = new HelperProcess(helperPath, { CMIO_SIM_SOCKET: sim.socketPath });
    onTestFinished(() => void helper.child.kill('SIGKILL'));

    const record = await helper.request(new Uint8Array(0), domainFrame(0x26, Buffer.from('{"v":1}')));
    expect(record).toEqual({ status: STATUS.OK, data: Buffer.from('0x26:{"v":1}') });
    const control = await helper.request(new Uint8Array(0), domainFrame(0x27, Buffer.from('{"op":"stats"}')));
    expect(control).toEqual({ status: STATUS.OK, data: Buffer.alloc(0) });
    expect(seen).toEqual([{ domain: 0x26, id: '{"v":1}' }, { domain: 0x27, id: '{"op":"stats"}' }]);

    expect((await helper.request(cid.bytes)).data.equals(block)).toBe(true);
    expect((await helper.request(new Uint8Array(0), domainFrame(0x25, cid.bytes))).data.equals(block)).toBe(true);
    expect(sim.stats.requests).toBe(4);
    expect(await helper.end()).toBe(0);
  });

  it('refuses a domain that is not GIO (rollups reasons 1, 2, 4; above 16 bits) with status 1, without yielding, and stays in frame', async () => {
    const { sim, cid, block } = await rig();
    const helper = new HelperProcess(helperPath, { CMIO_SIM_SOCKET: sim.socketPath });
    onTestFinished(() => void helper.child.kill('SIGKILL'));
    for (const domain of [1, 2, 4, 0x10000, 0xffffffff]) {
      const reply = await helper.request(new Uint8Array(0), domainFrame(domain, Buffer.from('abc')));
      expect(reply.status, `domain ${domain}`).toBe(STATUS.BAD_REQUEST);
      expect(reply.data.toString()).toContain(`domain 0x${domain.toString(16)} is not a GIO domain`);
    }
    expect(sim.stats.requests).toBe(0);
    expect((await helper.request(cid.bytes)).data.equals(block)).toBe(true);
    expect(await helper.end()).toBe(0);
  });

  it('an empty reply is an error for 0x25 in either frame (a block is never empty but the empty raw block)', async () => {
    const empty: GioHandler = () => Promise.resolve({ code: GIO_RESPONSE_OK, data: new Uint8Array(0) });
    const sim = await startGioSimulator({ socketPath: join(dir, `sim-${n++}.sock`), source: new MemoryBlockStore(), handlers: new Map([[0x25, empty], [0x26, empty]]) });
    onTestFinished(() => sim.close());
    const helper = new HelperProcess(helperPath, { CMIO_SIM_SOCKET: sim.socketPath });
    onTestFinished(() => void helper.child.kill('SIGKILL'));
    const cid = CID.createV1(0x55, await sha256.digest(randomBytes(4)));
    expect((await helper.request(cid.bytes)).status).toBe(STATUS.EMPTY_REPLY);
    expect((await helper.request(new Uint8Array(0), domainFrame(0x25, cid.bytes))).status).toBe(STATUS.EMPTY_REPLY);
    expect(await helper.request(new Uint8Array(0), domainFrame(0x26, cid.bytes))).toEqual({ status: STATUS.OK, data: Buffer.alloc(0) });
    expect(await helper.end()).toBe(0);
  });

  it('exits non-zero when stdin ends inside the domain field', async () => {
    const helper = new HelperProcess(helperPath, { CMIO_SIM_SOCKET: join(dir, 'unused.sock') });
    helper.child.stdin.write(Buffer.from([0x80, 0, 0, 3, 0, 0]));
    expect(await helper.end()).toBe(1);
    expect(helper.stderr).toContain('inside a request frame header');
  });
});

describe('DeviceBlockSource.request(domain, id)', () => {
  it('carries any GIO domain beside get(cid): replies, empty replies, in-band refusals as their class, bad domains', async () => {
    const { sim, block, cid } = await rig();
    const device = new DeviceBlockSource({ helperPath, env: { CMIO_SIM_SOCKET: sim.socketPath } });
    onTestFinished(() => device.close());
    const [a, got, b] = await Promise.all([device.request(0x26, Buffer.from('one')), device.get(cid), device.request(0x27, Buffer.from('two'))]);
    expect(Buffer.from(a).toString()).toBe('0x26:one');
    expect(Buffer.from(got).equals(block)).toBe(true);
    expect(b.byteLength).toBe(0);
    const timeout = await device.request(0x28, Buffer.from('x')).catch((e: unknown) => e);
    expect(timeout).toBeInstanceOf(UpstreamTimeoutError);
    expect((timeout as Error).message).toContain('slow origin');
    const rollup = await device.request(2, Buffer.from('x')).catch((e: unknown) => e);
    expect(rollup).toBeInstanceOf(DeviceError);
    expect((rollup as Error).message).toMatch(/status 1: domain 0x2 is not a GIO domain/);
    expect(() => device.request(0x10000, new Uint8Array(0))).toThrow(/Invalid GIO domain/);
    expect(device.roundTrips).toBe(5);
    expect(Buffer.from(await device.get(cid)).equals(block)).toBe(true);
  });
});
