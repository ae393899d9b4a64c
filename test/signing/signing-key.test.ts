import { generateKeyPairSync } from 'node:crypto';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { signCountersignatureCid, verifyCountersignatureSignature } from '../../src/protocol/countersignature.ts';
import { encodeCborBlock } from '../../src/protocol/record.ts';
import { privateKeyObject, signRecordCid, verifyRecordSignature } from '../../src/protocol/signature.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import type { Sodium } from '../../src/protocol/sodium.ts';
import { SigningKey } from '../../src/signing/signing-key.ts';
import { LocalSigner } from '../../src/signing/local-signer.ts';

/** Record-like CIDs of every shape a record can have: DAG-CBOR and raw, sha2-256, of varied content. */
async function someCids(n: number): Promise<CID[]> {
  const cids: CID[] = [];
  for (let i = 0; i < n; i++) {
    cids.push(i % 3 === 0 ? CID.createV1(0x55, await sha256.digest(new Uint8Array([i, i >> 8, 7]))) : (await encodeCborBlock({ i, url: `http://example.test/${'x'.repeat(i)}` })).cid);
  }
  return cids;
}

describe('record signing through libsodium', () => {
  it('loads here: linux-x64 has sodium-native prebuilt, so records are signed by libsodium', () => {
    expect(loadSodium()).not.toBeNull();
    expect(LocalSigner.fromSeed(new Uint8Array(32).fill(3)).backend).toBe('libsodium');
  });

  it('gives the bytes Node (OpenSSL) and tweetnacl give, for 200 keys and records, each verifying', async () => {
    const cids = await someCids(20);
    for (let k = 0; k < 200; k++) {
      const seed = new Uint8Array(32).map((_, i) => (k * 31 + i * 17 + (k >> 3)) & 0xff);
      const pair = nacl.sign.keyPair.fromSeed(seed);
      const sodiumKey = new SigningKey(privateKeyObject(pair.secretKey), pair.secretKey);
      expect(sodiumKey.backend).toBe('libsodium');
      const cid = cids[k % cids.length]!;
      const signed = sodiumKey.sign(cid);
      expect(signed.record).toBe(cid);
      expect(Buffer.from(signed.signature)).toEqual(Buffer.from(signRecordCid(cid, pair.secretKey).signature));
      expect(() => verifyRecordSignature(signed, pair.publicKey)).not.toThrow();
    }
  });

  it('countersigns through libsodium too: the bytes Node gives, verifying as a countersignature', async () => {
    const seed = new Uint8Array(32).fill(8);
    const signer = LocalSigner.fromSeed(seed);
    const pair = nacl.sign.keyPair.fromSeed(seed);
    for (const cid of await someCids(6)) {
      const signed = signer.countersign(cid);
      expect(Buffer.from(signed.signature)).toEqual(Buffer.from(signCountersignatureCid(cid, pair.secretKey).signature));
      expect(() => verifyCountersignatureSignature(signed, pair.publicKey)).not.toThrow();
      expect(() => verifyRecordSignature({ record: cid, signature: signed.signature }, pair.publicKey)).toThrow(/Bad signature/);
    }
  });

  it('signs with Node where libsodium cannot load, the same bytes', async () => {
    const pair = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(5));
    const withNode = new SigningKey(privateKeyObject(pair.secretKey), pair.secretKey, null);
    const withSodium = new SigningKey(privateKeyObject(pair.secretKey), pair.secretKey);
    expect(withNode.backend).toBe('node');
    for (const cid of await someCids(6)) expect(Buffer.from(withNode.sign(cid).signature)).toEqual(Buffer.from(withSodium.sign(cid).signature));
  });

  it('signs with Node when libsodium refuses its guarded memory (a locked-memory limit), the same bytes', async () => {
    const pair = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(6));
    const refusing: Sodium = {
      ...loadSodium()!,
      sodium_malloc: () => {
        throw new Error('ENOMEM');
      },
    };
    const key = new SigningKey(privateKeyObject(pair.secretKey), pair.secretKey, refusing);
    expect(key.backend).toBe('node');
    const [cid] = await someCids(1);
    expect(Buffer.from(key.sign(cid!).signature)).toEqual(Buffer.from(signRecordCid(cid!, pair.secretKey).signature));
  });

  it('takes a key object alone (the enclave-born key): its seed from its export, the same signatures', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const raw = new Uint8Array(Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url'));
    const key = SigningKey.fromKeyObject(privateKey);
    expect(key.backend).toBe('libsodium');
    for (const cid of await someCids(6)) {
      const signed = key.sign(cid);
      expect(Buffer.from(signed.signature)).toEqual(Buffer.from(signRecordCid(cid, privateKey).signature));
      expect(() => verifyRecordSignature(signed, raw)).not.toThrow();
    }
  });

  it('signatures of one key differ for every record, and none verifies for another record', async () => {
    const pair = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(11));
    const key = new SigningKey(privateKeyObject(pair.secretKey), pair.secretKey);
    const cids = await someCids(12);
    const signed = cids.map((cid) => key.sign(cid));
    expect(new Set(signed.map((s) => Buffer.from(s.signature).toString('hex'))).size).toBe(cids.length);
    expect(() => verifyRecordSignature({ record: cids[1]!, signature: signed[0]!.signature }, pair.publicKey)).toThrow(/Bad signature/);
  });
});
