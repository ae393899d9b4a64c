import { Agent } from 'undici';
import type { Dispatcher } from 'undici';
import { DeviceError, InvalidConfigError, throwIfAborted } from '../errors.ts';
import type { Logger } from '../log.ts';
import { NOOP_LOGGER } from '../log.ts';
import type { AbortOptions, BlockSource } from '../protocol/blocks.ts';
import { stringifyJsonBigInt } from './bigint-json.ts';
import type { JsonValue } from './bigint-json.ts';
import { answerGio, CMIO_BUFFER_BYTES, GIO_DOMAIN_IPFS_BLOCK, gioErrorResponse } from './gio-responder.ts';
import type { GioHandler, GioResponse } from './gio-responder.ts';
import {
  CMIO_TX_BUFFER_START,
  HTIF_YIELD_CMD_MANUAL,
  HTIF_YIELD_MANUAL_REASON_RX_ACCEPTED,
  HTIF_YIELD_MANUAL_REASON_RX_REJECTED,
  HTIF_YIELD_MANUAL_REASON_TX_EXCEPTION,
  unpackHtifWord,
} from './htif.ts';
import { fromBase64, isJsonObject, MachineRpcClient, toSmallInt, toUint64, UINT64_MAX } from './machine-rpc-client.ts';
import { MachineRpcError } from './machine-rpc-error.ts';
import { EMULATOR_VERSIONS, emulatorVersionOf, MACHINE_RPC_METHODS } from './machine-rpc-methods.ts';
import type { EmulatorVersion, MachineRpcMethods } from './machine-rpc-methods.ts';

/** `mcycle_end` meaning "no limit": 2^64 − 1, beyond Number precision (sent as a bare integer literal). */
export const MCYCLE_MAX = UINT64_MAX;

export interface MachineDriverInit {
  /** Base URL of `cartesi-jsonrpc-machine --server-address=HOST:PORT`, e.g. `http://127.0.0.1:5007`. Requests go to `/`. */
  url: string;
  /** Which method table to speak (`MachineDriver.detectEmulatorVersion` can find it). */
  emulator: EmulatorVersion;
  /** Where GIO 0x25 blocks come from (the host's block store). */
  source: BlockSource;
  /**
   * Handlers of other GIO domains (0x26 record, 0x27 control), keyed by domain; 0x25 is `source`'s unless
   * given here. A handler answers in-band refusals itself; if it throws a DeviceError that is refused in
   * band too, any other error aborts the run. While a handler runs the machine is parked on the yield, so
   * it may call the driver (store a snapshot, swap a drive) before it answers.
   */
  handlers?: ReadonlyMap<number, GioHandler>;
  logger?: Logger;
  /**
   * undici dispatcher for the RPC connection. @default an Agent with headers/body timeouts off: one
   * `machine.run` lasts until the guest's next yield, which can be minutes of build.
   */
  dispatcher?: Dispatcher;
}

export interface RunOptions extends AbortOptions {
  /** Stop at this mcycle (`reached_target_mcycle`). @default MCYCLE_MAX (run to halt) */
  mcycleEnd?: bigint;
}

export interface MachineRunResult {
  /** `halted`, or `reached_target_mcycle` when `mcycleEnd` was hit first. */
  breakReason: 'halted' | 'reached_target_mcycle';
  /** The machine's mcycle at the end (uint64, exact). */
  mcycle: bigint;
  /** GIO requests answered during this call. */
  gioRequests: number;
}

export interface MachineDriverStats {
  /** `machine.run` calls made. */
  runs: number;
  /** GIO requests answered (blocks and in-band refusals). */
  gioRequests: number;
  /** Block bytes sent to the machine. */
  bytes: number;
  /** Requests refused in band (code 0xFFFF). */
  refused: number;
  /** Host milliseconds spent answering GIO requests (decoding, the handler, encoding), summed; the one HTTP request per round trip is not in it. */
  hostMs: number;
  /** GIO requests per domain. */
  byDomain: Record<number, number>;
  /** `hostMs` per domain (a control request may store a snapshot: seconds, not a round trip's cost). */
  hostMsByDomain: Record<number, number>;
}

/** A cmio request as read from the parked machine. */
interface CmioRequest {
  cmd: number;
  reason: number;
  data: Uint8Array;
}

/**
 * Runs a Cartesi Machine through `cartesi-jsonrpc-machine` and plays the host side of the dehashing device
 * (design §7): `run` until a manual yield, read the cmio request (domain + id), answer it with
 * `answerGio`, run again, until the machine halts (cartesi-gio.md §6 host loop).
 *
 * Error policy (design §7, cartesi-gio.md §6): a request every honest host would refuse the same way
 * (`ORACLE_ERR_DEVICE`: unknown domain, malformed CID) is answered in band with code 0xFFFF; a block
 * this host cannot serve (missing, corrupt in the store, too large) aborts the run by throwing, so that two
 * hosts with different stores never drive the machine into different states.
 */
export class MachineDriver {
  readonly methods: Readonly<MachineRpcMethods>;
  readonly stats: MachineDriverStats = { runs: 0, gioRequests: 0, bytes: 0, refused: 0, hostMs: 0, byDomain: {}, hostMsByDomain: {} };
  readonly #rpc: MachineRpcClient;
  readonly #handlers: ReadonlyMap<number, GioHandler>;
  readonly #logger: Logger;

  constructor(init: MachineDriverInit) {
    const methods = (MACHINE_RPC_METHODS as Partial<Record<string, MachineRpcMethods>>)[init.emulator];
    if (methods === undefined) {
      throw new InvalidConfigError(`Unsupported emulator version ${JSON.stringify(init.emulator)} (expected one of ${EMULATOR_VERSIONS.join(', ')})`);
    }
    this.methods = methods;
    this.#rpc = new MachineRpcClient({ url: init.url, ...(init.dispatcher === undefined ? {} : { dispatcher: init.dispatcher }) });
    const source = init.source;
    const blocks: GioHandler = (id, signal) => answerGio(GIO_DOMAIN_IPFS_BLOCK, id, source, signal === undefined ? {} : { signal });
    this.#handlers = new Map([[GIO_DOMAIN_IPFS_BLOCK, blocks], ...(init.handlers ?? [])]);
    this.#logger = (init.logger ?? NOOP_LOGGER).child('machine');
  }

  /** Asks the server for its JSON-RPC API version and maps it to an emulator version (`emulatorVersionOf`). */
  static async detectEmulatorVersion(url: string, options: AbortOptions & { dispatcher?: Dispatcher } = {}): Promise<EmulatorVersion> {
    // undici's default timeouts here: get_version answers at once or not at all.
    const dispatcher = options.dispatcher ?? new Agent();
    try {
      return emulatorVersionOf(await new MachineRpcClient({ url, dispatcher }).call('get_version', {}, options.signal));
    } finally {
      if (options.dispatcher === undefined) await dispatcher.close();
    }
  }

  /** Loads a stored machine into the server (`machine.load`). */
  async load(directory: string, options: AbortOptions & { runtimeConfig?: JsonValue } = {}): Promise<void> {
    const params: Record<string, unknown> = { directory };
    if (options.runtimeConfig !== undefined) params['runtime_config'] = options.runtimeConfig;
    await this.#call(this.methods.load, params, options.signal);
  }

  /** Creates the machine in the (empty) server (`machine.create`). */
  async create(config: JsonValue, options: AbortOptions & { runtimeConfig?: JsonValue } = {}): Promise<void> {
    const params: Record<string, unknown> = { config };
    if (options.runtimeConfig !== undefined) params['runtime_config'] = options.runtimeConfig;
    await this.#call(this.methods.create, params, options.signal);
  }

  /** The emulator's default machine config (`machine.get_default_config`), uint64 fields exact. */
  defaultConfig(options: AbortOptions = {}): Promise<JsonValue> {
    return this.#call(this.methods.getDefaultConfig, {}, options.signal);
  }

  /** Swaps the contents of a flash drive (`machine.replace_memory_range`): a file, or zeros when it is ''. */
  async replaceMemoryRange(range: { label?: string; start: bigint; length: bigint; dataFilename: string }, options: AbortOptions = {}): Promise<void> {
    const backing = { data_filename: range.dataFilename, shared: false, create: false, truncate: false };
    await this.#call(this.methods.replaceMemoryRange, { range: { ...(range.label === undefined ? {} : { label: range.label }), start: range.start, length: range.length, read_only: false, backing_store: backing } }, options.signal);
  }

  /** Reads physical memory (`machine.read_memory`), in calls of at most `chunk` bytes. */
  async readMemory(address: bigint, length: number, options: AbortOptions & { chunk?: number } = {}): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    const chunk = options.chunk ?? 16 * 1024 * 1024;
    for (let off = 0; off < length; off += chunk) {
      const n = Math.min(chunk, length - off);
      const bytes = fromBase64(this.methods.readMemory, await this.#call(this.methods.readMemory, { address: address + BigInt(off), length: n }, options.signal));
      if (bytes.byteLength !== n) throw new MachineRpcError(this.methods.readMemory, `Asked for ${n} bytes at 0x${(address + BigInt(off)).toString(16)}, got ${bytes.byteLength}`);
      out.set(bytes, off);
    }
    return out;
  }

  /** Stores the machine (`machine.store`); `sharing` is sent from 0.20 on. */
  async store(directory: string, options: AbortOptions & { sharing?: 'none' | 'config' | 'all' } = {}): Promise<void> {
    const params: Record<string, unknown> = { directory };
    if (this.methods.storeTakesSharing) params['sharing'] = options.sharing ?? 'all';
    await this.#call(this.methods.store, params, options.signal);
  }

  /** The machine's root hash (`machine.get_root_hash`, base64 on the wire). */
  async rootHash(options: AbortOptions = {}): Promise<Uint8Array> {
    return fromBase64(this.methods.getRootHash, await this.#call(this.methods.getRootHash, {}, options.signal));
  }

  /** Reads a register as an exact uint64 (`machine.read_reg`). */
  async readReg(reg: string, options: AbortOptions = {}): Promise<bigint> {
    return toUint64(this.methods.readReg, await this.#call(this.methods.readReg, { reg }, options.signal));
  }

  /**
   * Runs the machine, answering every GIO request, until it halts (or reaches `mcycleEnd`). Automatic
   * and soft yields and console output just run again; anything else is an error.
   */
  async run(options: RunOptions = {}): Promise<MachineRunResult> {
    const mcycleEnd = options.mcycleEnd ?? MCYCLE_MAX;
    if (mcycleEnd < 0n || mcycleEnd > MCYCLE_MAX) throw new InvalidConfigError(`mcycleEnd ${mcycleEnd} is not a uint64`);
    const signal = options.signal;
    const m = this.methods;
    let answered = 0;
    let answer: GioResponse | undefined;
    for (;;) {
      throwIfAborted(signal);
      this.stats.runs++;
      // One HTTP request per GIO round trip: the previous request's answer, the run to the next break, and
      // what the machine then asks (cartesi-jsonrpc-machine runs a batch in order). A receive that finds no
      // request (the machine halted) fails harmlessly and is ignored.
      const calls = [
        ...(answer === undefined ? [] : [{ method: m.sendCmioResponse, params: { reason: answer.code, data: Buffer.from(answer.data).toString('base64') } }]),
        { method: m.run, params: { mcycle_end: mcycleEnd } },
        { method: m.readReg, params: { reg: 'mcycle' } },
        m.receiveCmioRequest === undefined ? { method: m.readReg, params: { reg: 'htif_tohost' } } : { method: m.receiveCmioRequest, params: { length: CMIO_BUFFER_BYTES } },
      ];
      const replies = await this.#rpc.batch(calls, signal, m.run);
      const [reason, mcycleValue, request] = replies.slice(answer === undefined ? 0 : 1) as [JsonValue | MachineRpcError, JsonValue | MachineRpcError, JsonValue | MachineRpcError];
      if (answer !== undefined) {
        if (replies[0] instanceof MachineRpcError) throw replies[0];
        answer = undefined;
      }
      if (reason instanceof MachineRpcError) throw reason;
      if (typeof reason !== 'string' || !m.breakReasons.includes(reason)) {
        throw new MachineRpcError(m.run, `Unexpected break reason ${stringifyJsonBigInt(reason)} from emulator ${m.emulator}`);
      }
      switch (reason) {
        case 'halted':
        case 'reached_target_mcycle': {
          if (mcycleValue instanceof MachineRpcError) throw mcycleValue;
          const mcycle = toUint64(m.readReg, mcycleValue);
          this.#logger.debug('machine %s at mcycle %s after %d GIO requests', reason, String(mcycle), answered);
          return { breakReason: reason, mcycle, gioRequests: answered };
        }
        case 'yielded_automatically':
        case 'yielded_softly':
        case 'console_output':
          continue;
        case 'yielded_manually': {
          if (request instanceof MachineRpcError) throw request;
          const started = performance.now();
          const req = await this.#request(request, signal);
          answer = await this.#answer(req, signal);
          const ms = performance.now() - started;
          this.stats.hostMs += ms;
          this.stats.hostMsByDomain[req.reason] = (this.stats.hostMsByDomain[req.reason] ?? 0) + ms;
          answered++;
          continue;
        }
        case 'console_input':
          throw new MachineRpcError(m.run, 'The machine is waiting for console input, which this driver does not provide (run the guest without an interactive console)');
        default:
          throw new MachineRpcError(m.run, `The machine stopped with break reason ${reason}`);
      }
    }
  }

  /** Asks the server to exit (`shutdown`). */
  async shutdown(options: AbortOptions = {}): Promise<void> {
    await this.#call(this.methods.shutdown, {}, options.signal);
  }

  /** Releases the driver's own HTTP connections (not the machine). Idempotent. */
  close(): Promise<void> {
    return this.#rpc.close();
  }

  /** The request the batch read: 0.21's receive_cmio_request result, or 0.19/0.20's tohost word + the tx buffer. */
  async #request(value: JsonValue, signal: AbortSignal | undefined): Promise<CmioRequest> {
    const receive = this.methods.receiveCmioRequest;
    if (receive !== undefined) {
      // 0.21: asked for the whole tx buffer; the server trims the data to the request's real length
      // (cartesi-gio.md §1.6; seen on the real emulator), so no size probe is needed.
      const head = this.#requestHead(receive, value);
      const data = head.length === 0 ? new Uint8Array(0) : fromBase64(receive, isJsonObject(value) ? value['data'] : undefined);
      if (data.byteLength !== head.length) throw new MachineRpcError(receive, `The request holds ${head.length} bytes, got ${data.byteLength}`);
      return { cmd: head.cmd, reason: head.reason, data };
    }
    // 0.19 / 0.20: the tohost word (a uint64 above 2^53 for any manual yield), then the tx buffer (§1.6, §1.9).
    const { cmd, reason, data: length } = unpackHtifWord(toUint64(this.methods.readReg, value));
    if (length > CMIO_BUFFER_BYTES) throw new MachineRpcError(this.methods.readReg, `cmio request claims ${length} bytes (tx buffer is ${CMIO_BUFFER_BYTES})`);
    const data = length === 0 ? new Uint8Array(0) : fromBase64(this.methods.readMemory, await this.#call(this.methods.readMemory, { address: CMIO_TX_BUFFER_START, length }, signal));
    if (data.byteLength !== length) throw new MachineRpcError(this.methods.readMemory, `Asked for ${length} tx-buffer bytes, got ${data.byteLength}`);
    return { cmd, reason, data };
  }

  #requestHead(method: string, value: JsonValue): { cmd: number; reason: number; length: number } {
    if (!isJsonObject(value)) throw new MachineRpcError(method, `Expected an object, got ${stringifyJsonBigInt(value)}`);
    const cmd = toSmallInt(method, 'cmd', value['cmd']);
    const reason = toSmallInt(method, 'reason', value['reason']);
    const length = toSmallInt(method, 'available_length', value['available_length']);
    if (length > CMIO_BUFFER_BYTES) throw new MachineRpcError(method, `cmio request claims ${length} bytes (tx buffer is ${CMIO_BUFFER_BYTES})`);
    return { cmd, reason, length };
  }

  /** The answer to one request (sent with the next run); throws to abort the run unanswered. */
  async #answer(req: CmioRequest, signal: AbortSignal | undefined): Promise<GioResponse> {
    if (req.cmd !== HTIF_YIELD_CMD_MANUAL) {
      throw new MachineRpcError(this.methods.run, `Machine yielded manually but tohost holds yield command ${req.cmd}`);
    }
    if (req.reason === HTIF_YIELD_MANUAL_REASON_TX_EXCEPTION) {
      throw new MachineRpcError(this.methods.run, `The guest raised a cmio exception: ${new TextDecoder().decode(req.data)}`);
    }
    if (req.reason === HTIF_YIELD_MANUAL_REASON_RX_ACCEPTED || req.reason === HTIF_YIELD_MANUAL_REASON_RX_REJECTED) {
      throw new MachineRpcError(this.methods.run, `The guest made a rollups yield (reason ${req.reason}); this driver answers only GIO requests`);
    }
    let response: GioResponse;
    const handler = this.#handlers.get(req.reason);
    try {
      if (handler === undefined) {
        const known = [...this.#handlers.keys()].map((d) => `0x${d.toString(16)}`).join(', ');
        throw new DeviceError(`Unknown GIO domain 0x${req.reason.toString(16)} (this host answers ${known})`);
      }
      response = await handler(req.data, signal);
      this.stats.bytes += response.data.byteLength;
    } catch (err) {
      if (!(err instanceof DeviceError)) throw err; // abort the run
      this.#logger.warn('refusing GIO request in band: %s', err.message);
      response = gioErrorResponse(err);
      this.stats.refused++;
    }
    this.stats.byDomain[req.reason] = (this.stats.byDomain[req.reason] ?? 0) + 1;
    this.stats.gioRequests++;
    // A GIO answer never carries revert_root_hash (0.21, cartesi-gio.md §1.5); the code is never 0.
    return response;
  }

  #call(method: string, params: Record<string, unknown>, signal: AbortSignal | undefined): Promise<JsonValue> {
    return this.#rpc.call(method, params, signal);
  }
}
