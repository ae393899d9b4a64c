import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import type { Readable } from 'node:stream';
import { Agent, buildConnector } from 'undici';
import type { Dispatcher } from 'undici';
import type { AbortSwitch } from '../io/abort-switch.ts';
import { SYSTEM_CA_BUNDLE } from '../tls/client-env.ts';
import type { HeaderList } from '../protocol/headers.ts';
import { PROXY_OWNED_REQUEST_HEADERS } from '../protocol/headers.ts';
import { normaliseUrl } from '../protocol/request-key.ts';
import { tunnelConnector } from './connect-tunnel.ts';
import type { ProxyAddress } from './connect-tunnel.ts';
import { guardedConnector, undiciTimeouts, upstreamFailure, withFirstChunk } from './safe-dispatcher.ts';
import type { UpstreamPolicy } from './safe-dispatcher.ts';

export interface FetcherInit {
  /**
   * Extra PEM CA certificates the upstream client trusts (beside Node's roots and the system bundle): the
   * `--upstream-ca` files and the NODE_EXTRA_CA_CERTS file, as `readUpstreamCaPem` reads them.
   */
  extraCaPem?: readonly string[];
  /** @default true */
  trustSystemBundle?: boolean;
  /**
   * Reach every origin through this HTTP CONNECT proxy (enclave mode: the parent's, over vsock); TLS to the
   * origin still ends in this process (src/upstream/connect-tunnel.ts). @default none (direct connections)
   */
  proxy?: ProxyAddress;
  /** Upstream timeout and the addresses never to connect to (the oracle's own). @default 60 s, none */
  policy?: UpstreamPolicy;
}

export interface UpstreamRequest {
  method: string;
  url: string;
  headers: HeaderList;
  body?: Uint8Array | Readable;
  /** Length of `body` (sent as content-length). */
  bodySize?: number;
  /** Stops the request; undici takes an AbortSignal or an emitter of 'abort' (`AbortSwitch`, lighter per request). */
  signal?: AbortSignal | AbortSwitch;
}

export interface UpstreamResponse {
  status: number;
  /** As received, names lower-cased; duplicates kept as separate pairs. */
  headers: Array<[string, string]>;
  body: AsyncIterable<Uint8Array> & { destroy(err?: Error): void };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/g;

/** The PEM certificate blocks in `pem`, in order, each re-wrapped canonically (so equal certificates are equal strings). */
export function pemCertificates(pem: string): string[] {
  return (pem.match(PEM_CERTIFICATE) ?? []).map((block) => {
    const base64 = block.slice('-----BEGIN CERTIFICATE-----'.length, -'-----END CERTIFICATE-----'.length).replace(/\s+/g, '');
    return `-----BEGIN CERTIFICATE-----\n${base64.replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`;
  });
}

/**
 * The PEM CAs the upstream client trusts beyond Node's roots and the system bundle: each `--upstream-ca` file
 * (unreadable → the error propagates: the user named it), then the file NODE_EXTRA_CA_CERTS names. An explicit
 * `ca` list replaces Node's default store, so the variable Node users rely on would otherwise be ignored. Node
 * itself only warns about an unreadable or certificate-less NODE_EXTRA_CA_CERTS file, so this does too (once,
 * through `warn`) and goes on without it. The caller passes the variable's value: only the CLI reads process.env.
 */
export async function readUpstreamCaPem(files: readonly string[], nodeExtraCaCerts: string | undefined, warn: (message: string) => void): Promise<string[]> {
  const pems = await Promise.all(files.map((f) => readFile(f, 'utf8')));
  if (nodeExtraCaCerts === undefined || nodeExtraCaCerts === '') return pems;
  let text: string;
  try {
    text = await readFile(nodeExtraCaCerts, 'utf8');
  } catch (err) {
    warn(`NODE_EXTRA_CA_CERTS=${nodeExtraCaCerts} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): upstream TLS trusts Node's roots, the system bundle and --upstream-ca only`);
    return pems;
  }
  const certs = pemCertificates(text);
  if (certs.length === 0) {
    warn(`NODE_EXTRA_CA_CERTS=${nodeExtraCaCerts} holds no PEM certificate: upstream TLS trusts Node's roots, the system bundle and --upstream-ca only`);
    return pems;
  }
  return [...pems, certs.join('\n')];
}

/** Fetches from origins with undici: never follows redirects (each hop is its own record), no decoding. */
export class Fetcher {
  readonly #agent: Agent;
  #closed = false;

  constructor(init: FetcherInit = {}) {
    const system = (init.trustSystemBundle ?? true) && existsSync(SYSTEM_CA_BUNDLE) ? [readFileSync(SYSTEM_CA_BUNDLE, 'utf8')] : [];
    // One entry per certificate, each once: Node's roots and the system bundle overlap, and NODE_EXTRA_CA_CERTS
    // often names the system bundle itself (environment.md §1). A text without a PEM block is passed as given.
    const ca = [...new Set([...rootCertificates, ...system, ...(init.extraCaPem ?? [])].flatMap((pem) => {
      const certs = pemCertificates(pem);
      return certs.length === 0 ? [pem] : certs;
    }))];
    const { connectTimeout, headersTimeout, bodyTimeout } = undiciTimeouts(init.policy);
    const connector = init.proxy === undefined ? buildConnector({ ca, timeout: connectTimeout }) : tunnelConnector({ proxy: init.proxy, ca });
    this.#agent = new Agent({
      connect: guardedConnector(connector, { ...init.policy, direct: init.proxy === undefined }),
      headersTimeout,
      bodyTimeout,
      keepAliveTimeout: 10_000,
    });
  }

  async fetch(req: UpstreamRequest): Promise<UpstreamResponse> {
    const headers: string[] = [];
    for (const [n, v] of req.headers) if (!PROXY_OWNED_REQUEST_HEADERS.has(n) && !n.startsWith('proxy-')) headers.push(n, v);
    if (req.bodySize !== undefined) headers.push('content-length', String(req.bodySize));
    const url = new URL(req.url);
    const options: Dispatcher.RequestOptions = {
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: req.method,
      headers,
      body: req.body ?? null,
      signal: req.signal ?? null,
    };
    let res: Dispatcher.ResponseData;
    let body: UpstreamResponse['body'];
    try {
      res = await this.#agent.request(options);
      body = await withFirstChunk(res.body);
    } catch (cause) {
      throw upstreamFailure(`Upstream ${req.method} ${redactedUrl(req.url)}`, cause, req.signal, reasonOf(cause), describe(cause));
    }
    const list: Array<[string, string]> = [];
    for (const [n, v] of Object.entries(res.headers)) {
      if (v === undefined) continue;
      for (const one of Array.isArray(v) ? v : [v]) list.push([n.toLowerCase(), one]);
    }
    return { status: res.statusCode, headers: list, body };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#agent.close();
  }
}

/** undici errors carry the useful part in `code` and `cause` (ECONNREFUSED, ENOTFOUND, cert errors). */
export function describe(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const parts = [e.code, e.message, e.cause?.code, e.cause?.message].filter((p): p is string => typeof p === 'string' && p !== '');
  return [...new Set(parts)].join(': ') || String(err);
}

/** The most specific error code: the cause's (ECONNREFUSED, ENOTFOUND, CERT_HAS_EXPIRED…) before undici's. */
export function reasonOf(err: unknown): string {
  const e = err as { code?: string; cause?: { code?: string } };
  return e.cause?.code ?? e.code ?? 'UNKNOWN';
}

/** The URL without credential query parameters, for messages that may be recorded or logged. */
function redactedUrl(url: string): string {
  try {
    return normaliseUrl(url);
  } catch {
    return url;
  }
}
