import type { CID } from 'multiformats/cid';
import { AbortedError, BlockMissingError, OracleError, StoreError } from '../errors.ts';

/** A non-2xx answer of the RPC API, or a 200 whose stream ended with an `X-Stream-Error` trailer. */
export class KuboHttpError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.name = 'KuboHttpError';
    this.status = status;
  }
}

/** What an error names: the RPC operation, the daemon, and what the caller asked for. */
export interface KuboErrorContext {
  /** RPC path, e.g. `block/put`. */
  op: string;
  cid: CID | undefined;
  /** `Kubo at http://…` */
  description: string;
  /** The caller's signal: when it fired, the failure is the caller's abort, not the daemon's. */
  caller: AbortSignal | undefined;
  /** The limit the call ran under, for the timeout message. */
  timeoutMs: number;
}

/** StoreErrors that mean the daemon is down, restarting or hanging (not a refusal of one block). */
const UNREACHABLE = new WeakSet<object>();

/** True for an error `kuboError` made because the daemon did not answer at all. */
export function isUnreachable(err: unknown): boolean {
  return typeof err === 'object' && err !== null && UNREACHABLE.has(err);
}

/**
 * Maps a failure of a Kubo call to the error a caller branches on: AbortedError, BlockMissingError (Kubo
 * lacks the block, or a block of its DAG), or StoreError; every message names the daemon's URL.
 */
export function kuboError(err: unknown, context: KuboErrorContext): OracleError {
  const { op, cid, description, caller, timeoutMs } = context;
  if (err instanceof OracleError) return err;
  const what = `${op}${cid === undefined ? '' : ` ${cid}`}`;
  if (caller?.aborted === true) return new AbortedError(`${what} on ${description} was aborted`);
  const e = err as Error & { name?: string };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') {
    return unreachable(new StoreError(`${description} did not answer ${what} within ${timeoutMs} ms (is the daemon up?)`, { cause: err }));
  }
  const message = e.message ?? String(err);
  const fromKubo = e.name === 'HTTPError' || err instanceof KuboHttpError;
  // Kubo: "block was not found locally (offline): ipld: could not find <cid>" (the CID may be a child's).
  if (fromKubo && /not found|could not find/i.test(message)) {
    const which = /could not find (\S+)/.exec(message)?.[1] ?? cid?.toString() ?? '';
    return new BlockMissingError(which, `Block ${which} is not in ${description}`);
  }
  if (fromKubo) return new StoreError(`${description} failed ${what}: ${message}`, { cause: err });
  if (isConnectionError(err)) {
    return unreachable(new StoreError(`${description} is unreachable (${connectionCode(err)}) during ${what}; is the daemon running?`, { cause: err }));
  }
  return new StoreError(`${description} failed ${what}: ${message}`, { cause: err });
}

function unreachable(err: StoreError): StoreError {
  UNREACHABLE.add(err);
  return err;
}

/** The `Message` of Kubo's JSON error body, else the start of the text. */
export function kuboMessage(text: string): string {
  try {
    const v = JSON.parse(text) as { Message?: unknown };
    if (typeof v.Message === 'string') return v.Message;
  } catch {
    // not JSON: use the text
  }
  return text.slice(0, 500);
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'ERR_STREAM_PREMATURE_CLOSE']);

/** The network failure behind `err` (its own code or one in its cause chain), or '' when it is not one. */
function connectionCode(err: unknown): string {
  for (let e: unknown = err, depth = 0; typeof e === 'object' && e !== null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && CONNECTION_CODES.has(code)) return code;
    if (typeof message === 'string' && /socket hang up|other side closed/.test(message)) return message;
  }
  // undici's fetch wraps every network failure in TypeError('fetch failed').
  return err instanceof TypeError && err.message === 'fetch failed' ? 'fetch failed' : '';
}

/** A failure to reach the daemon at all (refused, reset, timed out at the socket, name not resolved). */
export function isConnectionError(err: unknown): boolean {
  return connectionCode(err) !== '';
}
