/**
 * What the upstream client needs beyond undici's defaults to be safe under a hostile or flaky origin
 * (issue 13, defects 2, 4 and 9):
 *
 * - **A paused parser at end of stream** (nodejs/undici#5360): when the proxy reads a body more slowly than the
 *   origin sends it, undici's HTTP/1 parser pauses; if the origin's FIN is read with its last bytes, the socket's
 *   `end` (or `close`) handler calls `Parser.finish()`, which asserts `!this.paused` and kills the process with an
 *   uncatchable AssertionError. Upstream fixed it in undici 8 (nodejs/undici#5474: finish resumes the parser and
 *   drives it past what it holds), which needs Node 22. On undici 7 `guardedConnector` does the same from the
 *   outside: it listens for `end` and `close` before undici does and, when the parser is paused, resumes it and
 *   feeds it what is left (the stream has ended, so that is at most what the socket still buffers). A
 *   Content-Length or chunked body then completes (or fails as short), an EOF-delimited body is completed by
 *   undici's own `finish()` right after. Backpressure is only advisory at that point: the body stream buffers
 *   the last bytes it is given.
 * - **Timeouts that answer**: a stall before the first body byte becomes an error of `fetch()` (so the client
 *   gets a 504 instead of a head followed by nothing); timeouts become `UpstreamTimeoutError` (never recorded).
 * - **Never itself**: a connection whose peer is one of the oracle's own listening sockets (its proxy or admin
 *   port, reached through any name or alias) is refused before a byte is sent.
 */
import type { Socket } from 'node:net';
import type { buildConnector } from 'undici';
import { AbortedError, ForbiddenTargetError, UpstreamError, UpstreamTimeoutError } from '../errors.ts';
import { StartedBody } from '../io/started-body.ts';

/** Default for `--upstream-timeout`: connect, response head, and every gap between body bytes. */
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 60_000;
/** undici's own connect timeout; a shorter upstream timeout lowers it. */
const CONNECT_TIMEOUT_MS = 10_000;

export interface UpstreamPolicy {
  /** Longest wait for a connection, a response head, or the next body bytes. @default DEFAULT_UPSTREAM_TIMEOUT_MS */
  timeoutMs?: number;
  /**
   * Says why a connected peer must not be talked to (the oracle's own proxy or admin socket), or undefined.
   * Checked on every new upstream connection, after DNS, so no name leads back into the oracle.
   */
  refuse?: (address: string, port: number) => string | undefined;
}

/** The undici timeouts a policy gives. */
export function undiciTimeouts(policy: UpstreamPolicy = {}): { headersTimeout: number; bodyTimeout: number; connectTimeout: number } {
  const t = policy.timeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;
  return { headersTimeout: t, bodyTimeout: t, connectTimeout: Math.min(t, CONNECT_TIMEOUT_MS) };
}

const EMPTY = Buffer.alloc(0);
/** More rounds than any body needs: each round either completes the message or has nothing left to parse. */
const MAX_RESUME_ROUNDS = 64;

/** The part of undici 7's HTTP/1 `Parser` (lib/dispatcher/client-h1.js) the guard drives. */
interface H1Parser {
  paused: boolean;
  /** Status of the response being parsed; 0 between responses (after one completed, nothing is left to finish). */
  statusCode: number;
  ptr: number | null;
  llhttp: { llhttp_resume(ptr: number): void };
  execute(chunk: Buffer): void;
}

/** undici keeps its parser on the socket under a private `Symbol('parser')`; found by description. */
function parserOf(socket: Socket): H1Parser | undefined {
  for (const symbol of Object.getOwnPropertySymbols(socket)) {
    if (symbol.description !== 'parser') continue;
    const p = (socket as unknown as Record<symbol, unknown>)[symbol] as Partial<H1Parser> | null | undefined;
    if (p !== null && typeof p === 'object' && typeof p.paused === 'boolean' && typeof p.execute === 'function' && typeof p.llhttp?.llhttp_resume === 'function') {
      return p as H1Parser;
    }
  }
  return undefined;
}

/**
 * Resumes a parser that undici left paused on a socket that has ended or closed, and feeds it what the socket
 * still holds, so undici's `finish()` never meets a paused parser. Exported for tests.
 */
export function completePausedParser(socket: Socket): void {
  const parser = parserOf(socket);
  if (parser === undefined || !parser.paused || !(parser.statusCode > 0)) return;
  for (let round = 0; round < MAX_RESUME_ROUNDS && parser.paused && parser.ptr !== null; round++) {
    parser.llhttp.llhttp_resume(parser.ptr);
    parser.paused = false;
    const chunk = (socket.readableLength > 0 ? (socket.read() as Buffer | null) : null) ?? EMPTY;
    parser.execute(chunk); // a body push that still says "full" pauses it again; the next round resumes it
  }
  if (parser.paused) socket.destroy(new Error('HTTP/1 parser still paused after the upstream closed'));
}

function connectError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/**
 * Wraps an undici connector: every socket it opens is checked against `policy.refuse` (direct connections
 * only: through a CONNECT proxy the peer is the proxy) and guarded against the paused-parser crash.
 */
export function guardedConnector(inner: buildConnector.connector, policy: UpstreamPolicy & { direct: boolean }): buildConnector.connector {
  return (options, callback) => {
    inner(options, (...args) => {
      const [err, socket] = args;
      if (err !== null) {
        callback(err, null);
        return;
      }
      const why = policy.direct && socket.remoteAddress !== undefined && socket.remotePort !== undefined ? policy.refuse?.(socket.remoteAddress, socket.remotePort) : undefined;
      if (why !== undefined) {
        socket.destroy();
        callback(connectError('ORACLE_SELF_TARGET', why), null);
        return;
      }
      // Before undici's own listeners (added once this callback returns): they call finish().
      socket.prependListener('end', () => completePausedParser(socket));
      socket.prependListener('close', () => completePausedParser(socket));
      callback(null, socket);
    });
  };
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * The error `fetch()` throws for a failure before the response could be used: a timeout (never recorded),
 * the oracle's own address (refused, never recorded), an abort by the caller, or any other upstream failure
 * (recorded as the 502 the client saw).
 */
export function upstreamFailure(what: string, cause: unknown, signal: { readonly aborted: boolean } | undefined, reason: string, detail: string): Error {
  const e = cause as { code?: string; cause?: { code?: string } };
  if (e.code === 'ORACLE_SELF_TARGET' || e.cause?.code === 'ORACLE_SELF_TARGET') return new ForbiddenTargetError(`${what} refused: ${(cause as Error).message}`);
  if (signal?.aborted === true) return new AbortedError(`${what} aborted`);
  if (TIMEOUT_CODES.has(e.code ?? '') || TIMEOUT_CODES.has(e.cause?.code ?? '')) {
    return new UpstreamTimeoutError(`${what} timed out: ${detail}; nothing recorded`, { cause, reason });
  }
  return new UpstreamError(`${what} failed: ${detail}`, { cause, reason });
}

/** A response body as the record path reads it. */
export type UpstreamBody = AsyncIterable<Uint8Array> & { destroy(err?: Error): void };

/**
 * Waits for the body's first bytes (or its end) before the response is handed on, so a stall between the head
 * and the body is an error of the fetch, answered before the client has a head. undici's body timeout bounds
 * the wait. Resolves with a body that yields those bytes first.
 */
export async function withFirstChunk(body: UpstreamBody): Promise<UpstreamBody> {
  const it = body[Symbol.asyncIterator]();
  return new FirstChunkBody(body, it, await it.next());
}

/** The body `withFirstChunk` hands on: a started body that can still be destroyed. */
class FirstChunkBody extends StartedBody {
  readonly #body: UpstreamBody;

  constructor(body: UpstreamBody, it: AsyncIterator<Uint8Array>, first: IteratorResult<Uint8Array>) {
    super(it, first);
    this.#body = body;
  }

  destroy(err?: Error): void {
    this.#body.destroy(err);
  }
}
