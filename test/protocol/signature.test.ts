import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { encodeCborBlock } from '../../src/protocol/record.ts';
import { assertTrustedKey, recordSigningMessage, RECORD_SIGNATURE_PREFIX, signRecordCid, verifyRecordSignature, verifyRecordSignatureInPool } from '../../src/protocol/signature.ts';

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

  it('are checked the same on the thread pool, many at once: good ones pass, each bad one is refused as such', async () => {
    const pair = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(1));
    const other = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(2));
    const signed = await Promise.all(Array.from({ length: 40 }, async (_, n) => signRecordCid((await encodeCborBlock({ n })).cid, pair.secretKey)));
    await Promise.all(signed.map((s) => verifyRecordSignatureInPool(s, pair.publicKey)));
    const flipped = signed[3]!.signature.slice();
    flipped[10] = flipped[10]! ^ 1;
    const notAPoint = new Uint8Array(32).fill(0xff);
    const outcomes = await Promise.allSettled([
      verifyRecordSignatureInPool({ record: signed[3]!.record, signature: flipped }, pair.publicKey),
      verifyRecordSignatureInPool(signed[4]!, other.publicKey),
      verifyRecordSignatureInPool({ record: signed[5]!.record, signature: signed[5]!.signature.subarray(1) }, pair.publicKey),
      verifyRecordSignatureInPool(signed[6]!, notAPoint),
      verifyRecordSignatureInPool(signed[7]!, pair.publicKey),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected', 'fulfilled']);
    const reasons = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as Error & { code: string }] : []));
    expect(reasons.map((r) => r.code)).toEqual(Array(4).fill('ORACLE_ERR_BAD_SIGNATURE'));
    expect(reasons.map((r) => r.message)).toEqual([expect.stringMatching(/Bad signature/), expect.stringMatching(/Bad signature/), expect.stringMatching(/63 bytes/), expect.stringMatching(/Bad signature/)]);
    for (const s of [{ record: signed[3]!.record, signature: flipped }, signed[6]!]) expect(() => verifyRecordSignature(s, s === signed[6] ? notAPoint : pair.publicKey)).toThrow(/Bad signature/); // as the blocking check says
  });
});
