import { CID } from 'multiformats/cid';
import { BadRequestError, DeviceError } from '../errors.ts';
import type { HeaderList } from '../protocol/headers.ts';
import { normaliseMethod, normaliseUrl } from '../protocol/request-key.ts';
import { SIGNATURE_BYTES } from '../protocol/signature.ts';
import type { SignedRecord } from '../protocol/signature.ts';

/**
 * GIO domain of recording from inside the machine (docs/cartesi.md "Record from inside the machine"):
 * id = UTF-8 JSON `{"v":1,"method","url","headers":[[n,v],…]}`; reply = UTF-8 JSON
 * `{"key","record","signature","fetched"}`. Shared by the host's handler and the guest's decider.
 */
export const GIO_DOMAIN_RECORD = 0x26;
export const RECORD_REQUEST_VERSION = 1;

/** Largest request id accepted: a URL of MAX_URL_BYTES plus generous headers. */
export const MAX_RECORD_REQUEST_BYTES = 256 * 1024;
/** Longest URL accepted (as the proxy front: src/proxy/exchange.ts MAX_URL_BYTES). */
export const MAX_RECORD_URL_BYTES = 32 * 1024;
export const MAX_RECORD_HEADERS = 256;
export const MAX_RECORD_HEADER_VALUE_BYTES = 16 * 1024;
/** Largest reply accepted by the guest: a key (a URL and its variant headers) and a record's identity. */
export const MAX_RECORD_REPLY_BYTES = 64 * 1024;

/** Methods recorded through the device: the only ones whose request key has no body digest. */
export const RECORDABLE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD']);

/** A request to record, as the guest sends it: the URL and headers as the client sent them. */
export interface RecordRequest {
  /** Upper-case token, GET or HEAD. */
  readonly method: string;
  /** Absolute http(s) URL as the client asked for it (credential parameters included: the fetch needs them). */
  readonly url: string;
  /** Request headers to send upstream, names lower-cased; only the variant headers (`accept`) enter the key. */
  readonly headers: HeaderList;
}

/** What the host answers: the key the record is filed under and the signed record's identity. */
export interface RecordReply {
  /** The request key id (`RequestKey.id`); for a HEAD answered from its GET, the GET's. */
  readonly key: string;
  readonly signed: SignedRecord;
  /** Whether the host fetched it upstream for this request (false: reused from its record index). */
  readonly fetched: boolean;
}

const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 9110 §5.5 field-value characters (VCHAR, SP, HTAB, obs-text); no CR, LF or NUL. */
const FIELD_VALUE_RE = /^[\t\x20-\x7e\x80-\xff]*$/;
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/** Why a request with a body cannot be recorded through the device yet (the guest and the host say the same). */
export function bodyRefusal(method: string): string {
  return `${method} requests carry a body, which recording from inside the machine (GIO 0x26) does not carry yet: only GET and HEAD are recorded`;
}

export function encodeRecordRequest(request: RecordRequest): Uint8Array {
  const headers = request.headers.map(([n, v]) => [n, v]);
  return new TextEncoder().encode(JSON.stringify({ v: RECORD_REQUEST_VERSION, method: request.method, url: request.url, headers }));
}

/**
 * Decodes and checks a 0x26 id. Throws DeviceError for what is not a record request at all (not UTF-8 JSON,
 * wrong shape, unknown fields, another version, over a size limit) and BadRequestError for a request that
 * cannot be recorded (invalid method or URL, a method with a body, bad header names or values). Both are
 * functions of the id alone, so the host answers them in band.
 */
export function decodeRecordRequest(id: Uint8Array): RecordRequest {
  if (id.byteLength > MAX_RECORD_REQUEST_BYTES) throw malformed(`${id.byteLength} bytes exceeds the ${MAX_RECORD_REQUEST_BYTES}-byte limit`);
  const value = parseJson(id, malformed);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed('expected a JSON object');
  const obj = value as Record<string, unknown>;
  if (obj['v'] !== RECORD_REQUEST_VERSION) throw malformed(`"v" is ${JSON.stringify(obj['v'])}, expected ${RECORD_REQUEST_VERSION}`);
  const method = obj['method'];
  if (typeof method !== 'string') throw malformed('"method" must be a string');
  const normalMethod = normaliseMethod(method);
  if ('body' in obj || !RECORDABLE_METHODS.has(normalMethod)) throw new BadRequestError(`Cannot record through GIO 0x26: ${bodyRefusal(normalMethod)}`);
  const unknown = Object.keys(obj).filter((k) => !['v', 'method', 'url', 'headers'].includes(k));
  if (unknown.length > 0) throw malformed(`unknown field(s) ${unknown.map((k) => JSON.stringify(k)).join(', ')}`);
  const url = obj['url'];
  if (typeof url !== 'string') throw malformed('"url" must be a string');
  if (Buffer.byteLength(url) > MAX_RECORD_URL_BYTES) throw new BadRequestError(`URL of ${Buffer.byteLength(url)} bytes exceeds the ${MAX_RECORD_URL_BYTES}-byte limit`, 414);
  normaliseUrl(url); // an absolute http(s) URL with a host, or BadRequestError
  if (/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(url)) throw new BadRequestError('URL carries credentials (user:password@); send them in an Authorization header');
  return { method: normalMethod, url, headers: decodeHeaders(obj['headers']) };
}

function decodeHeaders(value: unknown): Array<[string, string]> {
  if (!Array.isArray(value)) throw malformed('"headers" must be an array of [name, value] pairs');
  if (value.length > MAX_RECORD_HEADERS) throw malformed(`${value.length} headers exceeds the limit of ${MAX_RECORD_HEADERS}`);
  return value.map((pair: unknown, i): [string, string] => {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
      throw malformed(`headers[${i}] must be a [name, value] pair of strings`);
    }
    const [name, v] = pair as [string, string];
    if (!TOKEN_RE.test(name) || name.length > 256) throw new BadRequestError(`Invalid header name ${JSON.stringify(name.slice(0, 60))} (headers[${i}])`);
    if (Buffer.byteLength(v) > MAX_RECORD_HEADER_VALUE_BYTES) throw new BadRequestError(`Header ${name} is ${Buffer.byteLength(v)} bytes (limit ${MAX_RECORD_HEADER_VALUE_BYTES})`, 431);
    if (!FIELD_VALUE_RE.test(v)) throw new BadRequestError(`Header ${name} has a character not allowed in a field value (CR, LF, NUL or beyond U+00FF)`);
    return [name.toLowerCase(), v];
  });
}

export function encodeRecordReply(reply: RecordReply): Uint8Array {
  const signature = Buffer.from(reply.signed.signature).toString('base64');
  return new TextEncoder().encode(JSON.stringify({ key: reply.key, record: reply.signed.record.toString(), signature, fetched: reply.fetched }));
}

/** Decodes the host's reply strictly (the guest then verifies the record itself: nothing here is trusted). */
export function decodeRecordReply(bytes: Uint8Array): RecordReply {
  if (bytes.byteLength > MAX_RECORD_REPLY_BYTES) throw badReply(`${bytes.byteLength} bytes exceeds the ${MAX_RECORD_REPLY_BYTES}-byte limit`);
  const value = parseJson(bytes, badReply);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badReply('expected a JSON object');
  const obj = value as Record<string, unknown>;
  const { key, record, signature, fetched } = obj;
  if (Object.keys(obj).length !== 4 || typeof key !== 'string' || typeof record !== 'string' || typeof signature !== 'string' || typeof fetched !== 'boolean') {
    throw badReply('expected exactly {"key": string, "record": CID, "signature": base64, "fetched": boolean}');
  }
  let cid: CID;
  try {
    cid = CID.parse(record);
  } catch (err) {
    throw badReply(`"record" is not a CID: ${(err as Error).message}`);
  }
  const sig = BASE64_RE.test(signature) ? new Uint8Array(Buffer.from(signature, 'base64')) : new Uint8Array(0);
  if (sig.byteLength !== SIGNATURE_BYTES) throw badReply(`"signature" is not ${SIGNATURE_BYTES} bytes of base64`);
  return { key, signed: { record: cid, signature: sig }, fetched };
}

function parseJson(bytes: Uint8Array, fail: (why: string) => DeviceError): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw fail('not UTF-8');
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw fail(`not JSON (${(err as Error).message})`);
  }
}

function malformed(why: string): DeviceError {
  return new DeviceError(`Malformed GIO 0x26 record request: ${why}`);
}

function badReply(why: string): DeviceError {
  return new DeviceError(`Malformed GIO 0x26 reply from the host: ${why}`);
}
