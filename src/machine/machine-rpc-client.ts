import { Agent, request } from 'undici';
import type { Dispatcher } from 'undici';
import { InvalidConfigError, throwIfAborted } from '../errors.ts';
import { parseJsonBigInt, stringifyJsonBigInt } from './bigint-json.ts';
import type { JsonValue } from './bigint-json.ts';
import { MachineRpcError } from './machine-rpc-error.ts';

/** The largest uint64, beyond Number precision: such values travel as bare integer literals. */
export const UINT64_MAX = 0xffff_ffff_ffff_ffffn;

export interface MachineRpcClientInit {
  /** Base URL of `cartesi-jsonrpc-machine --server-address=HOST:PORT`, e.g. `http://127.0.0.1:5007`. Requests go to `/`. */
  url: string;
  /**
   * undici dispatcher for the connection. @default an Agent with headers/body timeouts off: one
   * `machine.run` lasts until the guest's next yield, which can be minutes of build.
   */
  dispatcher?: Dispatcher;
}

/**
 * JSON-RPC 2.0 over HTTP to `cartesi-jsonrpc-machine`, with BigInt-safe JSON (uint64 registers and mcycles
 * travel as bare integers). Every failure (transport, HTTP status, unreadable reply, JSON-RPC error) is a
 * MachineRpcError naming the method.
 */
export class MachineRpcClient {
  readonly url: string;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  #nextId = 1;
  #closed = false;

  constructor(init: MachineRpcClientInit) {
    this.url = rpcUrl(init.url);
    this.#ownsDispatcher = init.dispatcher === undefined;
    this.#dispatcher = init.dispatcher ?? new Agent({ headersTimeout: 0, bodyTimeout: 0 });
  }

  /** Calls `method` with named `params` and returns its `result`. */
  call(method: string, params: Record<string, unknown>, signal?: AbortSignal): Promise<JsonValue> {
    return rpcCall(this.url, this.#dispatcher, this.#nextId++, method, params, signal);
  }

  /**
   * Calls several methods in one HTTP request (a JSON-RPC 2.0 batch; cartesi-jsonrpc-machine runs them in
   * order, cartesi-gio.md §1.9). Each answer is its result or the MachineRpcError it failed with, in the
   * order of `calls`; a transport failure or an unreadable reply throws, naming `label` (default: the methods).
   */
  batch(calls: ReadonlyArray<{ method: string; params: Record<string, unknown> }>, signal?: AbortSignal, label?: string): Promise<Array<JsonValue | MachineRpcError>> {
    const first = this.#nextId;
    this.#nextId += calls.length;
    return rpcBatch(this.url, this.#dispatcher, first, calls, signal, label ?? calls.map((c) => c.method).join('+'));
  }

  /** Releases the client's own HTTP connections (a dispatcher passed in stays open). Idempotent. */
  async close(): Promise<void> {
    if (!this.#ownsDispatcher || this.#closed) return;
    this.#closed = true;
    await this.#dispatcher.close();
  }
}

async function post(url: string, dispatcher: Dispatcher, method: string, body: string, signal: AbortSignal | undefined): Promise<JsonValue> {
  let text: string;
  let status: number;
  try {
    const res = await request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      dispatcher,
      ...(signal === undefined ? {} : { signal }),
    });
    status = res.statusCode;
    text = await res.body.text();
  } catch (err) {
    throwIfAborted(signal);
    throw new MachineRpcError(method, `JSON-RPC ${method} to ${url} failed: ${(err as Error).message}`, { cause: err });
  }
  if (status !== 200) throw new MachineRpcError(method, `JSON-RPC ${method}: HTTP ${status}: ${text.slice(0, 200)}`);
  try {
    return parseJsonBigInt(text);
  } catch (err) {
    throw new MachineRpcError(method, `JSON-RPC ${method}: unreadable reply: ${(err as Error).message}`, { cause: err });
  }
}

async function rpcCall(url: string, dispatcher: Dispatcher, id: number, method: string, params: Record<string, unknown>, signal: AbortSignal | undefined): Promise<JsonValue> {
  throwIfAborted(signal);
  const reply = await post(url, dispatcher, method, stringifyJsonBigInt({ jsonrpc: '2.0', id, method, params }), signal);
  const answer = answerOf(method, id, reply);
  if (answer instanceof MachineRpcError) throw answer;
  return answer;
}

async function rpcBatch(url: string, dispatcher: Dispatcher, first: number, calls: ReadonlyArray<{ method: string; params: Record<string, unknown> }>, signal: AbortSignal | undefined, names: string): Promise<Array<JsonValue | MachineRpcError>> {
  throwIfAborted(signal);
  const reply = await post(url, dispatcher, names, stringifyJsonBigInt(calls.map((c, i) => ({ jsonrpc: '2.0', id: first + i, method: c.method, params: c.params }))), signal);
  if (!Array.isArray(reply)) {
    const single = answerOf(names, undefined, reply);
    throw single instanceof MachineRpcError ? single : new MachineRpcError(names, `JSON-RPC batch ${names}: the reply is not an array`);
  }
  return calls.map((c, i) => {
    const id = first + i;
    const item = reply.find((r) => isJsonObject(r) && r['id'] === id);
    return item === undefined ? new MachineRpcError(c.method, `JSON-RPC ${c.method}: no answer to request ${id} in the batch reply`) : answerOf(c.method, id, item);
  });
}

/** The result of one reply object, or the MachineRpcError it carries (`id` undefined: any id). */
function answerOf(method: string, id: number | undefined, reply: JsonValue): JsonValue | MachineRpcError {
  if (!isJsonObject(reply) || (id !== undefined && reply['id'] !== id)) return new MachineRpcError(method, `JSON-RPC ${method}: reply is not the answer to request ${id}: ${stringifyJsonBigInt(reply).slice(0, 200)}`);
  const error = reply['error'];
  if (error !== undefined && error !== null) {
    const code = isJsonObject(error) && typeof error['code'] === 'number' ? error['code'] : undefined;
    const message = isJsonObject(error) && typeof error['message'] === 'string' ? error['message'] : stringifyJsonBigInt(error);
    return new MachineRpcError(method, `JSON-RPC ${method} failed${code === undefined ? '' : ` (${code})`}: ${message}`, code === undefined ? {} : { rpcCode: code });
  }
  if (!('result' in reply)) return new MachineRpcError(method, `JSON-RPC ${method}: reply has neither result nor error`);
  return reply['result']!;
}

function rpcUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidConfigError(`Invalid JSON-RPC machine URL ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'http:') throw new InvalidConfigError(`JSON-RPC machine URL must be http:, got ${url}`);
  // The server answers POST on `/` only (cartesi-gio.md §1.9).
  parsed.pathname = '/';
  parsed.search = '';
  parsed.hash = '';
  return parsed.toString();
}

export function isJsonObject(value: JsonValue | undefined): value is { [key: string]: JsonValue } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function toUint64(method: string, value: JsonValue): bigint {
  if (typeof value === 'bigint' && value >= 0n && value <= UINT64_MAX) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  throw new MachineRpcError(method, `Expected a uint64, got ${stringifyJsonBigInt(value)}`);
}

export function toSmallInt(method: string, field: string, value: JsonValue | undefined): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  throw new MachineRpcError(method, `Field ${field}: expected a non-negative integer, got ${value === undefined ? 'nothing' : stringifyJsonBigInt(value)}`);
}

export function fromBase64(method: string, value: JsonValue | undefined): Uint8Array {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
    throw new MachineRpcError(method, `Expected base64 bytes, got ${value === undefined ? 'nothing' : stringifyJsonBigInt(value).slice(0, 80)}`);
  }
  return new Uint8Array(Buffer.from(value, 'base64'));
}
