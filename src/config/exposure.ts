/**
 * Who may use the proxy, and what it must never reach (issue 13, defect 9). `--listen 0.0.0.0` used to open
 * the proxy to the network with no word and no authentication, and through it every loopback service of the
 * host, the oracle's own admin API included.
 *
 * - Listening off loopback needs `--allow-remote` AND proxy credentials (`--proxy-auth USER:PASSWORD` or
 *   `FETCH_ORACLE_PROXY_AUTH`); `validateExposure` refuses anything else before a socket is opened.
 * - With credentials, every request must carry `Proxy-Authorization: Basic …` (absolute-form requests and
 *   CONNECT; a tunnel's inner requests ride on its CONNECT); others get 407 with `Proxy-Authenticate`.
 *   `Proxy-Authorization` is stripped before anything reads the request: never forwarded, never recorded.
 * - The proxy never reaches its own proxy or admin port: a target naming one of them through any alias
 *   (127.0.0.0/8, localhost, ::1, 0.0.0.0, ::, the listen address, this host's interface addresses) gets 403
 *   `ORACLE_ERR_FORBIDDEN` saying which; a DNS name leading there is refused by the upstream connector after
 *   DNS (`refusePeer`), so no name leads back in either.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { ForbiddenTargetError, InvalidConfigError, UnauthorizedError } from '../errors.ts';
import type { OracleError } from '../errors.ts';

/** Shortest proxy password (or token) accepted: it is all that stands between the network and the proxy. */
export const MIN_PROXY_SECRET_LENGTH = 16;
export const PROXY_AUTH_REALM = 'fetch-oracle';

export interface Exposure {
  /** Listening off loopback is allowed (`--allow-remote`). @default false */
  allowRemote?: boolean;
  /**
   * Proxy credentials clients must send as `Proxy-Authorization: Basic`: `USER:PASSWORD`, or a bare TOKEN
   * (any user name, the token as password). Required off loopback; enforced wherever given. @default none
   */
  proxyAuth?: string;
}

export interface TcpAddress {
  host: string;
  port: number;
}

/** One of the oracle's own listening sockets. */
export interface OwnAddress extends TcpAddress {
  role: 'proxy' | 'admin';
}

/** 127.0.0.0/8, ::1, IPv4-mapped loopback, `localhost` and `*.localhost` (RFC 6761). */
export function isLoopbackHost(host: string): boolean {
  const h = bare(host);
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./.test(h) || /^::ffff:7f[0-9a-f]{2}:/.test(h);
  return false;
}

function isUnspecified(host: string): boolean {
  const h = bare(host);
  return h === '0.0.0.0' || h === '::' || h === '::0' || h === '::ffff:0.0.0.0' || h === '::ffff:0:0';
}

/** Lower case, no brackets, no trailing dot; IP literals in their canonical (WHATWG URL) form. */
function bare(host: string): string {
  let h = host.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
  try {
    const canonical = new URL(`http://${isIP(h) === 6 ? `[${h}]` : h}/`).hostname;
    h = canonical.replace(/^\[|\]$/g, '');
  } catch {
    // not a valid host: compared as given
  }
  return h;
}

/** Throws InvalidConfigError for a listen address and credentials that would expose the proxy. */
/** Shortest admin bearer token accepted off loopback. */
export const MIN_ADMIN_TOKEN_CHARS = 16;

/** The admin API off loopback needs a bearer token: checked before anything listens (and again by the server). */
export function validateAdminExposure(admin: TcpAddress, token: string | undefined): void {
  if (isLoopbackHost(admin.host)) return;
  if (token === undefined || token.length < MIN_ADMIN_TOKEN_CHARS) {
    throw new InvalidConfigError(`Admin API on non-loopback ${admin.host} needs a bearer token of at least ${MIN_ADMIN_TOKEN_CHARS} characters (--admin-token or FETCH_ORACLE_ADMIN_TOKEN)`);
  }
}

export function validateExposure(listen: TcpAddress | { path: string }, exposure: Exposure = {}): void {
  if (exposure.proxyAuth !== undefined) parseProxyAuth(exposure.proxyAuth);
  if ('path' in listen || isLoopbackHost(listen.host)) return;
  if (exposure.allowRemote !== true) {
    throw new InvalidConfigError(
      `Refusing to listen on ${listen.host}: off loopback the proxy would let anyone who can reach it use this host's network, its loopback services and the oracle's admin API. Pass --allow-remote with --proxy-auth USER:PASSWORD (or FETCH_ORACLE_PROXY_AUTH), or listen on 127.0.0.1.`,
    );
  }
  if (exposure.proxyAuth === undefined) {
    throw new InvalidConfigError(`--allow-remote (listening on ${listen.host}) needs proxy credentials: --proxy-auth USER:PASSWORD or FETCH_ORACLE_PROXY_AUTH`);
  }
}

interface Credentials {
  /** Undefined: any user name. */
  user: string | undefined;
  password: string;
}

/** `USER:PASSWORD` or a bare TOKEN; throws InvalidConfigError for a secret that is too short. */
export function parseProxyAuth(text: string): Credentials {
  const colon = text.indexOf(':');
  const creds = colon < 0 ? { user: undefined, password: text } : { user: text.slice(0, colon), password: text.slice(colon + 1) };
  if (creds.password.length < MIN_PROXY_SECRET_LENGTH) {
    throw new InvalidConfigError(`--proxy-auth needs a password (or token) of at least ${MIN_PROXY_SECRET_LENGTH} characters`);
  }
  return creds;
}

function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/** What the proxy answers instead of forwarding. */
export interface Refusal {
  status: number;
  reason: string;
  error: OracleError;
  headers: Record<string, string>;
}

export interface ProxyGateInit {
  proxyAuth?: string;
  /** The oracle's own TCP listening addresses (proxy, admin API), as bound (read per request: ports may be 0 until listening). */
  self: () => readonly OwnAddress[];
}

/** Checks each client request: its proxy credentials, and that its target is not the oracle itself. */
export class ProxyGate {
  readonly #credentials: Credentials | undefined;
  readonly #self: () => readonly OwnAddress[];

  constructor(init: ProxyGateInit) {
    this.#credentials = init.proxyAuth === undefined ? undefined : parseProxyAuth(init.proxyAuth);
    this.#self = init.self;
  }

  /** Whether requests must carry proxy credentials. */
  get needsCredentials(): boolean {
    return this.#credentials !== undefined;
  }

  /** 407 unless the request carries the proxy credentials (when there are any). Then strips them from the request. */
  authorize(req: IncomingMessage): Refusal | undefined {
    const header = req.headers['proxy-authorization'];
    stripProxyAuthorization(req);
    if (this.#credentials === undefined) return undefined;
    const m = typeof header === 'string' ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header) : null;
    const decoded = m === null ? undefined : Buffer.from(m[1]!, 'base64').toString('utf8');
    const colon = decoded?.indexOf(':') ?? -1;
    if (decoded !== undefined && colon >= 0) {
      const user = decoded.slice(0, colon);
      const password = decoded.slice(colon + 1);
      const userOk = this.#credentials.user === undefined || sameSecret(user, this.#credentials.user);
      if (sameSecret(password, this.#credentials.password) && userOk) return undefined;
    }
    return {
      status: 407,
      reason: 'Proxy Authentication Required',
      error: new UnauthorizedError(
        header === undefined
          ? 'This proxy needs credentials: send Proxy-Authorization: Basic (e.g. HTTP_PROXY=http://USER:PASSWORD@host:port)'
          : 'Proxy-Authorization does not match this proxy\'s credentials',
      ),
      headers: { 'proxy-authenticate': `Basic realm="${PROXY_AUTH_REALM}", charset="UTF-8"` },
    };
  }

  /**
   * Whether an absolute URL could name one of the oracle's own ports: false only when none of those ports'
   * digits occur in it and none is the scheme's default port. Spares the per-request URL parse of
   * `checkTarget` (issue #15); any doubt (a port's digits anywhere, e.g. in the path) answers true.
   */
  mayTargetSelf(url: string): boolean {
    const defaultPort = (url.charCodeAt(4) | 0x20) === 115 /* the 's' of https, any case */ ? 443 : 80;
    for (const a of this.#self()) if (a.port === defaultPort || url.includes(String(a.port))) return true;
    return false;
  }

  /** 403 when `host:port` is one of the oracle's own listening sockets under any name. */
  checkTarget(host: string, port: number): Refusal | undefined {
    const why = this.#selfTarget(host, port);
    if (why === undefined) return undefined;
    return { status: 403, reason: 'Forbidden', error: new ForbiddenTargetError(why), headers: {} };
  }

  /** For the upstream connector, after DNS: why a connected peer must not be used, or undefined. */
  refusePeer(address: string, port: number): string | undefined {
    return this.#selfTarget(address, port);
  }

  #selfTarget(host: string, port: number): string | undefined {
    const mine = this.#self().filter((a) => a.port === port);
    if (mine.length === 0) return undefined;
    const h = bare(host);
    const locals = localAddresses();
    for (const a of mine) {
      const own = bare(a.host);
      const alias = h === own || isLoopbackHost(h) || isUnspecified(h) || ((isUnspecified(own) || locals.has(own)) && locals.has(h));
      if (!alias) continue;
      const what = a.role === 'proxy' ? 'the proxy itself (a request loop)' : "the oracle's admin API, which is never reachable through the proxy";
      return `${host}:${port} is ${what}; fetch-oracle does not forward requests to its own listening address ${own.includes(':') ? `[${own}]` : own}:${a.port}`;
    }
    return undefined;
  }
}

/** This host's interface addresses (canonical), loopback included. */
function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) out.add(bare(i.address));
  return out;
}

/** Removes `Proxy-Authorization` from a request before any handler, key or record can see it. */
export function stripProxyAuthorization(req: IncomingMessage): void {
  if (req.headers['proxy-authorization'] === undefined) return;
  delete req.headers['proxy-authorization'];
  const raw: string[] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() !== 'proxy-authorization') raw.push(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  }
  req.rawHeaders.splice(0, req.rawHeaders.length, ...raw);
}
