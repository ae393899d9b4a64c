import type { CID } from 'multiformats/cid';
import type { FetchRecord } from './record.ts';

const UINT = 0 << 5;
const BYTES = 2 << 5;
const TEXT = 3 << 5;
const ARRAY = 4 << 5;
const MAP = 5 << 5;
const NULL = 0xf6;
/** Tag 42 (a CID link, DAG-CBOR spec): 0xd8 0x2a, then its bytes behind a 0x00 (the identity multibase). */
const CID_TAG = 0x2a;
/** Strings up to this length are written by `CborWriter.text` itself when they are ASCII. */
const SHORT_TEXT = 128;

/**
 * A record's DAG-CBOR bytes, written field by field in the canonical order (map keys by length, then
 * bytewise; integers and lengths in their shortest form; strings UTF-8, a lone surrogate as U+FFFD), which is
 * what `@ipld/dag-cbor` gives for the same value: `test/protocol/record-cbor.test.ts` compares the two on
 * thousands of records. Written here because a record's shape is fixed, so its key order is known in advance:
 * the generic encoder found each value's type, sorted every map and encoded strings in JavaScript, ~8 KB of
 * garbage and ~5% of a 4 KiB record's CPU (issue #15, session 26). Undefined when `record` carries a field
 * its type does not declare: the caller then uses the generic encoder, which writes it.
 */
export function encodeRecordCbor(record: FetchRecord): Uint8Array | undefined {
  const { request, response, attestation } = record;
  const optional = attestation === undefined ? 0 : 1;
  if (!hasKeys(record, 5 + optional) || !hasKeys(request, request.bodyDigest === undefined ? 3 : 4) || !hasKeys(response, 6)) return undefined;
  const w = writer.reset();
  w.head(MAP, 5 + optional);
  w.raw(KEY.v).uint(record.v);
  w.raw(KEY.oracle).bytes(record.oracle);
  w.raw(KEY.request).head(MAP, request.bodyDigest === undefined ? 3 : 4);
  w.raw(KEY.url).text(request.url);
  w.raw(KEY.method).text(request.method);
  w.raw(KEY.headers);
  const names = Object.keys(request.headers).sort(canonicalOrder);
  w.head(MAP, names.length);
  for (const name of names) w.text(name).text(request.headers[name]!);
  if (request.bodyDigest !== undefined) w.raw(KEY.bodyDigest).text(request.bodyDigest);
  w.raw(KEY.response).head(MAP, 6);
  w.raw(KEY.body);
  if (response.body === null) w.byte(NULL);
  else w.cid(response.body);
  w.raw(KEY.size).uint(response.size);
  w.raw(KEY.sha256).bytes(response.sha256);
  w.raw(KEY.sha512).bytes(response.sha512);
  w.raw(KEY.status).uint(response.status);
  w.raw(KEY.headers).head(ARRAY, response.headers.length);
  for (const [name, value] of response.headers) w.head(ARRAY, 2).text(name).text(value);
  w.raw(KEY.fetchedAt).text(record.fetchedAt);
  if (attestation !== undefined) w.raw(KEY.attestation).cid(attestation);
  return w.take();
}

/** Whether `value` has exactly `count` own enumerable keys (the ones the encoder writes). */
function hasKeys(value: object, count: number): boolean {
  let n = 0;
  for (const key in value) if (Object.hasOwn(value, key)) n++;
  return n === count;
}

/** DAG-CBOR's map key order: shorter UTF-8 first, then bytewise. */
function canonicalOrder(a: string, b: string): number {
  const byLength = Buffer.byteLength(a) - Buffer.byteLength(b);
  return byLength !== 0 ? byLength : Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Appends CBOR items to one scratch buffer, grown as needed and reused by every record. */
class CborWriter {
  #buf = Buffer.allocUnsafe(4096);
  #at = 0;

  reset(): this {
    this.#at = 0;
    return this;
  }

  byte(b: number): this {
    this.#room(1);
    this.#buf[this.#at++] = b;
    return this;
  }

  /** A major type with its argument (a length, or the integer itself for UINT) in the shortest form. */
  head(major: number, n: number): this {
    this.#room(9);
    const buf = this.#buf;
    if (n < 24) buf[this.#at++] = major | n;
    else if (n < 0x100) {
      buf[this.#at++] = major | 24;
      buf[this.#at++] = n;
    } else if (n < 0x10000) {
      buf[this.#at++] = major | 25;
      this.#at = buf.writeUInt16BE(n, this.#at);
    } else if (n < 0x100000000) {
      buf[this.#at++] = major | 26;
      this.#at = buf.writeUInt32BE(n, this.#at);
    } else {
      buf[this.#at++] = major | 27;
      this.#at = buf.writeUInt32BE(Math.floor(n / 0x100000000), this.#at);
      this.#at = buf.writeUInt32BE(n >>> 0, this.#at);
    }
    return this;
  }

  uint(n: number): this {
    return this.head(UINT, n);
  }

  text(s: string): this {
    // Short ASCII strings (most names and values) are copied here: a call into Buffer costs more than them.
    if (s.length <= SHORT_TEXT) {
      const start = this.#at;
      this.head(TEXT, s.length);
      this.#room(s.length);
      const buf = this.#buf;
      let at = this.#at;
      for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) break;
        buf[at++] = c;
      }
      if (at - this.#at === s.length) {
        this.#at = at;
        return this;
      }
      this.#at = start;
    }
    const length = Buffer.byteLength(s);
    this.head(TEXT, length);
    this.#room(length);
    this.#at += this.#buf.write(s, this.#at, 'utf8');
    return this;
  }

  bytes(b: Uint8Array): this {
    this.head(BYTES, b.byteLength);
    return this.raw(b);
  }

  cid(cid: CID): this {
    this.#room(2);
    this.#buf[this.#at++] = 0xd8;
    this.#buf[this.#at++] = CID_TAG;
    this.head(BYTES, cid.bytes.byteLength + 1);
    this.byte(0);
    return this.raw(cid.bytes);
  }

  /** Bytes already encoded (a map key encoded once at load), or a byte string's contents. */
  raw(b: Uint8Array): this {
    this.#room(b.byteLength);
    this.#buf.set(b, this.#at);
    this.#at += b.byteLength;
    return this;
  }

  /** The bytes written, copied out (the scratch buffer is the next record's); a small record into Node's buffer pool. */
  take(): Uint8Array {
    const copy = Buffer.from(this.#buf.subarray(0, this.#at));
    return new Uint8Array(copy.buffer, copy.byteOffset, copy.byteLength);
  }

  #room(n: number): void {
    if (this.#at + n <= this.#buf.byteLength) return;
    const grown = Buffer.allocUnsafe(Math.max(this.#buf.byteLength * 2, this.#at + n));
    this.#buf.copy(grown, 0, 0, this.#at);
    this.#buf = grown;
  }
}

const writer = new CborWriter();

function encodedKey(name: string): Uint8Array {
  return new CborWriter().text(name).take();
}

const KEY = {
  v: encodedKey('v'),
  oracle: encodedKey('oracle'),
  request: encodedKey('request'),
  response: encodedKey('response'),
  fetchedAt: encodedKey('fetchedAt'),
  attestation: encodedKey('attestation'),
  url: encodedKey('url'),
  method: encodedKey('method'),
  headers: encodedKey('headers'),
  bodyDigest: encodedKey('bodyDigest'),
  body: encodedKey('body'),
  size: encodedKey('size'),
  sha256: encodedKey('sha256'),
  sha512: encodedKey('sha512'),
  status: encodedKey('status'),
};
