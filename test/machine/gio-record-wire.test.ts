import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { BadRequestError, DeviceError, StoreError, UpstreamTimeoutError } from '../../src/errors.ts';
import { createRecordGioHandler } from '../../src/machine/gio-record.ts';
import type { DirectRecorder } from '../../src/machine/gio-record.ts';
import {
  decodeRecordReply,
  decodeRecordRequest,
  encodeRecordReply,
  encodeRecordRequest,
  MAX_RECORD_HEADERS,
  MAX_RECORD_REQUEST_BYTES,
} from '../../src/machine/gio-record-wire.ts';
import { GIO_RESPONSE_ERROR, GIO_RESPONSE_OK } from '../../src/machine/gio-responder.ts';
import type { DirectRequest } from '../../src/oracle/recorder.ts';
import type { DecodedEntry } from '../../src/netlock/file.ts';

const enc = (v: unknown): Uint8Array => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const good = { v: 1, method: 'GET', url: 'https://registry.example/pkg/-/pkg-1.0.0.tgz?token=abc', headers: [['Accept', 'application/json'], ['authorization', 'Bearer x']] };

async function someCid(): Promise<CID> {
  return CID.createV1(0x71, await sha256.digest(randomBytes(8)));
}

describe('GIO 0x26 request format', () => {
  it('round-trips a request: URL as sent (credentials kept for the fetch), header names lower-cased, method normalised', () => {
    const decoded = decodeRecordRequest(enc({ ...good, method: 'head' }));
    expect(decoded).toEqual({ method: 'HEAD', url: good.url, headers: [['accept', 'application/json'], ['authorization', 'Bearer x']] });
    expect(decodeRecordRequest(encodeRecordRequest(decoded))).toEqual(decoded);
  });

  it('refuses what is not a record request as ORACLE_ERR_DEVICE, naming what is wrong', () => {
    const cases: Array<[Uint8Array, RegExp]> = [
      [new Uint8Array([0xff, 0xfe]), /not UTF-8/],
      [enc('{"v":1'), /not JSON/],
      [enc([1, 2]), /expected a JSON object/],
      [enc({ ...good, v: 2 }), /"v" is 2, expected 1/],
      [enc({ ...good, method: 7 }), /"method" must be a string/],
      [enc({ ...good, url: null }), /"url" must be a string/],
      [enc({ ...good, extra: true }), /unknown field\(s\) "extra"/],
      [enc({ ...good, headers: {} }), /"headers" must be an array/],
      [enc({ ...good, headers: [['a']] }), /headers\[0\] must be a \[name, value\] pair/],
      [enc({ ...good, headers: [['a', 1]] }), /headers\[0\]/],
      [enc({ ...good, headers: Array.from({ length: MAX_RECORD_HEADERS + 1 }, () => ['a', 'b']) }), /exceeds the limit of 256/],
      [new Uint8Array(MAX_RECORD_REQUEST_BYTES + 1).fill(0x20), /exceeds the 262144-byte limit/],
    ];
    for (const [id, why] of cases) {
      const err = (() => {
        try {
          decodeRecordRequest(id);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err, String(why)).toBeInstanceOf(DeviceError);
      expect((err as Error).message).toMatch(/^Malformed GIO 0x26 record request: /);
      expect((err as Error).message).toMatch(why);
    }
  });

  it('refuses a request that cannot be recorded as ORACLE_ERR_BAD_REQUEST: method, body, URL, header names and values', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ ...good, method: 'GE T' }, /Invalid HTTP method/],
      [{ ...good, method: 'POST' }, /POST requests carry a body.*only GET and HEAD are recorded/],
      [{ ...good, body: 'eA==' }, /GET requests carry a body/],
      [{ ...good, url: '/relative' }, /Invalid URL/],
      [{ ...good, url: 'ftp://host/x' }, /Unsupported URL scheme/],
      [{ ...good, url: 'https://user:pw@host/x' }, /credentials/],
      [{ ...good, url: `https://host/${'a'.repeat(32 * 1024)}` }, /exceeds the 32768-byte limit/],
      [{ ...good, headers: [['bad name', 'x']] }, /Invalid header name/],
      [{ ...good, headers: [['x-a', 'one\r\nInjected: yes']] }, /not allowed in a field value/],
      [{ ...good, headers: [['x-a', 'snow ☃']] }, /not allowed in a field value/],
      [{ ...good, headers: [['x-a', 'v'.repeat(16 * 1024 + 1)]] }, /limit 16384/],
    ];
    for (const [value, why] of cases) {
      expect(() => decodeRecordRequest(enc(value)), String(why)).toThrow(BadRequestError);
      expect(() => decodeRecordRequest(enc(value))).toThrow(why);
    }
  });
});

describe('GIO 0x26 reply format', () => {
  it('round-trips the key, the record CID and the signature', async () => {
    const reply = { key: 'https://h/\nGET\naccept=*/*\nbody=', signed: { record: await someCid(), signature: new Uint8Array(randomBytes(64)) }, fetched: true };
    const decoded = decodeRecordReply(encodeRecordReply(reply));
    expect(decoded.key).toBe(reply.key);
    expect(decoded.signed.record.equals(reply.signed.record)).toBe(true);
    expect(Buffer.from(decoded.signed.signature).equals(Buffer.from(reply.signed.signature))).toBe(true);
    expect(decoded.fetched).toBe(true);
  });

  it('refuses a malformed reply as ORACLE_ERR_DEVICE', async () => {
    const record = (await someCid()).toString();
    const signature = Buffer.alloc(64, 1).toString('base64');
    const bad: unknown[] = [
      '{',
      [],
      { key: 'k', record, signature },
      { key: 'k', record, signature, fetched: true, more: 1 },
      { key: 'k', record: 'not-a-cid', signature, fetched: false },
      { key: 'k', record, signature: Buffer.alloc(63).toString('base64'), fetched: false },
      { key: 'k', record, signature: '!!!', fetched: false },
    ];
    for (const value of bad) expect(() => decodeRecordReply(enc(value)), JSON.stringify(value)).toThrow(/^Malformed GIO 0x26 reply from the host: /);
  });
});

describe('createRecordGioHandler', () => {
  const entryFor = async (request: DirectRequest): Promise<DecodedEntry> => ({ key: `${request.url}\nGET\naccept=*/*\nbody=`, signed: { record: await someCid(), signature: new Uint8Array(64) }, record: { response: { status: 200 } } as DecodedEntry['record'] });

  it('records through recordDirect with answerFailures and answers the entry it gets', async () => {
    const calls: Array<{ request: DirectRequest; answerFailures: boolean | undefined }> = [];
    const recorder: DirectRecorder = {
      async recordDirect(request, options) {
        calls.push({ request, answerFailures: options?.answerFailures });
        return { entry: await entryFor(request), fetched: calls.length === 1 };
      },
    };
    const gio = createRecordGioHandler(recorder);
    const first = await gio.handle(enc(good));
    expect(first.code).toBe(GIO_RESPONSE_OK);
    const reply = decodeRecordReply(first.data);
    expect(reply.key.startsWith(good.url)).toBe(true);
    expect(reply.fetched).toBe(true);
    expect(decodeRecordReply((await gio.handle(enc(good))).data).fetched).toBe(false);
    expect(calls[0]).toEqual({ request: { method: 'GET', url: good.url, headers: [['accept', 'application/json'], ['authorization', 'Bearer x']] }, answerFailures: true });
    expect(gio.counters).toEqual({ recorded: 2, fetched: 1, refused: 0 });
  });

  it('answers every failure in band (a malformed id, an unrecorded timeout, a store failure); rejects only once aborted', async () => {
    let fail: Error = new UpstreamTimeoutError('Upstream GET https://h/x timed out after 30000 ms');
    const recorder: DirectRecorder = { recordDirect: () => Promise.reject(fail) };
    const gio = createRecordGioHandler(recorder);
    const malformed = await gio.handle(enc('nope'));
    expect(malformed.code).toBe(GIO_RESPONSE_ERROR);
    expect(text(malformed.data)).toMatch(/^ORACLE_ERR_DEVICE: Malformed GIO 0x26 record request: not JSON/);
    const timeout = await gio.handle(enc(good));
    expect(timeout.code).toBe(GIO_RESPONSE_ERROR);
    expect(text(timeout.data)).toBe('ORACLE_ERR_UPSTREAM_TIMEOUT: Upstream GET https://h/x timed out after 30000 ms');
    fail = new StoreError('disk full');
    expect(text((await gio.handle(enc(good))).data)).toBe('ORACLE_ERR_STORE: disk full');
    expect(gio.counters.refused).toBe(3);
    const aborted = new AbortController();
    aborted.abort();
    await expect(gio.handle(enc(good), aborted.signal)).rejects.toThrow('disk full');
  });
});
