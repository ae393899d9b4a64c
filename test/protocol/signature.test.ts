import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { encodeCborBlock } from '../../src/protocol/record.ts';
import { assertTrustedKey, recordSigningMessage, RECORD_SIGNATURE_PREFIX, signRecordCid, verifyRecordSignature } from '../../src/protocol/signature.ts';

describe('record signatures', () => {
  it('are ed25519 over the domain prefix and the record CID, identical to tweetnacl', async () => {
    const pair = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(9));
    const { cid } = await encodeCborBlock({ hello: 'world' });
    const signed = signRecordCid(cid, pair.secretKey);
    expect(new TextDecoder().decode(RECORD_SIGNATURE_PREFIX)).toBe('fetch-oracle/record/v1\n');
    expect(Buffer.from(signed.signature)).toEqual(Buffer.from(nacl.sign.detached(recordSigningMessage(cid), pair.secretKey)));
    expect(nacl.sign.detached.verify(recordSigningMessage(cid), signed.signature, pair.publicKey)).toBe(true);
    expect(() => verifyRecordSignature(signed, pair.publicKey)).not.toThrow();
  });

  it('rejects a flipped bit, another key, a wrong length and an untrusted key', async () => {
    const pair = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(1));
    const other = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(2));
    const { cid } = await encodeCborBlock({ n: 1 });
    const signed = signRecordCid(cid, pair.secretKey);
    const flipped = signed.signature.slice();
    flipped[10] = flipped[10]! ^ 1;
    expect(() => verifyRecordSignature({ record: cid, signature: flipped }, pair.publicKey)).toThrow(/Bad signature/);
    expect(() => verifyRecordSignature(signed, other.publicKey)).toThrow(/Bad signature/);
    expect(() => verifyRecordSignature({ record: cid, signature: signed.signature.subarray(1) }, pair.publicKey)).toThrow(/63 bytes/);
    expect(() => assertTrustedKey(pair.publicKey, [other.publicKey], 'Record x')).toThrow(/not trusted/);
  });
});
