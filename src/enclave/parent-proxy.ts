/**
 * The parent instance's side of enclave mode: an HTTP CONNECT proxy with a host allowlist, the enclave's
 * only way out (design §8, docs/nitro.md §4 "generic pattern for arbitrary URLs"). In production it listens
 * on TCP (or a unix socket) and `socat VSOCK-LISTEN:8001,fork …` bridges the enclave's vsock connections to
 * it; the enclave runs TLS to the origin inside the tunnel, so this proxy relays ciphertext only.
 *
 * It answers CONNECT only (a plain request gets 405), resolves names itself (the enclave has no DNS), and
 * refuses a target that is not on the allowlist with 403 and a log line: the allowlist limits what a
 * compromised or misused enclave image could reach from the parent's network.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { connect as netConnect, isIP } from 'node:net';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { InvalidConfigError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { NOOP_LOGGER } from '../log.ts';
import { listenOn } from '../io/listen.ts';
import type { ProxyAddress } from '../upstream/connect-tunnel.ts';

/** Time allowed to reach an origin before the enclave gets a 502. */
export const PARENT_CONNECT_TIMEOUT_MS = 30_000;

/** One allowlist entry: `host` (port 443), `host:port`, `host:*`, `*.domain[:port]`, `[v6]:port`. */
export interface AllowRule {
  /** Lower-cased host name or IP literal; with `wildcard`, the domain whose subdomains match. */
  readonly host: string;
  readonly wildcard: boolean;
  /** undefined: any port. */
  readonly port: number | undefined;
}

export function parseAllowRule(text: string): AllowRule {
  const m = /^(\*\.)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}|\*))?$/.exec(text.trim());
  if (m === null || (m[3] !== undefined && m[3] !== '*' && Number(m[3]) > 65535)) {
    throw new InvalidConfigError(`--allow expects HOST, HOST:PORT, HOST:* or *.DOMAIN[:PORT], got ${JSON.stringify(text)}`);
  }
  const host = m[2]!.replace(/^\[|\]$/g, '').toLowerCase();
  return { host, wildcard: m[1] !== undefined, port: m[3] === '*' ? undefined : m[3] === undefined ? 443 : Number(m[3]) };
}

export function isAllowed(rules: readonly AllowRule[], host: string, port: number): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  return rules.some((r) => (r.port === undefined || r.port === port) && (r.wildcard ? h.endsWith(`.${r.host}`) : h === r.host));
}

/** `host:port` of a CONNECT request target, or undefined when it is not one (RFC 9110 §9.3.6 authority-form). */
export function parseConnectTarget(target: string): { host: string; port: number } | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(target);
  if (m === null) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  const host = m[1]!.replace(/^\[|\]$/g, '');
  if (m[1]!.startsWith('[') && isIP(host) !== 6) return undefined;
  return { host, port };
}

export interface ParentProxyInit {
  /** Allowed targets; an empty list refuses everything. */
  allow: readonly AllowRule[];
  logger?: Logger;
}

/** CONNECT-only proxy with an allowlist. `listen()` / `close()` (idempotent). */
export class ParentProxy {
  readonly #init: ParentProxyInit;
  readonly #logger: Logger;
  readonly #server: Server;
  readonly #sockets = new Set<Duplex>();
  #closing: Promise<void> | undefined;
  /** Tunnels opened and targets refused so far (for logs and tests). */
  readonly counts = { tunnels: 0, refused: 0, failed: 0 };

  constructor(init: ParentProxyInit) {
    this.#init = init;
    this.#logger = init.logger ?? NOOP_LOGGER;
    this.#server = createServer((req, res) => this.#plain(req, res));
    this.#server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#connect(req, socket, head));
    this.#server.on('connection', (s: Socket) => this.#track(s));
  }

  #track(s: Duplex): void {
    this.#sockets.add(s);
    s.once('close', () => this.#sockets.delete(s));
  }

  async listen(address: ProxyAddress): Promise<void> {
    await listenOn(this.#server, address);
  }

  /** The TCP address it listens on (port 0 resolved), or the socket path. */
  address(): ProxyAddress {
    const a = this.#server.address();
    if (a === null) throw new Error('ParentProxy is not listening');
    if (typeof a === 'string') return { path: a };
    return { host: a.address, port: a.port };
  }

  #plain(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(405, { 'content-type': 'text/plain; charset=utf-8', allow: 'CONNECT', connection: 'close' });
    res.end(`fetch-oracle enclave parent: only CONNECT tunnels are relayed (got ${req.method ?? '?'})\n`);
  }

  #refuse(socket: Duplex, status: number, reason: string, message: string): void {
    const body = `${message}\n`;
    socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  }

  #connect(req: IncomingMessage, client: Duplex, head: Buffer): void {
    this.#track(client);
    client.on('error', () => {});
    const target = parseConnectTarget(req.url ?? '');
    if (target === undefined) {
      this.counts.refused++;
      this.#logger.warn('refused malformed CONNECT target %s', JSON.stringify((req.url ?? '').slice(0, 200)));
      this.#refuse(client, 400, 'Bad Request', `fetch-oracle enclave parent: malformed CONNECT target ${JSON.stringify((req.url ?? '').slice(0, 200))}`);
      return;
    }
    const name = `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
    if (!isAllowed(this.#init.allow, target.host, target.port)) {
      this.counts.refused++;
      this.#logger.warn('refused CONNECT %s: not in the allowlist', name);
      this.#refuse(client, 403, 'Forbidden', `fetch-oracle enclave parent: ${name} is not in the allowlist (--allow)`);
      return;
    }
    let opened = false;
    const upstream = netConnect({ host: target.host, port: target.port });
    this.#track(upstream);
    upstream.setTimeout(PARENT_CONNECT_TIMEOUT_MS, () => upstream.destroy(new Error(`no connection after ${PARENT_CONNECT_TIMEOUT_MS} ms`)));
    upstream.once('error', (err) => {
      if (!opened) {
        this.counts.failed++;
        this.#logger.warn('CONNECT %s failed: %s', name, err.message);
        this.#refuse(client, 502, 'Bad Gateway', `fetch-oracle enclave parent: cannot reach ${name}: ${err.message}`);
      } else {
        client.destroy();
      }
    });
    upstream.once('connect', () => {
      opened = true;
      upstream.setTimeout(0);
      this.counts.tunnels++;
      this.#logger.info('tunnel to %s', name);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.byteLength > 0) upstream.write(head);
      // Bytes are relayed untouched in both directions; either side closing ends the tunnel.
      client.pipe(upstream);
      upstream.pipe(client);
      client.once('close', () => upstream.destroy());
      upstream.once('close', () => client.destroy());
    });
  }

  /** Stops listening and ends every tunnel. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      for (const s of this.#sockets) s.destroy();
      this.#server.close(() => resolve());
    });
    return this.#closing;
  }
}
