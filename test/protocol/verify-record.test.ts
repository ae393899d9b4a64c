import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { mapSource } from '../../src/protocol/blocks.ts';
import { encodeRecord } from '../../src/protocol/record.ts';
import type { FetchRecord } from '../../src/protocol/record.ts';
import { computeRequestKey, withMethod } from '../../src/protocol/request-key.ts';
import { signRecordCid } from '../../src/protocol/signature.ts';
import { loadVerifiedRecord, verifyRecord } from '../../src/protocol/verify-record.ts';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const oracle = new Uint8Array(Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url'));
const key = computeRequestKey({ method: 'GET', url: 'https://h.example/a', headers: { accept: 'application/json' } });

function recordFor(url: string, accept = 'application/json'): FetchRecord {
  return {
    v: 1,
    request: { method: 'GET', url, headers: { accept } },
    response: { status: 404, headers: [], body: null, size: 0, sha256: new Uint8Array(32), sha512: new Uint8Array(64) },
    fetchedAt: '2024-01-01T00:00:00.000Z',
    oracle,
  };
}

describe('verifyRecord', () => {
  it('accepts a trusted record that answers its key', async () => {
    const record = recordFor(key.url);
    const block = await encodeRecord(record);
    const signed = signRecordCid(block.cid, privateKey);
    expect(() => verifyRecord(signed, record, key, [oracle])).not.toThrow();
    const loaded = await loadVerifiedRecord(signed, key, mapSource(new Map([[block.cid.toString(), block.bytes]])), [oracle]);
    expect(loaded.request.url).toBe(key.url);
  });

  it('refuses an untrusted key, a bad signature, and a record filed under another key', async () => {
    const record = recordFor(key.url);
    const signed = signRecordCid((await encodeRecord(record)).cid, privateKey);
    expect(() => verifyRecord(signed, record, key, [])).toThrow(expect.objectContaining({ code: 'ORACLE_ERR_UNTRUSTED_KEY' }));
    const flipped = { record: signed.record, signature: signed.signature.map((b, i) => (i === 0 ? b ^ 1 : b)) };
    expect(() => verifyRecord(flipped, record, key, [oracle])).toThrow(expect.objectContaining({ code: 'ORACLE_ERR_BAD_SIGNATURE' }));
    const elsewhere = recordFor('https://h.example/b');
    const signedElsewhere = signRecordCid((await encodeRecord(elsewhere)).cid, privateKey);
    expect(() => verifyRecord(signedElsewhere, elsewhere, key, [oracle])).toThrow(expect.objectContaining({ code: 'ORACLE_ERR_INVALID_RECORD' }));
    const variant = recordFor(key.url, 'text/html');
    const signedVariant = signRecordCid((await encodeRecord(variant)).cid, privateKey);
    expect(() => verifyRecord(signedVariant, variant, key, [oracle])).toThrow(/answers GET https:\/\/h.example\/a, not the netlock key/);
    expect(() => verifyRecord(signed, record, withMethod(key, 'HEAD'), [oracle])).toThrow(expect.objectContaining({ code: 'ORACLE_ERR_INVALID_RECORD' }));
  });
});
