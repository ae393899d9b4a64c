import { createPublicKey, verify } from 'node:crypto';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { encodeCborBlock } from '../../src/protocol/record.ts';
import { recordSigningMessage, signRecordCid, verifyRecordSignature, verifyRecordSignatureInPool } from '../../src/protocol/signature.ts';
import type { SignedRecord } from '../../src/protocol/signature.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';

/** OpenSSL's own verdict, through Node, without anything in front of it. */
function openSslAccepts(signed: SignedRecord, publicKey: Uint8Array): boolean {
  try {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' });
    return verify(null, recordSigningMessage(signed.record), key, signed.signature);
  } catch {
    return false;
  }
}

function accepted(signed: SignedRecord, publicKey: Uint8Array): boolean {
  try {
    verifyRecordSignature(signed, publicKey);
    return true;
  } catch {
    return false;
  }
}

/** The verdict of the check for many records at once (libsodium on this thread first here: two cores). */
function acceptedInPool(signed: SignedRecord, publicKey: Uint8Array): Promise<boolean> {
  return verifyRecordSignatureInPool(signed, publicKey).then(
    () => true,
    () => false,
  );
}

/** The group order L, little-endian (RFC 8032 §5.1). */
const L = Buffer.from('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010', 'hex');

function plusL(s: Uint8Array): Uint8Array {
  const out = new Uint8Array(32);
  let carry = 0;
  for (let i = 0; i < 32; i++) {
    const v = s[i]! + L[i]! + carry;
    out[i] = v & 0xff;
    carry = v >> 8;
  }
  return out;
}

describe('record signature verdicts: OpenSSL\'s, with libsodium in front where it loads', () => {
  it('libsodium loads here, so the verdicts below go through it first', () => {
    expect(loadSodium()).not.toBeNull();
  });

  it('a signature only OpenSSL accepts (the identity point as key and R, S = 0) is accepted, as OpenSSL decides', async () => {
    const { cid } = await encodeCborBlock({ hello: 'small order' });
    const identity = new Uint8Array(32);
    identity[0] = 1;
    const signature = new Uint8Array(64);
    signature[0] = 1;
    const signed = { record: cid, signature };
    // libsodium refuses small-order keys; OpenSSL checks only the equation, which holds.
    expect(loadSodium()!.crypto_sign_verify_detached(signature, recordSigningMessage(cid), identity)).toBe(false);
    expect(openSslAccepts(signed, identity)).toBe(true);
    expect(accepted(signed, identity)).toBe(true);
    expect(await acceptedInPool(signed, identity)).toBe(true);
  });

  it('agrees with OpenSSL on good signatures and on every kind of damage to them, for 60 keys, one at a time and many at once', async () => {
    let checked = 0;
    for (let k = 0; k < 60; k++) {
      const pair = nacl.sign.keyPair.fromSeed(new Uint8Array(32).map((_, i) => (k * 13 + i * 7) & 0xff));
      const { cid } = await encodeCborBlock({ k });
      const good = signRecordCid(cid, pair.secretKey);
      const other = (await encodeCborBlock({ k, other: true })).cid;
      const flipR = good.signature.slice();
      flipR[k % 32] = flipR[k % 32]! ^ (1 << (k % 8));
      const flipS = good.signature.slice();
      flipS[32 + (k % 31)] = flipS[32 + (k % 31)]! ^ 1;
      const sPlusL = good.signature.slice();
      sPlusL.set(plusL(good.signature.subarray(32)), 32); // the same S modulo L, not canonical
      const flipKey = pair.publicKey.slice();
      flipKey[k % 32] = flipKey[k % 32]! ^ 2;
      const cases: Array<[SignedRecord, Uint8Array]> = [
        [good, pair.publicKey],
        [{ record: other, signature: good.signature }, pair.publicKey],
        [{ record: cid, signature: flipR }, pair.publicKey],
        [{ record: cid, signature: flipS }, pair.publicKey],
        [{ record: cid, signature: sPlusL }, pair.publicKey],
        [good, flipKey],
      ];
      for (const [signed, key] of cases) {
        const verdict = openSslAccepts(signed, key);
        expect(accepted(signed, key)).toBe(verdict);
        expect(await acceptedInPool(signed, key)).toBe(verdict);
        checked++;
      }
      expect(accepted(good, pair.publicKey)).toBe(true);
      expect(accepted({ record: cid, signature: sPlusL }, pair.publicKey)).toBe(false);
    }
    expect(checked).toBe(360);
  });
});
