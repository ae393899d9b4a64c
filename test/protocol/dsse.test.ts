import { verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { IN_TOTO_PAYLOAD_TYPE, pae, parseEnvelope, signEnvelope, verifyEnvelope } from '../../src/protocol/dsse.ts';
import type { DsseEnvelope } from '../../src/protocol/dsse.ts';
import { privateKeyObject, publicKeyObject, toHex } from '../../src/protocol/signature.ts';
import { LocalSigner } from '../../src/signing/local-signer.ts';
import nacl from 'tweetnacl';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const pair = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(3));
const other = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(4));
const sign = (payload: Uint8Array, type = IN_TOTO_PAYLOAD_TYPE): DsseEnvelope => signEnvelope(type, payload, privateKeyObject(pair.secretKey), pair.publicKey);

describe('pae', () => {
  it('is "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, as the DSSE protocol defines', () => {
    // The example of DSSE protocol.md.
    expect(Buffer.from(pae('http://example.com/HelloWorld', enc('hello world'))).toString()).toBe('DSSEv1 29 http://example.com/HelloWorld 11 hello world');
    expect(Buffer.from(pae('', new Uint8Array())).toString()).toBe('DSSEv1 0  0 ');
  });

  it('counts bytes, not characters, for a multi-byte type and body', () => {
    const out = pae('tÿpe', enc('€'));
    expect(Buffer.from(out).toString()).toBe('DSSEv1 5 tÿpe 3 €');
  });
});

describe('signEnvelope / verifyEnvelope', () => {
  const payload = enc('{"_type":"https://in-toto.io/Statement/v1"}');

  it('signs the PAE (not the payload) with ed25519, keyid the public key in hex, base64 fields', () => {
    const e = sign(payload);
    expect(e.payloadType).toBe(IN_TOTO_PAYLOAD_TYPE);
    expect(Buffer.from(e.payload, 'base64')).toEqual(Buffer.from(payload));
    expect(e.signatures).toHaveLength(1);
    expect(e.signatures[0]!.keyid).toBe(toHex(pair.publicKey));
    const sig = Buffer.from(e.signatures[0]!.sig, 'base64');
    expect(verify(null, pae(IN_TOTO_PAYLOAD_TYPE, payload), publicKeyObject(pair.publicKey), sig)).toBe(true);
    expect(verify(null, payload, publicKeyObject(pair.publicKey), sig)).toBe(false);
    // tweetnacl (another ed25519 implementation) agrees.
    expect(nacl.sign.detached.verify(pae(IN_TOTO_PAYLOAD_TYPE, payload), sig, pair.publicKey)).toBe(true);
  });

  it('LocalSigner.signEnvelope signs with the oracle key', () => {
    const signer = LocalSigner.fromSeed(new Uint8Array(32).fill(3));
    expect(signer.signEnvelope(IN_TOTO_PAYLOAD_TYPE, payload)).toEqual(sign(payload));
  });

  it('returns the exact payload bytes for a trusted key, from a parsed envelope line', () => {
    const e = parseEnvelope(JSON.stringify(sign(payload)));
    const v = verifyEnvelope(e, [other.publicKey, pair.publicKey]);
    expect(v.payload).toEqual(payload);
    expect(v.publicKey).toEqual(pair.publicKey);
  });

  it('refuses another payload type before looking at signatures', () => {
    expect(() => verifyEnvelope(sign(payload, 'application/json'), [pair.publicKey])).toThrow(expect.objectContaining({ code: 'ORACLE_ERR_INVALID_PROVENANCE' }));
    // The type is inside the PAE: relabelling a signed envelope breaks its signature.
    expect(() => verifyEnvelope({ ...sign(payload, 'application/json'), payloadType: IN_TOTO_PAYLOAD_TYPE }, [pair.publicKey])).toThrow(expect.objectContaining({ code: 'ORACLE_ERR_BAD_SIGNATURE' }));
  });

  it('refuses a changed payload and a changed signature (ORACLE_ERR_BAD_SIGNATURE)', () => {
    const e = sign(payload);
    const changed = Buffer.from(payload);
    changed[5] = changed[5]! ^ 1;
    expect(() => verifyEnvelope({ ...e, payload: changed.toString('base64') }, [pair.publicKey])).toThrow(expect.objectContaining({ code: 'ORACLE_ERR_BAD_SIGNATURE' }));
    const sig = Buffer.from(e.signatures[0]!.sig, 'base64');
    sig[0] = sig[0]! ^ 1;
    expect(() => verifyEnvelope({ ...e, signatures: [{ ...e.signatures[0]!, sig: sig.toString('base64') }] }, [pair.publicKey])).toThrow(expect.objectContaining({ code: 'ORACLE_ERR_BAD_SIGNATURE' }));
  });

  it('says a valid signature by a key that is not trusted is untrusted (ORACLE_ERR_UNTRUSTED_KEY), naming it', () => {
    expect(() => verifyEnvelope(sign(payload), [other.publicKey])).toThrow(expect.objectContaining({ code: 'ORACLE_ERR_UNTRUSTED_KEY', message: expect.stringContaining(toHex(pair.publicKey)) as string }));
  });

  it('treats the keyid as a hint: a signature under another keyid still verifies with a trusted key', () => {
    const e = sign(payload);
    expect(verifyEnvelope({ ...e, signatures: [{ keyid: '', sig: e.signatures[0]!.sig }] }, [pair.publicKey]).publicKey).toEqual(pair.publicKey);
  });

  it('parseEnvelope refuses malformed envelopes with ORACLE_ERR_INVALID_PROVENANCE', () => {
    for (const bad of ['not json', '[]', '{"payloadType":"x","signatures":[{"sig":""}]}', '{"payload":"","payloadType":"x","signatures":[]}', '{"payload":"","payloadType":"x","signatures":[{"keyid":1,"sig":""}]}']) {
      expect(() => parseEnvelope(bad), bad).toThrow(expect.objectContaining({ code: 'ORACLE_ERR_INVALID_PROVENANCE' }));
    }
    expect(() => verifyEnvelope({ payload: '%%%', payloadType: IN_TOTO_PAYLOAD_TYPE, signatures: [{ keyid: '', sig: '' }] }, [pair.publicKey])).toThrow(expect.objectContaining({ code: 'ORACLE_ERR_INVALID_PROVENANCE' }));
  });
});
