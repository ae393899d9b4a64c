import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { EmulatorVersion } from '../../src/machine/machine-rpc-methods.ts';

/**
 * SIMULATION of `cartesi-jsonrpc-machine`'s RPC surface (no emulator runs): a state machine that yields a
 * scripted list of GIO requests, one manual yield each, then halts. It implements only the methods of
 * the emulator version it simulates (cartesi-gio.md §1.9), with that version's rules:
 * - `machine.run` returns `yielded_manually` again while iflags.Y is set (§1.4);
 * - 0.19/0.20 expose the request through `read_reg htif_tohost` + `read_memory 0x60800000`; 0.21 through
 *   `machine.receive_cmio_request {length}` (length 0 = size probe);
 * - `send_cmio_response` requires iflags.Y, refuses > 2 MiB (0.19+), and on 0.21 refuses code 0 and a
 *   `revert_root_hash` for a GIO answer (§1.5);
 * - uint64 values (mcycle, the tohost word) go out as bare JSON integers, most above 2^53, and the server
 *   reads `mcycle_end` from the raw request text, so a client that rounds either is caught.
 * Written from the document, not from the emulator's source: it checks the driver against our reading of
 * the protocol, not against the emulator.
 */
export interface SimulatedGioRequest {
  domain: number;
  id: Uint8Array;
}

export interface SimulatedMachineInit {
  emulator: EmulatorVersion;
  requests: SimulatedGioRequest[];
  /** mcycle at start. @default 2^53 + 7 (not representable as a Number) */
  mcycleStart?: bigint;
  /** mcycles each yield advances. @default 1000 */
  mcyclesPerYield?: bigint;
}

export interface SimulatedMachine {
  url: string;
  /** Responses the "machine" received, in order. */
  responses: { code: number; data: Buffer }[];
  /** Method names called, in order. */
  calls: string[];
  /** Every `mcycle_end` received, read exactly from the request text. */
  mcycleEnds: bigint[];
  /** Params of `machine.store` calls. */
  stores: Record<string, unknown>[];
  /** Current mcycle (exact). */
  mcycle(): bigint;
  close(): Promise<void>;
}

const TX_START = 0x6080_0000;
const BUFFER_BYTES = 2 * 1024 * 1024;
const JSONRPC_API = { '0.19': [0, 5, 0], '0.20': [0, 6, 0], '0.21': [0, 7, 0] } as const;

class RpcError extends Error {
  readonly rpcCode: number;

  constructor(rpcCode: number, message: string) {
    super(message);
    this.rpcCode = rpcCode;
  }
}

/** A result that must be written as a bare integer literal (uint64 above 2^53). */
class Uint64 {
  readonly value: bigint;

  constructor(value: bigint) {
    this.value = value;
  }
}

export async function startSimulatedJsonRpcMachine(init: SimulatedMachineInit): Promise<SimulatedMachine> {
  const v = init.emulator;
  const requests = init.requests;
  let mcycle = init.mcycleStart ?? 2n ** 53n + 7n;
  const step = init.mcyclesPerYield ?? 1000n;
  let next = 0;
  let iflagsY = false;
  let iflagsX = false;
  let tohost = 0n;
  const tx = Buffer.alloc(BUFFER_BYTES);
  let consoleOutputPending = v !== '0.19'; // 0.20+ break once with console_output, which a client must run through
  const responses: SimulatedMachine['responses'] = [];
  const calls: string[] = [];
  const mcycleEnds: bigint[] = [];
  const stores: Record<string, unknown>[] = [];

  const methods: Record<string, (p: Record<string, unknown>, raw: string) => unknown> = {
    get_version: () => {
      const [major, minor, patch] = JSONRPC_API[v];
      return { major, minor, patch, pre_release: '', build: '' };
    },
    shutdown: () => true,
    'machine.store': (p) => {
      if (typeof p['directory'] !== 'string') throw new RpcError(-32602, 'missing directory');
      if (v === '0.19' && 'sharing' in p) throw new RpcError(-32602, 'unexpected field "sharing"');
      if (v !== '0.19' && !['none', 'config', 'all'].includes(p['sharing'] as string)) throw new RpcError(-32602, 'missing or invalid field "sharing"');
      stores.push(p);
      return true;
    },
    'machine.get_root_hash': () => Buffer.alloc(32, 0xab).toString('base64'),
    'machine.run': (_p, raw) => {
      const m = /"mcycle_end"\s*:\s*(\d+)/.exec(raw);
      if (m === null) throw new RpcError(-32602, 'mcycle_end must be an unsigned integer');
      const end = BigInt(m[1]!);
      if (end > 0xffff_ffff_ffff_ffffn) throw new RpcError(-32602, 'mcycle_end out of range');
      mcycleEnds.push(end);
      iflagsX = false; // X clears at the start of every run (§1.4)
      if (iflagsY) return 'yielded_manually';
      if (mcycle >= end) return 'reached_target_mcycle';
      if (consoleOutputPending) {
        consoleOutputPending = false;
        mcycle += 1n;
        return 'console_output';
      }
      const req = requests[next];
      if (req === undefined) {
        mcycle += step;
        return 'halted';
      }
      if (mcycle + step > end) {
        mcycle = end;
        return 'reached_target_mcycle';
      }
      mcycle += step;
      tx.fill(0);
      tx.set(req.id, 0);
      // What OpenSBI writes for a GIO yield: dev 2, cmd 1 (manual), reason = domain, data = id length.
      tohost = (2n << 56n) | (1n << 48n) | (BigInt(req.domain) << 32n) | BigInt(req.id.byteLength);
      iflagsY = true;
      return 'yielded_manually';
    },
    'machine.read_reg': (p) => {
      switch (p['reg']) {
        case 'mcycle':
          return new Uint64(mcycle);
        case 'htif_tohost':
          return new Uint64(tohost);
        case 'htif_tohost_cmd':
          return Number((tohost >> 48n) & 0xffn);
        case 'htif_tohost_reason':
          return Number((tohost >> 32n) & 0xffffn);
        case 'htif_tohost_data':
          return Number(tohost & 0xffff_ffffn);
        case 'iflags_Y':
          return iflagsY ? 1 : 0;
        default:
          throw new RpcError(-32602, `unknown register ${String(p['reg'])}`);
      }
    },
    'machine.read_memory': (p) => {
      const address = p['address'];
      const length = p['length'];
      if (typeof address !== 'number' || typeof length !== 'number') throw new RpcError(-32602, 'address and length must be numbers');
      if (address < TX_START || address + length > TX_START + BUFFER_BYTES) throw new RpcError(-32602, 'simulation maps only the tx buffer');
      return tx.subarray(address - TX_START, address - TX_START + length).toString('base64');
    },
    'machine.send_cmio_response': (p) => {
      const reason = p['reason'];
      const data = p['data'];
      if (typeof reason !== 'number' || !Number.isInteger(reason) || reason < 0 || reason > 0xffff) throw new RpcError(-32602, 'reason must be a uint16');
      if (typeof data !== 'string') throw new RpcError(-32602, 'data must be base64');
      if (!iflagsY) throw new RpcError(-32603, 'iflags.Y is not set');
      const bytes = Buffer.from(data, 'base64');
      if (bytes.byteLength > BUFFER_BYTES) throw new RpcError(-32603, 'CMIO response data is too large');
      if (v === '0.21') {
        if (reason === 0) throw new RpcError(-32603, 'machine is not waiting on an rx-accepted manual yield');
        if ('revert_root_hash' in p) throw new RpcError(-32603, 'revert_root_hash is only valid for an advance-state response');
      }
      responses.push({ code: reason, data: bytes });
      iflagsY = false;
      next++;
      return true;
    },
  };
  if (v === '0.21') {
    methods['machine.receive_cmio_request'] = (p) => {
      const length = p['length'];
      if (typeof length !== 'number' || !Number.isInteger(length) || length < 0) throw new RpcError(-32602, 'length must be a uint64');
      if (!iflagsY && !iflagsX) throw new RpcError(-32603, 'no pending cmio request');
      const available = Number(tohost & 0xffff_ffffn);
      return {
        cmd: Number((tohost >> 48n) & 0xffn),
        reason: Number((tohost >> 32n) & 0xffffn),
        available_length: available,
        data: tx.subarray(0, Math.min(length, available)).toString('base64'),
      };
    };
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'POST' || req.url !== '/') {
      res.writeHead(req.url === '/' ? 405 : 404).end();
      return;
    }
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(parts).toString('utf8');
      // A uint64 result goes out as a bare integer: placeholders replaced in the text.
      const bigs: Uint64[] = [];
      const one = (msg: { jsonrpc?: unknown; id?: unknown; method?: unknown; params?: unknown }, text: string): Record<string, unknown> => {
        const id = msg.id ?? null;
        try {
          if (msg.jsonrpc !== '2.0' || typeof msg.method !== 'string') throw new RpcError(-32600, 'Invalid Request');
          calls.push(msg.method);
          const handler = methods[msg.method];
          if (handler === undefined) throw new RpcError(-32601, `Method not found: ${msg.method}`);
          const params = (msg.params ?? {}) as Record<string, unknown>;
          const result = handler(params, text);
          if (msg.method === 'shutdown') setImmediate(() => server.close());
          if (result instanceof Uint64) {
            bigs.push(result);
            return { jsonrpc: '2.0', id, result: `__UINT64_${bigs.length - 1}__` };
          }
          return { jsonrpc: '2.0', id, result };
        } catch (err) {
          const e = err instanceof RpcError ? err : new RpcError(-32700, (err as Error).message);
          return { jsonrpc: '2.0', id, error: { code: e.rpcCode, message: e.message } };
        }
      };
      let body: unknown;
      try {
        const msg = JSON.parse(raw) as unknown;
        // A batch (JSON-RPC 2.0 §6) is run in order, as cartesi-jsonrpc-machine does. Each run sees its own
        // mcycle_end as written in the raw text (JSON.parse would round it).
        const ends = [...raw.matchAll(/"mcycle_end"\s*:\s*(\d+)/g)].map((m) => m[0]);
        body = Array.isArray(msg) ? msg.map((m) => one(m as Record<string, unknown>, (m as { method?: unknown }).method === 'machine.run' ? `{${ends.shift() ?? ''}}` : '{}')) : one(msg as Record<string, unknown>, raw);
      } catch (err) {
        body = { jsonrpc: '2.0', id: null, error: { code: -32700, message: (err as Error).message } };
      }
      const text = JSON.stringify(body).replace(/"__UINT64_(\d+)__"/g, (_m, i: string) => bigs[Number(i)]!.value.toString());
      res.writeHead(200, { 'content-type': 'application/json' }).end(text);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    responses,
    calls,
    mcycleEnds,
    stores,
    mcycle: () => mcycle,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
