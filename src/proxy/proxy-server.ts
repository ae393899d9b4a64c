import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { SecureContext } from 'node:tls';
import { BadRequestError, OracleError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { loggableUrl } from '../protocol/request-key.ts';
import type { ExchangeHandler } from './exchange.ts';
import { sendError } from './exchange.ts';
import { listenOn } from '../io/listen.ts';
import type { ListenAddress } from '../io/listen.ts';

export type { ListenAddress } from '../io/listen.ts';
import { HitFront } from './hit-front.ts';
import { ConnectionLimiter, isHeaderTimeout, resolveLimits, serverOptions } from './limits.ts';
import type { ProxyLimits } from './limits.ts';
import { ProxyGate, stripProxyAuthorization } from '../config/exposure.ts';
import type { Refusal } from '../config/exposure.ts';

/** Largest request head accepted; larger heads get 431 (Node's default is 16 KiB). */
export const MAX_HEADER_BYTES = 64 * 1024;
/** Most header fields accepted in one request; more get 431 (Node would drop the extra ones silently). */
export const MAX_HEADER_COUNT = 256;
/** On close, how long requests already being answered (and recorded) may take to finish. */
export const DRAIN_TIMEOUT_MS = 30_000;

/** Mints TLS server contexts per host for CONNECT interception. */
export interface ContextProvider {
  secureContextFor(hostname: string): Promise<SecureContext>;
}

export interface ProxyServerInit {
  handler: ExchangeHandler;
  certs: ContextProvider;
  logger: Logger;
  /** Header and idle timeouts, connection cap (src/proxy/limits.ts). @default 30 s, 60 s, from the open-file limit */
  limits?: ProxyLimits;
  /** Proxy credentials and the oracle's own addresses (src/config/exposure.ts). @default no credentials, no self-check */
  gate?: ProxyGate;
}

/** Where a tunnelled socket's requests go: set on the socket we re-emit into the HTTP server. */
const tunnelTarget = new WeakMap<Socket, { scheme: 'http' | 'https'; authority: string }>();

/** Parses a CONNECT target `host:port` (`[v6]:port` too); throws BadRequestError for anything else. */
export function parseConnectTarget(target: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(target);
  if (m === null) throw new BadRequestError(`Invalid CONNECT target ${JSON.stringify(target.slice(0, 200))} (expected host:port)`);
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new BadRequestError(`Invalid CONNECT port ${m[2]} (expected 1-65535)`);
  return { host: m[1]!, port };
}

/** An error a handler put on the connection (`res.destroy(err)` with an oracle error) or a reset/broken pipe. */
function isOwnOrSocketError(err: NodeJS.ErrnoException): boolean {
  return err instanceof OracleError || err.code?.startsWith('ORACLE_ERR_') === true || err.code === 'ECONNRESET' || err.code === 'EPIPE';
}

function rejectSocket(socket: Socket, status: number, reason: string, message: string, headers: Record<string, string> = {}): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = `${message}\n`;
  const extra = Object.entries(headers).map(([n, v]) => `${n}: ${v}\r\n`).join('');
  socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}connection: close\r\n\r\n${body}`);
}

/** 408 and close: a connection whose request head did not come within the header timeout. */
function answerHeaderTimeout(socket: Socket, headerTimeoutMs: number, logger: Logger): void {
  logger.debug('closing a connection whose request head did not arrive within %d ms', headerTimeoutMs);
  rejectSocket(socket, 408, 'Request Timeout', `No complete request head within ${headerTimeoutMs} ms (--header-timeout)`);
}

function rejectWith(socket: Socket, refusal: Refusal): void {
  rejectSocket(socket, refusal.status, refusal.reason, refusal.error.message, { 'x-oracle-error': refusal.error.code, ...refusal.headers });
}

/**
 * The proxy front: absolute-form HTTP requests and CONNECT tunnels. A tunnel whose first byte is a TLS
 * handshake is terminated with a leaf for the target host; a tunnel carrying plain HTTP is read as is.
 * Either way the inner requests are re-emitted into the same HTTP server (the technique of mockttp's
 * http-combo-server), so one code path serves every request.
 */
export class ProxyServer {
  readonly #init: ProxyServerInit;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #active = new Set<Promise<void>>();
  readonly #limiter: ConnectionLimiter;
  readonly #gate: ProxyGate;
  /** Reads new connections first when the handler answers some requests at once (replay). */
  readonly #front: HitFront | undefined;
  #closed: Promise<void> | undefined;

  constructor(init: ProxyServerInit) {
    this.#init = init;
    const limits = resolveLimits(init.limits);
    this.#gate = init.gate ?? new ProxyGate({ self: () => [] });
    const options = serverOptions(limits);
    this.#server = createServer({ maxHeaderSize: MAX_HEADER_BYTES, ...options });
    this.#server.maxHeadersCount = MAX_HEADER_COUNT + 1;
    this.#front = this.#frontFor(init.handler, options.keepAliveTimeout!, limits.headerTimeoutMs);
    // A client may send its request and half-close (`printf … | nc -N`, `curl --http1.0`-style scripts): Node's
    // default aborts the request at that FIN, so it got no answer at all. Answered instead; the connection is
    // ended after that answer. (A long-standing Server field, not in @types/node.)
    (this.#server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
    this.#limiter = new ConnectionLimiter(this.#server, limits, init.logger, (s) => tunnelTarget.has(s));
    this.#server.on('request', (req, res) => this.#onRequest(req, res));
    this.#server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => void this.#onConnect(req, socket, head));
    this.#server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    this.#server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      if (isOwnOrSocketError(err)) {
        // Not the client's request: an answer this proxy failed after its head (a full disk, a corrupt block;
        // its handler logged why) or the client's socket going away. Nothing to answer on that connection.
        init.logger.debug('client connection closed: %s', err.message);
        socket.destroy();
        return;
      }
      if (isHeaderTimeout(err)) {
        answerHeaderTimeout(socket, limits.headerTimeoutMs, init.logger);
        return;
      }
      const overflow = err.code === 'HPE_HEADER_OVERFLOW';
      init.logger.warn('bad request from client: %s', err.message);
      rejectSocket(socket, overflow ? 431 : 400, overflow ? 'Request Header Fields Too Large' : 'Bad Request',
        overflow ? `Request head exceeds ${MAX_HEADER_BYTES} bytes` : `Malformed HTTP request: ${err.message}`);
    });
  }

  /**
   * The front that answers plain requests at once, when the handler can (`hit-front.ts`), put in the place
   * of Node's own reading of a new connection: of the proxy's own, unless the gate must check credentials on
   * each request, and of TLS tunnels (their CONNECT was checked).
   */
  #frontFor(handler: ExchangeHandler, keepAliveTimeoutMs: number, headerTimeoutMs: number): HitFront | undefined {
    const answer = handler.answerPlain;
    const server = this.#server;
    // Node's HTTP server reads a connection in the one 'connection' listener it adds to itself.
    const [nodeReads, ...others] = server.listeners('connection') as Array<(socket: Duplex) => void>;
    if (answer === undefined || nodeReads === undefined || others.length > 0) return undefined;
    server.removeListener('connection', nodeReads);
    const front = new HitFront({
      answer: (request, headEnd) => answer.call(handler, request, headEnd),
      handOff: (socket, unread) => {
        nodeReads.call(server, socket);
        // Node's parser reads straight from the socket's handle from now on; what was read before goes first.
        if (unread !== undefined) socket.emit('data', unread);
      },
      keepAliveTimeoutMs,
      headerTimeoutMs,
      headerTimedOut: (socket) => answerHeaderTimeout(socket, headerTimeoutMs, this.#init.logger),
      maxHeadBytes: MAX_HEADER_BYTES,
      maxFields: MAX_HEADER_COUNT,
      mayTargetSelf: (url) => this.#gate.mayTargetSelf(url),
      answered: (socket) => this.#limiter.requested(socket),
    });
    const direct = !this.#gate.needsCredentials;
    server.on('connection', (socket: Duplex) => {
      // Plain-HTTP tunnels (a stream over the socket), and connections refused at the limit, are Node's to read.
      const tunnel = tunnelTarget.get(socket as Socket);
      if (!front.open || this.#limiter.refused(socket)) nodeReads.call(server, socket);
      else if (tunnel === undefined) {
        if (direct) front.adopt(socket as Socket);
        else nodeReads.call(server, socket);
      } else if (tunnel.scheme === 'https') front.adopt(socket as Socket, `https://${tunnel.authority}`);
      else nodeReads.call(server, socket);
    });
    return front;
  }

  /** Listens on `host:port` (port 0 for a free one) or on a unix socket path. */
  async listen(address: ListenAddress | { path: string }): Promise<void> {
    await listenOn(this.#server, address);
  }

  address(): ListenAddress {
    const a = this.#server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    if (this.#limiter.refused(req.socket)) {
      req.socket.destroy();
      return;
    }
    this.#limiter.track(req, res);
    if (req.rawHeaders.length / 2 > MAX_HEADER_COUNT) {
      sendError(res, 431, new BadRequestError(`Request has more than ${MAX_HEADER_COUNT} header fields`, 431));
      return;
    }
    const target = tunnelTarget.get(req.socket);
    let url: string;
    const raw = req.url ?? '';
    if (target !== undefined && raw.startsWith('/')) {
      url = `${target.scheme}://${target.authority}${raw}`;
    } else if (/^https?:\/\//i.test(raw)) {
      url = raw;
      // A tunnel's inner requests were let in with its CONNECT; an absolute-form request is checked here.
      const refusal = this.#gate.authorize(req) ?? targetRefusal(this.#gate, url);
      if (refusal !== undefined) {
        sendError(res, refusal.status, refusal.error, refusal.headers);
        return;
      }
    } else {
      sendError(res, 400, new BadRequestError(
        `fetch-oracle is a forward proxy: expected an absolute URI (GET http://host/path), got ${JSON.stringify(raw.slice(0, 200))}. Point HTTP_PROXY/HTTPS_PROXY at this address.`,
      ));
      return;
    }
    stripProxyAuthorization(req); // never forwarded, never recorded
    const done = this.#init.handler.handle(req, res, url).catch((err: unknown) => {
      this.#init.logger.error('unhandled error for %s: %s', loggableUrl(url), (err as Error).message);
      sendError(res, 500, err as Error);
    });
    this.#active.add(done);
    void done.finally(() => this.#active.delete(done));
  }

  async #onConnect(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    socket.on('error', (err) => this.#init.logger.debug('tunnel socket error: %s', err.message));
    if (this.#limiter.refused(socket)) {
      socket.destroy();
      return;
    }
    let target: { host: string; port: number };
    try {
      target = parseConnectTarget(req.url ?? '');
    } catch (err) {
      rejectSocket(socket, 400, 'Bad Request', (err as Error).message);
      return;
    }
    const refusal = this.#gate.authorize(req) ?? this.#gate.checkTarget(target.host, target.port);
    if (refusal !== undefined) {
      rejectWith(socket, refusal);
      return;
    }
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    const first = head.byteLength > 0 ? head : await firstChunk(socket, this.#limiter.limits.headerTimeoutMs);
    if (first === undefined) {
      socket.destroy();
      return;
    }
    socket.unshift(first);
    const isTls = first[0] === 0x16; // TLS record type 22: handshake (RFC 8446 §5.1)
    const defaultPort = isTls ? 443 : 80;
    const authority = target.port === defaultPort ? target.host : `${target.host}:${target.port}`;
    if (!isTls) {
      // The HTTP server reads a fresh socket straight from its handle and would skip the unshifted bytes;
      // a stream wrapper makes it read through JS, where they are.
      const inner = streamOver(socket);
      tunnelTarget.set(inner as unknown as Socket, { scheme: 'http', authority });
      this.#limiter.adopt(inner, socket);
      this.#server.emit('connection', inner);
      return;
    }
    const bareHost = target.host.replace(/^\[|\]$/g, '');
    let context: SecureContext;
    try {
      context = await this.#init.certs.secureContextFor(bareHost);
    } catch (err) {
      this.#init.logger.error('no certificate for %s: %s', bareHost, (err as Error).message);
      socket.destroy();
      return;
    }
    const tls = new TLSSocket(socket, {
      isServer: true,
      secureContext: context,
      ALPNProtocols: ['http/1.1'],
      SNICallback: (servername, cb) => {
        this.#init.certs.secureContextFor(servername).then((ctx) => cb(null, ctx), (err: Error) => cb(err));
      },
    });
    tls.on('error', (err: Error) => this.#init.logger.warn('TLS with client for %s failed: %s', bareHost, err.message));
    tunnelTarget.set(tls, { scheme: 'https', authority });
    this.#limiter.adopt(tls, socket);
    this.#server.emit('connection', tls);
  }

  /**
   * Stops accepting, lets requests being answered finish (so what a client already received is also
   * recorded), then closes every socket. Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#limiter.close();
      // Answers the front is looking up go out first; what it then leaves, Node's server answers.
      const frontDone = this.#front?.close();
      const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      this.#server.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, DRAIN_TIMEOUT_MS)));
      const drained = (async () => {
        await frontDone;
        await Promise.allSettled([...this.#active]);
      })();
      await Promise.race([drained, timeout]);
      clearTimeout(timer);
      for (const s of this.#sockets) s.destroy();
      await closed;
    })();
    return this.#closed;
  }
}

/** A Duplex over `socket` (which must be paused, with any peeked bytes unshifted back into it). */
function streamOver(socket: Socket): Duplex {
  const inner = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      socket.write(chunk, cb);
    },
    final(cb) {
      socket.end(cb);
    },
    destroy(err, cb) {
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  socket.on('data', (d: Buffer) => {
    if (!inner.push(d)) socket.pause();
  });
  socket.on('end', () => inner.push(null));
  socket.on('close', () => inner.destroy());
  return inner;
}

/** The tunnel's first bytes, or undefined when it ends or sends nothing within `timeoutMs` (the header timeout). */
function firstChunk(socket: Socket, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      cleanup();
      resolve(undefined);
    }, timeoutMs);
    const onData = (chunk: Buffer): void => {
      cleanup();
      socket.pause();
      resolve(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(undefined);
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
  });
}

/** 403 for an absolute-form URL naming the oracle's own proxy or admin port. */
function targetRefusal(gate: ProxyGate, url: string): Refusal | undefined {
  if (!gate.mayTargetSelf(url)) return undefined;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined; // not a URL: the handler answers 400
  }
  return gate.checkTarget(u.hostname, u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port));
}
