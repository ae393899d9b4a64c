import { withoutCredentialParams } from './request-key.ts';

/** Ordered header list as received: name/value pairs, names lower-cased. */
export type HeaderList = ReadonlyArray<readonly [string, string]>;

/** Hop-by-hop headers (RFC 9110 §7.6.1) and proxy framing: never stored, never forwarded. */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Response headers that change on every fetch or describe a cache, not the resource (design §3), and
 * credentials (never enter a record).
 */
export const VOLATILE_RESPONSE_HEADERS = new Set([
  'date',
  'age',
  'set-cookie',
  'set-cookie2',
  'via',
  'expires',
  'x-cache',
  'x-cache-hits',
  'x-cache-status',
  'cache-status',
  'cf-cache-status',
  'cf-ray',
  'x-served-by',
  'x-timer',
  'x-amz-cf-id',
  'x-amz-cf-pop',
  'x-amz-request-id',
  'x-amz-id-2',
  'x-request-id',
  'x-github-request-id',
  'x-fastly-request-id',
  'server-timing',
  'report-to',
  'nel',
  'alt-svc',
]);

/** Request headers that are never sent upstream by the fetcher because the proxy owns them. */
// `expect: 100-continue` is answered by this proxy's own server; the upstream request is sent whole.
export const PROXY_OWNED_REQUEST_HEADERS = new Set([...HOP_BY_HOP, 'host', 'content-length', 'expect']);

/** Converts Node's raw header array [n1, v1, n2, v2, …] into an ordered list with lower-cased names. */
export function fromRawHeaders(raw: readonly string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!.toLowerCase(), raw[i + 1]!]);
  return out;
}

/** Drops headers named in `Connection` as well as the fixed hop-by-hop set (RFC 9110 §7.6.1). */
export function withoutHopByHop(headers: HeaderList): Array<[string, string]> {
  const named = connectionNamed(headers);
  const out: Array<[string, string]> = [];
  for (const [n, v] of headers) if (!HOP_BY_HOP.has(n) && named?.has(n) !== true) out.push([n, v]);
  return out;
}

/** The header names `Connection` lists (lower-cased), or undefined when there is no `Connection` header. */
function connectionNamed(headers: HeaderList): Set<string> | undefined {
  let named: Set<string> | undefined;
  for (const [n, v] of headers) {
    if (n !== 'connection') continue;
    named ??= new Set();
    for (const t of v.split(',')) named.add(t.trim().toLowerCase());
  }
  return named;
}

/**
 * The response headers a record keeps: as received, minus hop-by-hop, volatile and credential headers; a
 * `location` loses its credential query parameters (a presigned redirect target is kept as the URL the
 * build was sent to, without the signature that would expire and that is a secret). One pass, one new pair
 * a kept header: every record's head goes through it.
 */
export function recordableResponseHeaders(headers: HeaderList): Array<[string, string]> {
  const named = connectionNamed(headers);
  const out: Array<[string, string]> = [];
  for (const [n, v] of headers) {
    if (HOP_BY_HOP.has(n) || named?.has(n) === true || VOLATILE_RESPONSE_HEADERS.has(n)) continue;
    out.push([n, n === 'location' ? redactLocation(v) : v]);
  }
  return out;
}

function redactLocation(raw: string): string {
  // `scheme://user:pass@host/…`: the userinfo is a credential too.
  const location = raw.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#@]*@/i, '$1');
  const hash = location.indexOf('#');
  const base = hash < 0 ? location : location.slice(0, hash);
  const q = base.indexOf('?');
  if (q < 0) return location;
  return `${base.slice(0, q)}${withoutCredentialParams(base.slice(q))}${hash < 0 ? '' : location.slice(hash)}`;
}
