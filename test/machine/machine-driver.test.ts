import { randomBytes } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { MachineError, OracleError } from '../../src/errors.ts';
import { MachineDriver, MCYCLE_MAX } from '../../src/machine/machine-driver.ts';
import { MachineRpcError } from '../../src/machine/machine-rpc-error.ts';
import { EMULATOR_VERSIONS, MACHINE_RPC_METHODS } from '../../src/machine/machine-rpc-methods.ts';
import type { EmulatorVersion } from '../../src/machine/machine-rpc-methods.ts';
import { importBody } from '../../src/protocol/unixfs.ts';
import { MemoryBlockStore } from '../../src/store/memory-block-store.ts';
import { startSimulatedJsonRpcMachine } from './simulated-jsonrpc-machine.ts';
import type { SimulatedGioRequest, SimulatedMachineInit } from './simulated-jsonrpc-machine.ts';

const MiB = 1024 * 1024;

async function rawCid(bytes: Uint8Array): Promise<CID> {
  return CID.createV1(0x55, await sha256.digest(bytes));
}

async function simulated(init: SimulatedMachineInit): Promise<Awaited<ReturnType<typeof startSimulatedJsonRpcMachine>>> {
  const machine = await startSimulatedJsonRpcMachine(init);
  onTestFinished(() => machine.close());
  return machine;
}

function driver(url: string, emulator: EmulatorVersion, source: MemoryBlockStore): MachineDriver {
  const d = new MachineDriver({ url, emulator, source });
  onTestFinished(() => d.close());
  return d;
}

/** A store with a 3 MiB body (4 blocks) and a 2 MiB raw block; requests for all of them. */
async function fixture(): Promise<{ store: MemoryBlockStore; requests: SimulatedGioRequest[] }> {
  const store = new MemoryBlockStore();
  await importBody([randomBytes(3 * MiB)], store);
  const big = randomBytes(2 * MiB);
  await store.put(await rawCid(big), big);
  const requests = store.cids().map((c) => ({ domain: 0x25, id: CID.parse(c).bytes }));
  return { store, requests };
}

describe('MachineDriver against a SIMULATED cartesi-jsonrpc-machine', () => {
  for (const version of EMULATOR_VERSIONS) {
    describe(`emulator ${version} method table`, () => {
      it('runs to halt, answering each GIO 0x25 request with the verified block and a non-zero code', async () => {
        const { store, requests } = await fixture();
        const machine = await simulated({ emulator: version, requests });
        const d = driver(machine.url, version, store);

        const result = await d.run();
        expect(result.breakReason).toBe('halted');
        expect(result.gioRequests).toBe(5);
        expect(machine.responses).toHaveLength(5);
        for (let i = 0; i < requests.length; i++) {
          const expected = Buffer.from(await store.get(CID.decode(requests[i]!.id)));
          expect(machine.responses[i]!.code).toBe(1);
          expect(machine.responses[i]!.data.equals(expected)).toBe(true);
        }
        expect(machine.responses.some((r) => r.data.byteLength === 2 * MiB)).toBe(true);
        expect(d.stats).toMatchObject({ gioRequests: 5, refused: 0 });
        expect(d.stats.bytes).toBe(machine.responses.reduce((n, r) => n + r.data.byteLength, 0));

        // uint64 exactness: mcycle starts at 2^53 + 7 and mcycle_end is 2^64 - 1; neither survives a Number.
        expect(result.mcycle).toBe(machine.mcycle());
        expect(result.mcycle).toBe(2n ** 53n + 7n + 6n * 1000n + (version === '0.19' ? 0n : 1n));
        expect(machine.mcycleEnds.every((e) => e === MCYCLE_MAX)).toBe(true);

        const methods = new Set(machine.calls);
        if (version === '0.21') {
          expect(methods.has('machine.receive_cmio_request')).toBe(true);
          expect(methods.has('machine.read_memory')).toBe(false);
        } else {
          expect(methods.has('machine.read_memory')).toBe(true);
          expect(machine.calls.filter((c) => c === 'machine.read_reg').length).toBeGreaterThanOrEqual(5);
        }
      });

      it('refuses an unknown domain and a malformed CID in band (0xFFFF + message) and goes on', async () => {
        const store = new MemoryBlockStore();
        const block = randomBytes(1000);
        const cid = await rawCid(block);
        await store.put(cid, block);
        const machine = await simulated({
          emulator: version,
          requests: [
            { domain: 0x2a, id: cid.bytes },
            { domain: 0x25, id: new Uint8Array([1, 2, 3]) },
            { domain: 0x25, id: cid.bytes },
          ],
        });
        const d = driver(machine.url, version, store);
        expect((await d.run()).breakReason).toBe('halted');
        expect(machine.responses.map((r) => r.code)).toEqual([0xffff, 0xffff, 1]);
        expect(machine.responses[0]!.data.toString()).toMatch(/^ORACLE_ERR_DEVICE: Unknown GIO domain 0x2a/);
        expect(machine.responses[1]!.data.toString()).toMatch(/^ORACLE_ERR_DEVICE: Malformed CID/);
        expect(machine.responses[2]!.data.equals(block)).toBe(true);
        expect(d.stats.refused).toBe(2);
      });

      it('aborts the run when this host lacks a block, without answering the machine', async () => {
        const store = new MemoryBlockStore();
        const missing = await rawCid(randomBytes(16));
        const machine = await simulated({ emulator: version, requests: [{ domain: 0x25, id: missing.bytes }] });
        const d = driver(machine.url, version, store);
        const err = await d.run().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(OracleError);
        expect((err as OracleError).code).toBe('ORACLE_ERR_BLOCK_MISSING');
        expect(machine.responses).toHaveLength(0);
        expect(machine.calls).not.toContain('machine.send_cmio_response');
      });

      it('stops at mcycleEnd with reached_target_mcycle', async () => {
        const { store, requests } = await fixture();
        const machine = await simulated({ emulator: version, requests, mcycleStart: 2n ** 60n + 1n });
        const d = driver(machine.url, version, store);
        const end = 2n ** 60n + 2500n;
        const result = await d.run({ mcycleEnd: end });
        expect(result.breakReason).toBe('reached_target_mcycle');
        expect(result.mcycle).toBe(end);
        expect(machine.mcycleEnds.every((e) => e === end)).toBe(true);
        expect(result.gioRequests).toBe(2);
      });

      it('detects the emulator version from get_version and stores with the version\'s params', async () => {
        const machine = await simulated({ emulator: version, requests: [] });
        expect(await MachineDriver.detectEmulatorVersion(machine.url)).toBe(version);
        const d = driver(machine.url, version, new MemoryBlockStore());
        await d.store('/tmp/machine-snapshot');
        expect(machine.stores).toEqual([version === '0.19' ? { directory: '/tmp/machine-snapshot' } : { directory: '/tmp/machine-snapshot', sharing: 'all' }]);
        expect(await d.rootHash()).toEqual(new Uint8Array(32).fill(0xab));
      });
    });
  }

  it('fails clearly when the method table does not match the server (0.21 table against a 0.19 server)', async () => {
    const { store, requests } = await fixture();
    const machine = await simulated({ emulator: '0.19', requests });
    const d = driver(machine.url, '0.21', store);
    const err = await d.run().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MachineRpcError);
    expect((err as MachineRpcError).rpcCode).toBe(-32601);
    expect((err as Error).message).toContain('machine.receive_cmio_request');
  });

  it('rejects a break reason the version does not have (0.19 table against a 0.20 server that reports console_output)', async () => {
    const machine = await simulated({ emulator: '0.20', requests: [] });
    const d = driver(machine.url, '0.19', new MemoryBlockStore());
    await expect(d.run()).rejects.toThrow(/Unexpected break reason "console_output" from emulator 0.19/);
  });

  it('the simulated 0.21 server rejects response code 0 for a GIO, as the emulator does', async () => {
    const cid = await rawCid(new Uint8Array([1]));
    const machine = await simulated({ emulator: '0.21', requests: [{ domain: 0x25, id: cid.bytes }], mcycleStart: 0n });
    const post = async (method: string, params: object): Promise<Record<string, unknown>> =>
      (await (await fetch(machine.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })).json()) as Record<string, unknown>;
    expect((await post('machine.run', { mcycle_end: 1e9 }))['result']).toBe('console_output');
    expect((await post('machine.run', { mcycle_end: 1e9 }))['result']).toBe('yielded_manually');
    expect(JSON.stringify((await post('machine.send_cmio_response', { reason: 0, data: '' }))['error'])).toContain('rx-accepted');
    expect((await post('machine.send_cmio_response', { reason: 1, data: 'AQ==' }))['result']).toBe(true);
  });

  it('refuses bad configuration and honours an already-aborted signal', async () => {
    const store = new MemoryBlockStore();
    expect(() => new MachineDriver({ url: 'http://127.0.0.1:1', emulator: '0.18' as EmulatorVersion, source: store })).toThrow(/Unsupported emulator version "0.18"/);
    expect(() => new MachineDriver({ url: 'not a url', emulator: '0.21', source: store })).toThrow(OracleError);
    const machine = await simulated({ emulator: '0.21', requests: [] });
    const d = driver(machine.url, '0.21', store);
    const err = await d.run({ signal: AbortSignal.abort() }).catch((e: unknown) => e);
    expect((err as OracleError).code).toBe('ORACLE_ERR_ABORTED');
    expect(machine.calls).toHaveLength(0);
    await expect(d.run({ mcycleEnd: MCYCLE_MAX + 1n })).rejects.toThrow(/not a uint64/);
  });

  it('reports an unreachable server as a MachineRpcError naming the method', async () => {
    const machine = await simulated({ emulator: '0.21', requests: [] });
    const url = machine.url;
    await machine.close();
    const d = driver(url, '0.21', new MemoryBlockStore());
    const err = await d.run().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MachineRpcError);
    expect(err).toBeInstanceOf(MachineError);
    expect((err as MachineRpcError).code).toBe('ORACLE_ERR_MACHINE');
    expect((err as MachineRpcError).method).toBe('machine.run');
  });

  it('documents one table per supported emulator version', () => {
    expect(Object.keys(MACHINE_RPC_METHODS)).toEqual(['0.19', '0.20', '0.21']);
    expect(MACHINE_RPC_METHODS['0.21'].receiveCmioRequest).toBe('machine.receive_cmio_request');
    expect(MACHINE_RPC_METHODS['0.19'].receiveCmioRequest).toBeUndefined();
    expect(MACHINE_RPC_METHODS['0.20'].breakReasons).toContain('console_input');
    expect(MACHINE_RPC_METHODS['0.19'].breakReasons).not.toContain('console_output');
  });
});
