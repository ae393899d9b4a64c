/**
 * Recognises the plainest proxy requests in raw bytes: an HTTP/1.1 `GET` or `HEAD` of an absolute `http://`
 * URL, with no body and nothing that changes how the connection goes on. The answer-at-once path
 * (`hit-front.ts`) answers those without Node's HTTP server, whose per-request objects cost about as much
 * CPU as the rest of a 4 KiB replay hit together (issue #15).
 *
 * Written here because Node exposes no request-head parser outside its HTTP server (llhttp is internal). It
 * never has to reject anything: a head it does not recognise in full is left to Node's parser, which answers
 * it, malformed ones included, as before. So it accepts only a strict subset of RFC 9112: one space between
 * the request line's parts, visible ASCII in the URL, token header names, no folded lines, no repeated field.
 */

/** A plain request head, as recognised. */
export class PlainRequest {
  readonly method: 'GET' | 'HEAD';
  /** The absolute URL as sent (visible ASCII only). */
  readonly url: string;
  /**
   * Its header fields, flat (name, value, name, value…), names lower-cased, values without surrounding
   * whitespace, none repeated. (A list, not an object keyed by name: V8 keeps a fresh object per request
   * with arbitrary keys in its slow dictionary mode, and the parser was never optimised: 2.5 µs a head.)
   */
  readonly fields: readonly string[];
  /** Offset just past the head's empty line: where the next request starts. */
  readonly end: number;

  constructor(method: 'GET' | 'HEAD', url: string, fields: readonly string[], end: number) {
    this.method = method;
    this.url = url;
    this.fields = fields;
    this.end = end;
  }

  /** The value of the field `name` (lower case), or undefined. */
  field(name: string): string | undefined {
    return fieldIn(this.fields, name);
  }
}

function fieldIn(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/** The head is not complete yet in the bytes at hand. */
export const PARTIAL = 'partial';
/** The bytes are a request this does not recognise in full: Node's HTTP server reads it. */
export const OTHER = 'other';

/**
 * Fields that make a request more than a plain one: a body, a connection that ends or changes protocol, an
 * expectation, or credentials the gate must check.
 */
const NOT_PLAIN = new Set(['content-length', 'transfer-encoding', 'upgrade', 'expect', 'proxy-authorization', 'te', 'trailer']);

const CR = 13;
const LF = 10;
const SP = 32;
const HT = 9;
const COLON = 58;
const SLASH = 47;
const HEAD_END = Buffer.from('\r\n\r\n');
const HTTP11 = Buffer.from(' HTTP/1.1');
const SCHEME = Buffer.from('http://');

/** tchar of RFC 9110 §5.6.2, by byte. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1;

/**
 * The plain request whose head starts at `start` in `buf`, or PARTIAL (no complete head yet, and not too long
 * for one), or OTHER. `maxHeadBytes` and `maxFields` are the limits Node's server enforces: a head beyond
 * them is OTHER, so that Node answers it 431 as before. With `origin` (`https://host[:port]`, inside a
 * tunnel) the target is in origin form (`/path`), and the URL is the origin followed by it; without, the
 * target must be an absolute `http://` URL.
 */
export function parsePlainRequest(buf: Buffer, start: number, maxHeadBytes: number, maxFields: number, origin?: string): PlainRequest | typeof PARTIAL | typeof OTHER {
  const blank = buf.indexOf(HEAD_END, start);
  if (blank < 0) return buf.byteLength - start > maxHeadBytes ? OTHER : PARTIAL;
  if (blank + 4 - start > maxHeadBytes) return OTHER;
  let method: 'GET' | 'HEAD';
  let at: number;
  if (buf[start] === 0x47 && buf[start + 1] === 0x45 && buf[start + 2] === 0x54 && buf[start + 3] === SP) {
    method = 'GET';
    at = start + 4;
  } else if (buf[start] === 0x48 && buf[start + 1] === 0x45 && buf[start + 2] === 0x41 && buf[start + 3] === 0x44 && buf[start + 4] === SP) {
    method = 'HEAD';
    at = start + 5;
  } else return OTHER;
  if (origin === undefined ? !bytesAt(buf, at, SCHEME) : buf[at] !== SLASH) return OTHER;
  const urlStart = at;
  while (at < blank && buf[at]! > SP && buf[at]! < 0x7f) at++;
  if (!bytesAt(buf, at, HTTP11)) return OTHER;
  const target = buf.toString('latin1', urlStart, at);
  const url = origin === undefined ? target : origin + target;
  at += HTTP11.byteLength;
  if (buf[at] !== CR || buf[at + 1] !== LF) return OTHER;
  at += 2;
  const fields: string[] = [];
  // Each line: name ":" OWS value OWS CRLF; the head's last CRLF is at `blank + 2`.
  while (at < blank + 2) {
    if (fields.length >= 2 * maxFields) return OTHER;
    const nameStart = at;
    while (TCHAR[buf[at]!] === 1) at++;
    if (at === nameStart || buf[at] !== COLON) return OTHER;
    const name = fieldName(buf, nameStart, at);
    at++;
    while (buf[at] === SP || buf[at] === HT) at++;
    const valueStart = at;
    let valueEnd = at;
    for (;;) {
      const c = buf[at]!;
      if (c === CR) break;
      // Field content: visible characters, obs-text, and whitespace between them (RFC 9110 §5.5).
      if ((c < SP && c !== HT) || c === 0x7f) return OTHER;
      at++;
      if (c !== SP && c !== HT) valueEnd = at;
    }
    if (buf[at + 1] !== LF || NOT_PLAIN.has(name) || fieldIn(fields, name) !== undefined) return OTHER;
    const value = buf.toString('latin1', valueStart, valueEnd);
    if (name === 'connection' && value.toLowerCase() !== 'keep-alive') return OTHER;
    fields.push(name, value);
    at += 2;
  }
  // Node's server answers an HTTP/1.1 request without a host 400 (its `requireHostHeader`).
  if (fieldIn(fields, 'host') === undefined) return OTHER;
  return new PlainRequest(method, url, fields, blank + 4);
}

/**
 * Field names clients send on almost every request, lower case, by length: recognised in the bytes, their name
 * is this string, not a new one and its lower-case copy per field per request (issue #15).
 */
const KNOWN_NAMES: ReadonlyArray<readonly string[]> = (() => {
  const names = ['host', 'accept', 'accept-encoding', 'accept-language', 'user-agent', 'connection', 'cache-control', 'pragma', 'referer', 'range', 'if-range', 'if-none-match', 'if-modified-since', 'authorization', 'cookie', 'npm-command', 'npm-session', 'npm-auth-type', 'pnpm-session'];
  const byLength: string[][] = [];
  for (const n of names) (byLength[n.length] ??= []).push(n);
  return byLength;
})();

/** The lower-case name of the field whose (token) name is `buf[start, end)`. */
function fieldName(buf: Buffer, start: number, end: number): string {
  const known = KNOWN_NAMES[end - start];
  if (known !== undefined) {
    for (const name of known) if (sameIgnoringCase(buf, start, name)) return name;
  }
  return buf.toString('latin1', start, end).toLowerCase();
}

/**
 * Whether the token at `at` is `lower` (letters and hyphens only) in any case. Setting bit 0x20 lower-cases an
 * ASCII letter and keeps a hyphen; no other token character becomes a lower-case letter or a hyphen that way.
 */
function sameIgnoringCase(buf: Buffer, at: number, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) if ((buf[at + i]! | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

/** Whether `buf` holds `bytes` at `at` (a loop the JIT inlines: cheaper than a native call for a few bytes). */
function bytesAt(buf: Buffer, at: number, bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.byteLength; i++) if (buf[at + i] !== bytes[i]) return false;
  return true;
}
