/**
 * The proxy front's limits on its clients (issue 13, defect 4): a connection that never finishes its request
 * head, one on which nothing moves, and more connections than the process has file descriptors for. Without
 * them 1,100 idle sockets (open-file limit 1,024) locked every client out for as long as they were held.
 *
 * - **Header timeout**: a new connection (or a tunnel, from CONNECT to its TLS handshake and first request)
 *   must deliver a complete request head within `headerTimeoutMs`; otherwise 408 and close (Node's
 *   `headersTimeout`, checked often enough to matter, plus the wait for a tunnel's first byte).
 * - **Idle timeout**: a connection on which no byte moves for `idleTimeoutMs` is closed, unless one of its
 *   requests is waiting for the origin (the upstream timeout bounds that wait): a keep-alive connection
 *   between requests, a client that stopped sending its request body, or one that stopped reading its answer.
 * - **Connection cap**: beyond `maxConnections` client connections a new one is answered 503 with
 *   `x-oracle-error: ORACLE_ERR_OVERLOADED` and closed at once (logged, at most once a second), well before the
 *   open-file limit: each client connection may need a second descriptor upstream and more for the store.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { OverloadedError } from '../errors.ts';
import type { Logger } from '../log.ts';

/** Default for `--header-timeout`. */
export const DEFAULT_HEADER_TIMEOUT_MS = 30_000;
/** Default for `--idle-timeout`. */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/** Longest a kept-alive connection waits for its next request (never longer than the idle timeout). */
const KEEP_ALIVE_TIMEOUT_MS = 30_000;
/** Descriptors kept back from the cap for the store, the journal, the index, spool files and the admin API. */
const RESERVED_DESCRIPTORS = 128;

export interface ProxyLimits {
  /** A complete request head within this, from connect (or from CONNECT for a tunnel). @default 30 s */
  headerTimeoutMs?: number;
  /** Close a connection on which no byte moves for this long (unless a request on it waits for the origin). @default 60 s */
  idleTimeoutMs?: number;
  /** Most client connections at once; more are refused with 503. @default from the open-file limit ((limit − 128) / 2: 448 for 1,024) */
  maxConnections?: number;
}

/** The soft open-file limit of this process (Linux `/proc/self/limits`), or undefined where it cannot be read. */
export function openFileLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m === null) return undefined;
    return m[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** Default for `--max-connections`: two descriptors per client connection (it and its upstream), after a reserve. */
export function defaultMaxConnections(limit = openFileLimit()): number {
  if (limit === undefined) return 512;
  return Math.max(16, Math.min(4096, Math.floor((limit - RESERVED_DESCRIPTORS) / 2)));
}

/** The limits with every default filled in. */
export function resolveLimits(limits: ProxyLimits = {}): Required<ProxyLimits> {
  return {
    headerTimeoutMs: limits.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS,
    idleTimeoutMs: limits.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    maxConnections: limits.maxConnections ?? defaultMaxConnections(),
  };
}

/** `node:http` server options for these limits (requests themselves have no overall deadline: uploads may be large). */
export function serverOptions(limits: Required<ProxyLimits>): ServerOptions {
  return {
    headersTimeout: limits.headerTimeoutMs,
    requestTimeout: 0,
    keepAliveTimeout: Math.min(KEEP_ALIVE_TIMEOUT_MS, limits.idleTimeoutMs),
    // Node checks header deadlines on this period (30 s by default, which would double a short timeout).
    connectionsCheckingInterval: sweepInterval(limits),
  };
}

function sweepInterval(limits: Required<ProxyLimits>): number {
  return Math.max(25, Math.min(1000, Math.floor(Math.min(limits.headerTimeoutMs, limits.idleTimeoutMs) / 4)));
}

/** The answer to a client error Node reports: 408 for a request head that did not arrive in time. */
export function isHeaderTimeout(err: NodeJS.ErrnoException): boolean {
  return err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
}

interface Connection {
  raw: Socket;
  /** Sockets carried inside it (a CONNECT tunnel's TLS socket or stream); their counters count as its activity. */
  inner: Array<Socket | Duplex>;
  /**
   * Its requests not yet answered, oldest first (more than one only when pipelined). Answered ones are
   * dropped when the next request comes: no close listener per request (issue #15).
   */
  exchanges: Array<{ req: IncomingMessage; res: ServerResponse }>;
  bytes: number;
  lastMoved: number;
  /** Whether a request head has arrived on it: before that, the header timeout (a 408) governs it. */
  requested: boolean;
}

function counters(s: Socket | Duplex): number {
  const c = s as Partial<Socket>;
  return (c.bytesRead ?? 0) + (c.bytesWritten ?? 0);
}

/**
 * Enforces the limits on one HTTP server: counts client connections (re-emitted tunnel sockets are not new
 * connections), refuses those beyond the cap, and closes idle ones.
 */
export class ConnectionLimiter {
  readonly limits: Required<ProxyLimits>;
  readonly #logger: Logger;
  readonly #isTunnelled: (socket: Socket) => boolean;
  readonly #connections = new Map<Socket, Connection>();
  /** Inner (tunnelled) socket → the connection that carries it. */
  readonly #carrier = new WeakMap<object, Connection>();
  readonly #refused = new WeakSet<object>();
  readonly #sweeper: NodeJS.Timeout;
  #refusedSinceLog = 0;
  #lastRefusalLog = 0;

  constructor(server: Server, limits: Required<ProxyLimits>, logger: Logger, isTunnelled: (socket: Socket) => boolean) {
    this.limits = limits;
    this.#logger = logger;
    this.#isTunnelled = isTunnelled;
    // Before the HTTP server's own listener: a refused socket is answered before anything reads from it.
    server.prependListener('connection', (socket: Socket) => this.#onConnection(socket));
    this.#sweeper = setInterval(() => this.#sweep(), sweepInterval(limits));
    this.#sweeper.unref();
  }

  /** Client connections open now. */
  get size(): number {
    return this.#connections.size;
  }

  /** Whether `socket` was refused (its requests are dropped: it already has its 503). */
  refused(socket: object): boolean {
    return this.#refused.has(socket);
  }

  /** Records that `inner` (a tunnel's TLS socket or stream) is carried by `raw`. */
  adopt(inner: Socket | Duplex, raw: Socket): void {
    const conn = this.#connections.get(raw);
    if (conn === undefined) return;
    conn.inner.push(inner);
    this.#carrier.set(inner, conn);
  }

  /** Tracks a request until its response closes (a connection with a request waiting on the origin is not idle). */
  track(req: IncomingMessage, res: ServerResponse): void {
    const conn = this.#carrier.get(req.socket) ?? this.#connections.get(req.socket);
    if (conn === undefined) return;
    conn.requested = true;
    const { exchanges } = conn;
    while (exchanges.length > 0 && exchanges[0]!.res.writableEnded) exchanges.shift();
    exchanges.push({ req, res });
  }

  /** Notes that a request head arrived on `socket` (answered without Node's server): the idle timeout governs it now. */
  requested(socket: Socket): void {
    const conn = this.#carrier.get(socket) ?? this.#connections.get(socket);
    if (conn !== undefined) conn.requested = true;
  }

  close(): void {
    clearInterval(this.#sweeper);
  }

  #onConnection(socket: Socket): void {
    if (this.#isTunnelled(socket) || this.#carrier.has(socket)) return;
    if (this.#connections.size >= this.limits.maxConnections) {
      this.#refuse(socket);
      return;
    }
    const conn: Connection = { raw: socket, inner: [], exchanges: [], bytes: 0, lastMoved: Date.now(), requested: false };
    this.#connections.set(socket, conn);
    socket.once('close', () => this.#connections.delete(socket));
  }

  #refuse(socket: Socket): void {
    this.#refused.add(socket);
    socket.on('error', () => {});
    const err = new OverloadedError(`fetch-oracle is at its connection limit (${this.limits.maxConnections} open connections; --max-connections); try again later`);
    const body = `${err.message}\n`;
    socket.end(
      `HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-oracle-error: ${err.code}\r\nretry-after: 1\r\nconnection: close\r\n\r\n${body}`,
    );
    socket.destroySoon();
    this.#refusedSinceLog++;
    const now = Date.now();
    if (now - this.#lastRefusalLog >= 1000) {
      this.#logger.warn('connection limit reached (%d open, --max-connections %d): refused %d connection(s) with 503 ORACLE_ERR_OVERLOADED', this.#connections.size, this.limits.maxConnections, this.#refusedSinceLog);
      this.#lastRefusalLog = now;
      this.#refusedSinceLog = 0;
    }
  }

  #sweep(): void {
    const now = Date.now();
    for (const conn of this.#connections.values()) {
      let bytes = counters(conn.raw);
      for (const s of conn.inner) bytes += counters(s);
      if (bytes !== conn.bytes) {
        conn.bytes = bytes;
        conn.lastMoved = now;
        continue;
      }
      // Until its first request head, a connection is the header timeout's to close (with a 408 saying why); the
      // idle sweep only backs it up, later, so that a short idle timeout cannot close it silently first.
      const idleFor = conn.requested ? this.limits.idleTimeoutMs : this.limits.headerTimeoutMs + this.limits.idleTimeoutMs;
      if (now - conn.lastMoved < idleFor || waitsOnOrigin(conn)) continue;
      this.#logger.debug('closing connection from %s: nothing moved for %d ms (--idle-timeout)', conn.raw.remoteAddress ?? '?', now - conn.lastMoved);
      for (const s of conn.inner) s.destroy();
      conn.raw.destroy();
    }
  }
}

/**
 * Whether a request on the connection waits for the origin (or the store): its request is complete and its
 * answer is not held up by the client. A client that stopped sending or reading is what the idle timeout is for.
 */
function waitsOnOrigin(conn: Connection): boolean {
  for (const { req, res } of conn.exchanges) {
    if (req.complete && !res.writableEnded && !res.writableNeedDrain) return true;
  }
  return false;
}
