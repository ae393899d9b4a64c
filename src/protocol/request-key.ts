import { BadRequestError } from '../errors.ts';

/**
 * Version of the key rules below. It is stored in every netlock so that a change to normalisation
 * can never silently mismatch old recordings (mitmproxy#4506 had to recompute keys on option changes).
 */
export const KEY_VERSION = 1;

/** Request headers that select a variant and so enter the key (design §5). */
export const VARIANT_HEADERS = ['accept'] as const;

/** Header bag as Node gives it (lower-case names). */
export type HeaderBag = Readonly<Record<string, string | string[] | undefined>>;

export interface RequestKeyInput {
  method: string;
  /** Absolute URL as the client asked for it. */
  url: string;
  headers: HeaderBag;
  /** `sha256:<hex>` of the request body, for requests that have one. */
  bodyDigest?: string;
}

export interface RequestKey {
  readonly method: string;
  /** Normalised absolute URL, no credentials, no fragment. */
  readonly url: string;
  /** Normalised variant-selecting headers, in VARIANT_HEADERS order. */
  readonly variant: Readonly<Record<string, string>>;
  readonly bodyDigest?: string;
  /**
   * The key as one string. URL first, so that in a sorted netlock index the entries nearest to a
   * miss are the same URL with another method or variant, then neighbouring paths: the miss
   * explainer finds its candidates in the same index page.
   */
  readonly id: string;
}

const METHOD_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const UNRESERVED_RE = /[A-Za-z0-9\-._~]/;

/** Normalises percent-encoding: decodes unreserved characters, upper-cases the hex of the rest (RFC 3986 §6.2.2). */
function normalisePercent(part: string): string {
  return part.replace(/%([0-9a-fA-F]{2})/g, (_m, hex: string) => {
    const ch = String.fromCharCode(Number.parseInt(hex, 16));
    return UNRESERVED_RE.test(ch) ? ch : `%${hex.toUpperCase()}`;
  });
}

/**
 * Normalises an absolute http(s) URL: scheme and host lower-cased, default port dropped, empty path
 * as `/`, percent-encoding normalised, query kept in its order, credentials and fragment removed.
 */
export function normaliseUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new BadRequestError(`Invalid URL: ${JSON.stringify(raw.slice(0, 200))} (expected an absolute http or https URL)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new BadRequestError(`Unsupported URL scheme ${JSON.stringify(url.protocol)} in ${JSON.stringify(raw.slice(0, 200))} (expected http or https)`);
  }
  if (url.hostname === '') throw new BadRequestError(`URL has no host: ${JSON.stringify(raw.slice(0, 200))}`);
  // WHATWG URL already lower-cases scheme and host and drops default ports.
  const path = normalisePercent(url.pathname === '' ? '/' : url.pathname);
  const query = withoutCredentialParams(url.search === '' ? '' : normalisePercent(url.search));
  return `${url.protocol}//${url.host}${path}${query}`;
}

/**
 * Query parameters that carry credentials or per-request signatures (docs/behaviours.md, "Credentials"):
 * API keys (`key` as Google APIs use it, `api_key`, `apikey`, …), OAuth and bearer tokens, presigned
 * URLs of AWS (SigV4 `X-Amz-*`, SigV2 `AWSAccessKeyId`/`Signature`), Google Cloud Storage (`X-Goog-*`,
 * `GoogleAccessId`), CloudFront (`Signature`, `Policy`, `Key-Pair-Id`), Akamai (`hdnts`, `__token__`). They
 * never enter a key or a record: the fetch uses the URL as sent, the key drops them, so a re-signed URL or
 * another API key for the same object is the same request (and no secret is stored).
 */
export const CREDENTIAL_PARAM_RE =
  /^(x-amz-.*|x-goog-.*|key|api_key|apikey|api-key|x-api-key|api_token|apitoken|access_key|accesskey|awsaccesskeyid|googleaccessid|access_token|id_token|refresh_token|auth_token|private_token|session_token|token|__token__|hdnts|auth|authorization|client_secret|password|passwd|secret|jwt|sig|signature|policy|key-pair-id)$/i;

/**
 * Parameters that belong to a signature and so change with every signing, dropped only next to a `sig` or
 * `signature` in the same query: Azure SAS fields (`se` expiry, `sp` permissions, `sv` version, …) and the
 * `Expires` of CloudFront / GCS v2 / AWS SigV2 signed URLs. Without a signature they are ordinary parameters.
 */
export const SIGNATURE_COMPANION_PARAMS: ReadonlySet<string> = new Set(['se', 'sp', 'sv', 'st', 'sr', 'sip', 'si', 'sdd', 'spr', 'srt', 'ss', 'skoid', 'sktid', 'skt', 'ske', 'sks', 'skv', 'ses', 'expires']);

/**
 * Request headers that carry credentials: never a variant header (a `--variant-header` naming one is
 * ignored), so their values never enter a key or a record. They are still sent upstream (all but
 * `proxy-authorization`, which is this proxy's and hop-by-hop).
 */
export const CREDENTIAL_HEADERS: ReadonlySet<string> = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'x-api-key',
  'api-key',
  'x-auth-token',
  'private-token',
  'job-token',
  'x-goog-api-key',
  'x-amz-security-token',
  'x-amz-content-sha256',
  'x-amz-date',
  'ocp-apim-subscription-key',
]);

export function isCredentialParam(name: string, signed: boolean): boolean {
  const n = name.toLowerCase();
  return CREDENTIAL_PARAM_RE.test(n) || (signed && SIGNATURE_COMPANION_PARAMS.has(n));
}

export function withoutCredentialParams(search: string): string {
  if (search === '' || search === '?') return search;
  const pairs = search.slice(1).split('&');
  const names = pairs.map((p) => decodeURIComponentSafe(p.split('=')[0] ?? '').toLowerCase());
  const signed = names.includes('sig') || names.includes('signature');
  const kept = pairs.filter((_, i) => !isCredentialParam(names[i]!, signed));
  return kept.length === 0 ? '' : `?${kept.join('&')}`;
}

/** A URL for a log line: normalised without its credentials, or, when it is not a valid URL, without its query. */
export function loggableUrl(raw: string): string {
  try {
    return normaliseUrl(raw);
  } catch {
    return raw.replace(/[?#].*$/s, '').replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#@]*@/i, '$1').slice(0, 500);
  }
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

export function normaliseMethod(method: string): string {
  if (!METHOD_RE.test(method)) throw new BadRequestError(`Invalid HTTP method: ${JSON.stringify(method.slice(0, 40))}`);
  return method.toUpperCase();
}

function headerValue(headers: HeaderBag, name: string): string {
  const v = headers[name];
  const joined = Array.isArray(v) ? v.join(', ') : (v ?? '');
  // Whitespace around list separators is not significant (RFC 9110 §5.6.1).
  return joined.trim().replace(/\s*,\s*/g, ', ').replace(/\s+/g, ' ');
}

/**
 * Per-host extra variant headers (`record --variant-header HOST=NAME`): e.g. a registry that serves
 * different documents by a custom header. Stored in the netlock root, so replay keys requests the same way.
 */
export type VariantRules = Readonly<Record<string, readonly string[]>>;

/** The variant headers for a URL: `accept`, then the host's extra headers, sorted. */
export function variantHeadersFor(url: string, rules: VariantRules | undefined): string[] {
  if (rules === undefined) return [...VARIANT_HEADERS];
  const host = /^[a-z]+:\/\/([^/?#]+)/.exec(url)?.[1] ?? '';
  const bare = host.replace(/:\d+$/, '');
  const extra = [...(rules[host] ?? []), ...(host === bare ? [] : (rules[bare] ?? []))]
    .map((h) => h.toLowerCase())
    .filter((h) => !VARIANT_HEADERS.includes(h as 'accept') && !CREDENTIAL_HEADERS.has(h));
  return [...VARIANT_HEADERS, ...[...new Set(extra)].sort()];
}

export function keyId(method: string, url: string, variant: Readonly<Record<string, string>>, bodyDigest?: string): string {
  // `accept` first, then any extra variant headers in name order.
  const names = [...VARIANT_HEADERS, ...Object.keys(variant).filter((h) => !VARIANT_HEADERS.includes(h as 'accept')).sort()];
  const v = names.map((h) => `${h}=${variant[h] ?? ''}`).join('\n');
  return `${url}\n${method}\n${v}\nbody=${bodyDigest ?? ''}`;
}

export function computeRequestKey(input: RequestKeyInput, rules?: VariantRules): RequestKey {
  const method = normaliseMethod(input.method);
  const url = normaliseUrl(input.url);
  const variant: Record<string, string> = {};
  for (const h of variantHeadersFor(url, rules)) variant[h] = headerValue(input.headers, h);
  // No Accept means any media type (RFC 9110 §12.5.1): the same request as curl's `Accept: */*`.
  if (variant['accept'] === '') variant['accept'] = '*/*';
  const base = { method, url, variant, id: keyId(method, url, variant, input.bodyDigest) };
  return input.bodyDigest === undefined ? base : { ...base, bodyDigest: input.bodyDigest };
}

/** Splits a key id back into its fields (for explanations and listings). */
export function parseKeyId(id: string): { url: string; method: string; variant: Record<string, string>; bodyDigest: string } {
  const lines = id.split('\n');
  const variant: Record<string, string> = {};
  for (const line of lines.slice(2, -1)) {
    const eq = line.indexOf('=');
    variant[line.slice(0, eq)] = line.slice(eq + 1);
  }
  const body = lines.length >= 4 ? (lines.at(-1) ?? 'body=') : 'body=';
  return { url: lines[0] ?? '', method: lines[1] ?? '', variant, bodyDigest: body.slice('body='.length) };
}

/** The same request with another method (HEAD is answered from a recorded GET). */
export function withMethod(key: RequestKey, method: string): RequestKey {
  return { ...key, method, id: keyId(method, key.url, key.variant, key.bodyDigest) };
}
