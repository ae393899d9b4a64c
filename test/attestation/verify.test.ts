import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { decode as cborDecode } from 'cborg';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { MockInstance } from 'vitest';
import {
  AWS_NITRO_ROOT_G1_DER_SHA256,
  AWS_NITRO_ROOT_G1_PEM,
  AttestationError,
  MAX_DOCUMENT_BYTES,
  attestationToJson,
  decodeAttestation,
  parseAttestationInput,
  verifyAttestation,
} from '../../src/attestation/index.ts';
import type { AttestationDocument, AttestationErrorCode, VerifyAttestationOptions } from '../../src/attestation/index.ts';
import {
  Entries,
  Indefinite,
  PROTECTED_ES384,
  T0,
  cbor,
  createPki,
  defaultPcrs,
  generateSigningKey,
  makeDocument,
  payloadMap,
  pcrValue,
  selfSigned,
} from './synthetic.ts';
import type { Pki } from './synthetic.ts';

// ---------------------------------------------------------------------------------------------------------
// Fixtures and helpers

const FIXTURES = new URL('../fixtures/nitro/', import.meta.url);

function fixtureText(name: string): string {
  return readFileSync(new URL(name, FIXTURES), 'utf8');
}

function loadVector(name: string): Uint8Array {
  return new Uint8Array(Buffer.from(fixtureText(`${name}.b64`), 'base64'));
}

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const ZERO48 = '0'.repeat(96);

interface Vector {
  name: string;
  sha256: string;
  moduleId: string;
  timestamp: number;
  leafNotBefore: string;
  leafNotAfter: string;
  debug: boolean;
  /** Non-zero PCRs; every other PCR 0..15 is all zero. */
  pcrs: Record<number, string>;
  publicKey: number | null;
  userData: number | null;
  nonce: number | null;
}

const PROD_PCR0 = 'e72a46ca80a260fb044a125442f0c7e331813bcbaf9724d9f3857758992766f2d65710a27aa94ae3949dd54e7c9fe86a';
const PROD_PCR1 = '0343b056cd8485ca7890ddd833476d78460aed2aa161548e4e26bedf321726696257d623e8805f3f605946b3d8b0c6aa';
const PROD_PCR2 = 'd5dcbdea0aa39c802f9d55ced2ea6e4d74ecec5f08fe40c508882639c9090642669106a062a3e24ee2805a3024b9b75c';
const NITRITE_PCR4 = '45706d7b621e4620a332e147a5ddb000b049f73d47d3e61f6b03d2069152d4df6a4a786ad1c10102b955799a9dc96b44';
const EVERVAULT_PCR3 = '4a9329d69c836267b18abbf9f4a38889124490453419e426818626348d21f989dc930b1562682a9082887454e53425aa';

const VECTORS: Vector[] = [
  {
    name: 'nitrite-production',
    sha256: '72ffd835a669cad29f11314fb4185bd89eaed2762e30dc25282c663606ee30ee',
    moduleId: 'i-0a22e5c5f24d22174-enc0191cceb4289903f',
    timestamp: 1725719859545,
    leafNotBefore: '2024-09-07T14:37:36Z',
    leafNotAfter: '2024-09-07T17:37:39Z',
    debug: false,
    pcrs: { 0: PROD_PCR0, 1: PROD_PCR1, 2: PROD_PCR2, 4: NITRITE_PCR4 },
    publicKey: 1024,
    userData: 1024,
    nonce: 1024,
  },
  {
    name: 'nitrite-debug',
    sha256: 'f67dfb87bcae0916bf4b4b6a35572e590ec6f8dd49323dda4727e6fcc39a62ec',
    moduleId: 'i-0a22e5c5f24d22174-enc0191ccebaf8feaba',
    timestamp: 1725719886508,
    leafNotBefore: '2024-09-07T14:38:03Z',
    leafNotAfter: '2024-09-07T17:38:06Z',
    debug: true,
    pcrs: { 4: NITRITE_PCR4 },
    publicKey: 1024,
    userData: 1024,
    nonce: 1024,
  },
  {
    name: 'evervault-ga',
    sha256: '6f80ac250af2f06f1e423051f64a8b29926cc474a728d0bf1f7a4d21074ec9e5',
    moduleId: 'i-0918f6c55e3b61d89-enc018aa8b8e2285d13',
    timestamp: 1695049410860,
    leafNotBefore: '2023-09-18T14:37:09Z',
    leafNotAfter: '2023-09-18T17:37:12Z',
    debug: true,
    pcrs: { 3: EVERVAULT_PCR3, 4: 'd0531b1400dd43288c82c226c16bf647c637dd5e4d9b4f7a8aaadc6d6760b854a06c7008cca0d15ca80094dd33a65065' },
    publicKey: null,
    userData: 91,
    nonce: 256,
  },
];

async function rejection(promise: Promise<unknown>): Promise<AttestationError> {
  const outcome = await promise.then(
    () => ({ ok: true as const }),
    (error: unknown) => ({ ok: false as const, error }),
  );
  if (outcome.ok) throw new Error('expected verification to fail, but it succeeded');
  expect(outcome.error).toBeInstanceOf(AttestationError);
  return outcome.error as AttestationError;
}

async function expectRejects(promise: Promise<unknown>, code: AttestationErrorCode, message?: RegExp): Promise<AttestationError> {
  const error = await rejection(promise);
  expect(error.code, error.message).toBe(code);
  if (message !== undefined) expect(error.message).toMatch(message);
  return error;
}

function expectThrows(fn: () => unknown, code: AttestationErrorCode, message?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(AttestationError);
  expect((caught as AttestationError).code, (caught as Error).message).toBe(code);
  if (message !== undefined) expect((caught as Error).message).toMatch(message);
}

/** CBOR uint64 (major 0, 8-byte argument) as the NSM encodes millisecond timestamps. */
function timestampCbor(ms: number): Uint8Array {
  const b = Buffer.alloc(9);
  b[0] = 0x1b;
  b.writeBigUInt64BE(BigInt(ms), 1);
  return new Uint8Array(b);
}

function flipBit(bytes: Uint8Array, index: number, bit = 0): Uint8Array {
  const copy = bytes.slice();
  copy[index] = (copy[index] as number) ^ (1 << bit);
  return copy;
}

function indexOfBytes(haystack: Uint8Array, needle: Uint8Array): number {
  const index = Buffer.from(haystack).indexOf(Buffer.from(needle));
  expect(index, 'needle not found in document').toBeGreaterThanOrEqual(0);
  return index;
}

interface RawEnvelope {
  protectedBytes: Uint8Array;
  payload: Map<string, unknown>;
  signature: Uint8Array;
}

/** Splits a real document with an independent decoder (cborg) so tests can rebuild it. */
function splitEnvelope(bytes: Uint8Array): RawEnvelope {
  const [protectedBytes, , payloadBytes, signature] = cborDecode(bytes, { useMaps: true }) as [Uint8Array, unknown, Uint8Array, Uint8Array];
  return { protectedBytes, payload: cborDecode(payloadBytes, { useMaps: true }) as Map<string, unknown>, signature };
}

/** Rebuilds a real document with a patched payload (same key order) and the ORIGINAL signature. */
function rebuildWithOriginalSignature(bytes: Uint8Array, patch: (payload: Map<string, unknown>) => void): Uint8Array {
  const env = splitEnvelope(bytes);
  patch(env.payload);
  return cbor([env.protectedBytes, new Map(), cbor(env.payload), env.signature]);
}

const production = (): Uint8Array => loadVector('nitrite-production');
const productionTime = new Date(1725719859545);

/** The fields of a real vector, checked value by value (bytes from the README's description of each vector). */
function expectVectorFields(doc: AttestationDocument, v: Vector): void {
  expect(doc.moduleId).toBe(v.moduleId);
  expect(doc.timestamp.getTime()).toBe(v.timestamp);
  expect(doc.digest).toBe('SHA384');
  expect([...doc.pcrs.keys()]).toEqual([...Array(16).keys()]);
  for (const [index, value] of doc.pcrs) expect(toHex(value), `PCR${index}`).toBe(v.pcrs[index] ?? ZERO48);
  expect(doc.cabundle).toHaveLength(4);
  expect(sha256(doc.cabundle[0] as Uint8Array)).toBe(AWS_NITRO_ROOT_G1_DER_SHA256);
  expect(doc.publicKey?.length ?? null).toBe(v.publicKey);
  expect(doc.userData?.length ?? null).toBe(v.userData);
  expect(doc.nonce?.length ?? null).toBe(v.nonce);
  if (v.name.startsWith('nitrite-')) {
    // nitrite's test enclave fills each optional field with 1024 bytes of 0x01.
    for (const field of [doc.publicKey, doc.userData, doc.nonce]) expect(field).toEqual(new Uint8Array(1024).fill(1));
  } else {
    expect(toHex(doc.userData as Uint8Array)).toMatch(/^3059301306072a8648ce3d020106082a8648ce3d030107034200/); // P-256 SPKI
  }
}

/** The fields every synthetic document carries unless a test patches them (synthetic.ts payloadMap). */
function expectSyntheticFields(doc: AttestationDocument, patched: { pcrs?: Map<number, Uint8Array>; userData?: Uint8Array | undefined } = {}): void {
  expect(doc.moduleId).toBe('i-0123456789abcdef0-enc0123456789abcdef');
  expect(doc.digest).toBe('SHA384');
  expect(doc.timestamp.getTime()).toBe(T0.getTime());
  expect(doc.pcrs).toEqual(patched.pcrs ?? defaultPcrs());
  expect(doc.publicKey).toEqual(new Uint8Array(32).fill(0xab));
  expect(doc.userData).toEqual('userData' in patched ? patched.userData : new Uint8Array(32).fill(0xcd));
  expect(doc.nonce).toBeUndefined();
}

// ---------------------------------------------------------------------------------------------------------

describe('fixtures', () => {
  it('are the byte-exact public vectors listed in the README', () => {
    for (const v of VECTORS) expect(sha256(loadVector(v.name)), v.name).toBe(v.sha256);
    expect(sha256(new Uint8Array(readFileSync(new URL('aws-nitro-root-g1.pem', FIXTURES))))).toBe('6eb9688305e4bbca67f44b59c29a0661ae930f09b5945b5d1d9ae01125c8d6c0');
  });

  it('bundled AWS root equals the fixture root and hashes to the pinned fingerprint', () => {
    const der = (pem: string): Uint8Array => new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64'));
    expect(toHex(der(AWS_NITRO_ROOT_G1_PEM))).toBe(toHex(der(fixtureText('aws-nitro-root-g1.pem'))));
    expect(sha256(der(AWS_NITRO_ROOT_G1_PEM))).toBe(AWS_NITRO_ROOT_G1_DER_SHA256);
    expect(AWS_NITRO_ROOT_G1_DER_SHA256).toBe('641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b');
  });

  it('the test CBOR encoder reproduces a real document byte for byte (so rebuilt documents differ only where patched)', () => {
    const bytes = production();
    expect(toHex(rebuildWithOriginalSignature(bytes, () => {}))).toBe(toHex(bytes));
  });
});

describe('real public vectors', () => {
  const silenced: MockInstance[] = [];
  afterEach(() => {
    for (const spy of silenced.splice(0)) spy.mockRestore();
  });

  for (const v of VECTORS) {
    it(`${v.name} verifies as of its own timestamp, printing nothing`, async () => {
      const spies = [
        vi.spyOn(console, 'log'),
        vi.spyOn(console, 'info'),
        vi.spyOn(console, 'warn'),
        vi.spyOn(console, 'error'),
        vi.spyOn(console, 'debug'),
        vi.spyOn(process.stdout, 'write'),
        vi.spyOn(process.stderr, 'write'),
      ];
      silenced.push(...spies);
      const doc = await verifyAttestation(loadVector(v.name), { allowDebug: v.debug });
      for (const spy of spies) expect(spy).not.toHaveBeenCalled();
      expectVectorFields(doc, v);
    });

    it(`${v.name} verifies at both edges of the leaf window and fails one second outside`, async () => {
      const bytes = loadVector(v.name);
      const opts = { allowDebug: true };
      const notBefore = new Date(v.leafNotBefore);
      const notAfter = new Date(v.leafNotAfter);
      expectVectorFields(await verifyAttestation(bytes, { ...opts, at: notBefore }), v);
      expectVectorFields(await verifyAttestation(bytes, { ...opts, at: notAfter }), v);
      await expectRejects(verifyAttestation(bytes, { ...opts, at: new Date(notAfter.getTime() + 1000) }), 'ORACLE_ERR_ATTESTATION_EXPIRED', /certificate \(leaf\) has expired/);
      await expectRejects(verifyAttestation(bytes, { ...opts, at: new Date(notBefore.getTime() - 1000) }), 'ORACLE_ERR_ATTESTATION_NOT_YET_VALID', /certificate \(leaf\)/);
    });

    it(`${v.name} is rejected at the current time (expired chain)`, async () => {
      await expectRejects(verifyAttestation(loadVector(v.name), { allowDebug: true, at: new Date() }), 'ORACLE_ERR_ATTESTATION_EXPIRED');
    });
  }

  it('debug-mode documents are rejected unless allowDebug is set', async () => {
    for (const v of VECTORS.filter((x) => x.debug)) {
      await expectRejects(verifyAttestation(loadVector(v.name)), 'ORACLE_ERR_ATTESTATION_DEBUG_MODE', /PCR0, PCR1, PCR2 all zero/);
      await expectRejects(verifyAttestation(loadVector(v.name), { allowDebug: false }), 'ORACLE_ERR_ATTESTATION_DEBUG_MODE');
      expectVectorFields(await verifyAttestation(loadVector(v.name), { allowDebug: true }), v);
    }
    // The production twin passes without the flag.
    expectVectorFields(await verifyAttestation(production()), VECTORS[0]!);
  });

  it('accepts matching expected PCRs and rejects a mismatch', async () => {
    const good = { 0: hex(PROD_PCR0), 1: hex(PROD_PCR1), 2: hex(PROD_PCR2), 4: hex(NITRITE_PCR4), 8: hex(ZERO48) };
    expectVectorFields(await verifyAttestation(production(), { expectedPcrs: good }), VECTORS[0]!);
    const wrong = flipBit(hex(PROD_PCR0), 47);
    const error = await expectRejects(verifyAttestation(production(), { expectedPcrs: { ...good, 0: wrong } }), 'ORACLE_ERR_ATTESTATION_PCR_MISMATCH', /PCR0/);
    expect(error.message).toContain(toHex(wrong));
    await expectRejects(verifyAttestation(production(), { expectedPcrs: { 2: hex(PROD_PCR1) } }), 'ORACLE_ERR_ATTESTATION_PCR_MISMATCH', /PCR2/);
    // A PCR the document does not carry (16..31 appear only once locked) cannot match.
    await expectRejects(verifyAttestation(production(), { expectedPcrs: { 16: hex(ZERO48) } }), 'ORACLE_ERR_ATTESTATION_PCR_MISMATCH', /PCR16 is not in the document/);
    // The PCR policy still applies when debug documents are allowed.
    const ever = loadVector('evervault-ga');
    expectVectorFields(await verifyAttestation(ever, { allowDebug: true, expectedPcrs: { 3: hex(EVERVAULT_PCR3) } }), VECTORS[2]!);
    await expectRejects(verifyAttestation(ever, { allowDebug: true, expectedPcrs: { 3: hex(NITRITE_PCR4) } }), 'ORACLE_ERR_ATTESTATION_PCR_MISMATCH');
  });

  it('rejects unusable PCR policies instead of silently skipping them', async () => {
    await expectRejects(verifyAttestation(production(), { expectedPcrs: {} }), 'ORACLE_ERR_ATTESTATION_INVALID_OPTIONS', /empty/);
    await expectRejects(verifyAttestation(production(), { expectedPcrs: { 0: hex(PROD_PCR0).subarray(0, 47) } }), 'ORACLE_ERR_ATTESTATION_INVALID_OPTIONS', /48-byte/);
    await expectRejects(verifyAttestation(production(), { expectedPcrs: { 32: hex(ZERO48) } }), 'ORACLE_ERR_ATTESTATION_INVALID_OPTIONS', /0\.\.31/);
    await expectRejects(verifyAttestation(production(), { expectedPcrs: { [-1]: hex(ZERO48) } }), 'ORACLE_ERR_ATTESTATION_INVALID_OPTIONS');
    await expectRejects(verifyAttestation(production(), { at: new Date(Number.NaN) }), 'ORACLE_ERR_ATTESTATION_INVALID_OPTIONS', /valid Date/);
  });

  it('maxAgeMs: fresh enough at `at` passes, older is STALE, a timestamp after `at` is not yet valid', async () => {
    const tenMinutesLater = new Date(productionTime.getTime() + 10 * 60_000);
    expectVectorFields(await verifyAttestation(production(), { at: tenMinutesLater, maxAgeMs: 15 * 60_000 }), VECTORS[0]!);
    expectVectorFields(await verifyAttestation(production(), { at: tenMinutesLater, maxAgeMs: 10 * 60_000 }), VECTORS[0]!); // the bound is inclusive
    await expectRejects(
      verifyAttestation(production(), { at: tenMinutesLater, maxAgeMs: 5 * 60_000 }),
      'ORACLE_ERR_ATTESTATION_STALE',
      /^document is 10m old at 2024-09-07T14:47:39\.545Z \(timestamp 2024-09-07T14:37:39\.545Z\); the maximum age is 5m$/,
    );
    await expectRejects(verifyAttestation(production(), { at: new Date(tenMinutesLater.getTime() + 1), maxAgeMs: 10 * 60_000 }), 'ORACLE_ERR_ATTESTATION_STALE', /10m 0\.001s old/);
    // Inside the leaf window but before the document was made.
    const before = new Date(productionTime.getTime() - 2000);
    expectVectorFields(await verifyAttestation(production(), { at: before }), VECTORS[0]!);
    await expectRejects(verifyAttestation(production(), { at: before, maxAgeMs: 60_000 }), 'ORACLE_ERR_ATTESTATION_NOT_YET_VALID', /timestamp 2024-09-07T14:37:39\.545Z is after the verification time 2024-09-07T14:37:37\.545Z/);
    // Measured against its own timestamp every document would be fresh: maxAgeMs needs `at`.
    await expectRejects(verifyAttestation(production(), { maxAgeMs: 60_000 }), 'ORACLE_ERR_ATTESTATION_INVALID_OPTIONS', /maxAgeMs needs at/);
    await expectRejects(verifyAttestation(production(), { at: tenMinutesLater, maxAgeMs: -1 }), 'ORACLE_ERR_ATTESTATION_INVALID_OPTIONS', /non-negative integer/);
    await expectRejects(verifyAttestation(production(), { at: tenMinutesLater, maxAgeMs: 1.5 }), 'ORACLE_ERR_ATTESTATION_INVALID_OPTIONS');
  });

  it('rejects a wrong pinned root', async () => {
    const pki = await createPki();
    // Pin a different fingerprint for the bundled AWS root.
    await expectRejects(verifyAttestation(production(), { rootCertDerSha256: 'ab'.repeat(32) }), 'ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT', /pinned fingerprint is abab/);
    // Swap the root PEM but keep the default (AWS) pin.
    await expectRejects(verifyAttestation(production(), { rootCertPem: pki.rootPem }), 'ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT', /pinned fingerprint is 641a0321/);
    // Trust another root consistently: the real document's cabundle[0] is not that root.
    await expectRejects(verifyAttestation(production(), pki.trust), 'ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT', /cabundle\[0\] is not the pinned root/);
    // Malformed pins are configuration errors.
    await expectRejects(verifyAttestation(production(), { rootCertDerSha256: 'xyz' }), 'ORACLE_ERR_ATTESTATION_INVALID_OPTIONS');
    await expectRejects(verifyAttestation(production(), { rootCertPem: `${AWS_NITRO_ROOT_G1_PEM}\n${AWS_NITRO_ROOT_G1_PEM}` }), 'ORACLE_ERR_ATTESTATION_INVALID_OPTIONS', /exactly one/);
    // Control: the right pin in another spelling (upper case, colons) is accepted.
    const colonPin = AWS_NITRO_ROOT_G1_DER_SHA256.toUpperCase().replace(/(..)(?!$)/g, '$1:');
    expectVectorFields(await verifyAttestation(production(), { rootCertDerSha256: colonPin, rootCertPem: fixtureText('aws-nitro-root-g1.pem') }), VECTORS[0]!);
  });

  describe('one flipped bit in each field', () => {
    it('signature → bad signature', async () => {
      const bytes = production();
      for (const offset of [bytes.length - 96, bytes.length - 49, bytes.length - 1]) {
        await expectRejects(verifyAttestation(flipBit(bytes, offset)), 'ORACLE_ERR_ATTESTATION_BAD_SIGNATURE');
      }
    });

    it('payload (module_id, a PCR, public_key, timestamp) → bad signature', async () => {
      const bytes = production();
      const targets = [
        indexOfBytes(bytes, Buffer.from(VECTORS[0]?.moduleId ?? '', 'utf8')) + 5,
        indexOfBytes(bytes, hex(PROD_PCR0)) + 20,
        indexOfBytes(bytes, new Uint8Array(1024).fill(1)) + 512,
        indexOfBytes(bytes, timestampCbor(1725719859545)) + 8,
      ];
      for (const offset of targets) {
        const flipped = flipBit(bytes, offset);
        expect(() => decodeAttestation(flipped)).not.toThrow(); // still well-formed: only the signature can catch it
        await expectRejects(verifyAttestation(flipped), 'ORACLE_ERR_ATTESTATION_BAD_SIGNATURE');
      }
    });

    it('protected header → rejected (every one of its 32 bits)', async () => {
      const bytes = production();
      expect(toHex(bytes.subarray(1, 6))).toBe('44a1013822');
      for (let bit = 0; bit < 32; bit++) {
        const error = await rejection(verifyAttestation(flipBit(bytes, 2 + (bit >> 3), bit & 7)));
        expect(['ORACLE_ERR_ATTESTATION_MALFORMED', 'ORACLE_ERR_ATTESTATION_UNSUPPORTED_ALGORITHM']).toContain(error.code);
      }
    });

    it('protected header bytes are covered by the signature (synthetic header with a kid)', async () => {
      const pki = await createPki();
      const protectedBytes = cbor(new Map<number, unknown>([[1, -35], [4, Uint8Array.from([0x42])]]));
      const doc = await makeDocument(pki, { protectedBytes });
      expectSyntheticFields(await verifyAttestation(doc, pki.trust));
      const kidOffset = indexOfBytes(doc, protectedBytes) + protectedBytes.length - 1;
      await expectRejects(verifyAttestation(flipBit(doc, kidOffset), pki.trust), 'ORACLE_ERR_ATTESTATION_BAD_SIGNATURE');
    });

    it('leaf certificate → invalid chain', async () => {
      const bytes = production();
      const leaf = decodeAttestation(bytes).certificate;
      const start = indexOfBytes(bytes, leaf);
      await expectRejects(verifyAttestation(flipBit(bytes, start + leaf.length - 1)), 'ORACLE_ERR_ATTESTATION_INVALID_CHAIN', /certificate \(leaf\) signature does not verify/);
      await expectRejects(verifyAttestation(flipBit(bytes, start + 20)), 'ORACLE_ERR_ATTESTATION_INVALID_CHAIN');
    });

    it('cabundle → untrusted root (cabundle[0]) or invalid chain (intermediates)', async () => {
      const bytes = production();
      const { cabundle } = decodeAttestation(bytes);
      const at = (i: number): number => indexOfBytes(bytes, cabundle[i] as Uint8Array);
      await expectRejects(verifyAttestation(flipBit(bytes, at(0) + 300)), 'ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT');
      for (const i of [1, 2, 3]) {
        const der = cabundle[i] as Uint8Array;
        await expectRejects(verifyAttestation(flipBit(bytes, at(i) + der.length - 1)), 'ORACLE_ERR_ATTESTATION_INVALID_CHAIN', new RegExp(`cabundle\\[${i}\\] signature does not verify`));
      }
    });

    it('certificate bit flips are caught by the chain check even when the COSE signature is valid (synthetic, re-signed)', async () => {
      const pki = await createPki();
      const leaf = flipBit(pki.leaf, pki.leaf.length - 1);
      await expectRejects(verifyAttestation(await makeDocument(pki, { certificate: leaf }), pki.trust), 'ORACLE_ERR_ATTESTATION_INVALID_CHAIN', /certificate \(leaf\)/);
      const zonal = flipBit(pki.cabundle[2] as Uint8Array, (pki.cabundle[2] as Uint8Array).length - 1);
      const cabundle = [pki.cabundle[0], pki.cabundle[1], zonal, pki.cabundle[3]] as Uint8Array[];
      await expectRejects(verifyAttestation(await makeDocument(pki, { cabundle }), pki.trust), 'ORACLE_ERR_ATTESTATION_INVALID_CHAIN', /cabundle\[2\]/);
    });

    it('a sweep of bit flips across the whole document: every variant is rejected', async () => {
      const bytes = production();
      let count = 0;
      for (let bit = 3; bit < bytes.length * 8; bit += 401) {
        await rejection(verifyAttestation(flipBit(bytes, bit >> 3, bit & 7)));
        count++;
      }
      expect(count).toBeGreaterThan(140);
    });
  });

  it('rejects truncated documents', async () => {
    const bytes = production();
    const cuts = [0, 1, 2, 5, 7, 10, 11, bytes.length - 97, bytes.length - 96, bytes.length - 1];
    for (let n = 13; n < bytes.length; n += 97) cuts.push(n);
    for (const n of cuts) expectThrows(() => decodeAttestation(bytes.subarray(0, n)), 'ORACLE_ERR_ATTESTATION_MALFORMED', n === 0 ? /is empty/ : /^truncated: /);
    // Each message names what was cut, what arrived and the least that was expected.
    for (const n of cuts.filter((c) => c > 0)) {
      let message = '';
      try {
        decodeAttestation(bytes.subarray(0, n));
      } catch (error) {
        message = (error as Error).message;
      }
      const m = /^truncated: COSE_Sign1 envelope is (\d+) bytes, expected at least (\d+) \(.+ at offset (\d+) runs past the end\)$/.exec(message);
      expect(m, message).not.toBeNull();
      expect(Number(m![1])).toBe(n);
      expect(Number(m![2])).toBeGreaterThan(n);
      expect(Number(m![2])).toBeLessThanOrEqual(bytes.length);
      expect(Number(m![3])).toBeLessThanOrEqual(n);
    }
    // Cut inside the signature (the last item): the expected size is exactly the whole document.
    await expectRejects(verifyAttestation(bytes.subarray(0, bytes.length - 1)), 'ORACLE_ERR_ATTESTATION_MALFORMED', new RegExp(`^truncated: COSE_Sign1 envelope is ${bytes.length - 1} bytes, expected at least ${bytes.length} \\(a byte string of 96 bytes at offset ${bytes.length - 96 - 2} `));
    // Cut inside the payload: the payload's byte-string head says how long it should have been.
    await expectRejects(verifyAttestation(bytes.subarray(0, 3000)), 'ORACLE_ERR_ATTESTATION_MALFORMED', /^truncated: COSE_Sign1 envelope is 3000 bytes, expected at least \d+ \(a byte string of \d+ bytes at offset 7 /);
    // A tagged document counts the tag byte.
    await expectRejects(verifyAttestation(Uint8Array.from([0xd2, ...bytes.subarray(0, 100)])), 'ORACLE_ERR_ATTESTATION_MALFORMED', /^truncated: COSE_Sign1 envelope is 101 bytes, .* at offset 8 /);
  });

  it('names a truncated payload inside a complete envelope', async () => {
    const pki = await createPki();
    const payload = cbor(payloadMap(pki));
    const doc = await makeDocument(pki, { payloadBytes: payload.subarray(0, payload.length - 10) });
    // The cut falls 3 bytes into user_data (32 bytes), which is followed by "nonce" (6 bytes) and null (1 byte).
    expectThrows(
      () => decodeAttestation(doc),
      'ORACLE_ERR_ATTESTATION_MALFORMED',
      new RegExp(`^truncated: attestation payload is ${payload.length - 10} bytes, expected at least ${payload.length - 7} \\(a byte string of 32 bytes at offset ${payload.length - 7 - 32 - 2} runs past the end\\)$`),
    );
  });

  it('rejects trailing bytes and tags other than 18; accepts tag 18', async () => {
    const bytes = production();
    expectThrows(() => decodeAttestation(Uint8Array.from([...bytes, 0x00])), 'ORACLE_ERR_ATTESTATION_MALFORMED', /not valid CBOR/);
    expectThrows(() => decodeAttestation(Uint8Array.from([0xd9, 0xd9, 0xf7, ...bytes])), 'ORACLE_ERR_ATTESTATION_MALFORMED');
    expectThrows(() => decodeAttestation(Uint8Array.from([0xd8, 0x12, ...bytes])), 'ORACLE_ERR_ATTESTATION_MALFORMED');
    expectThrows(() => decodeAttestation(Uint8Array.from([0xd2, 0xd2, ...bytes])), 'ORACLE_ERR_ATTESTATION_MALFORMED');
    // The outer tag is not signed, so a tagged real document still verifies.
    expectVectorFields(await verifyAttestation(Uint8Array.from([0xd2, ...bytes])), VECTORS[0]!);
  });

  it('rejects the chain in the wrong order (real document)', async () => {
    const bytes = production();
    const reversed = rebuildWithOriginalSignature(bytes, (p) => p.set('cabundle', [...(p.get('cabundle') as Uint8Array[])].reverse()));
    await expectRejects(verifyAttestation(reversed), 'ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT', /out of order.*root-first/);
    const swapped = rebuildWithOriginalSignature(bytes, (p) => {
      const [a, b, c, d] = p.get('cabundle') as Uint8Array[];
      p.set('cabundle', [a, c, b, d]);
    });
    await expectRejects(verifyAttestation(swapped), 'ORACLE_ERR_ATTESTATION_INVALID_CHAIN', /was not issued by/);
    const noRoot = rebuildWithOriginalSignature(bytes, (p) => p.set('cabundle', (p.get('cabundle') as Uint8Array[]).slice(1)));
    await expectRejects(verifyAttestation(noRoot), 'ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT', /cabundle\[0\] is not the pinned root/);
  });

  it('verifies the ORIGINAL payload bytes: the same map re-encoded with indefinite length fails the signature', async () => {
    const bytes = production();
    const env = splitEnvelope(bytes);
    const original = cborDecode(bytes, { useMaps: true }) as [Uint8Array, unknown, Uint8Array, Uint8Array];
    const payload = original[2];
    expect(payload[0]).toBe(0xa9); // definite map of 9
    const reencoded = Uint8Array.from([0xbf, ...payload.subarray(1), 0xff]);
    const doc = cbor([env.protectedBytes, new Map(), reencoded, env.signature]);
    expect(decodeAttestation(doc).moduleId).toBe(VECTORS[0]?.moduleId); // the layout itself is accepted
    await expectRejects(verifyAttestation(doc), 'ORACLE_ERR_ATTESTATION_BAD_SIGNATURE');
  });

  it('decodeAttestation returns copies that do not alias the input', () => {
    const bytes = production();
    const doc = decodeAttestation(bytes);
    const before = toHex(doc.pcrs.get(0) as Uint8Array);
    bytes.fill(0);
    expect(toHex(doc.pcrs.get(0) as Uint8Array)).toBe(before);
    expect(before).toBe(PROD_PCR0);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('synthetic documents (bring-your-own PKI)', () => {
  let pki: Pki;
  let verify: (bytes: Uint8Array, extra?: VerifyAttestationOptions) => Promise<AttestationDocument>;

  beforeAll(async () => {
    pki = await createPki();
    verify = (bytes, extra = {}) => verifyAttestation(bytes, { ...pki.trust, ...extra });
  });

  describe('accepted layouts', () => {
    it('indefinite-length payload map (AWS 2025+ layout) verifies', async () => {
      const doc = await makeDocument(pki);
      const payloadStart = 10; // 84 | 44 a1 01 38 22 | a0 | 59 xx xx | payload…
      expect(doc[payloadStart]).toBe(0xbf);
      const result = await verifyAttestation(doc, pki.trust);
      expectSyntheticFields(result);
      expect(result.timestamp.getTime()).toBe(T0.getTime());
      expect(result.nonce).toBeUndefined();
      expect(result.publicKey).toEqual(new Uint8Array(32).fill(0xab));
      // The same document is not trusted under the default (AWS) root.
      await expectRejects(verifyAttestation(doc), 'ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT');
    });

    it('definite-length map, nested indefinite pcrs/cabundle, tag 18 and omitted optional fields all verify', async () => {
      expectSyntheticFields(await verify(await makeDocument(pki, { indefinite: false })));
      expectSyntheticFields(await verify(await makeDocument(pki, { fields: { pcrs: new Indefinite(defaultPcrs()), cabundle: new Indefinite(pki.cabundle) } })));
      expectSyntheticFields(await verify(await makeDocument(pki, { tag18: true })));
      const doc = await verify(await makeDocument(pki, { omit: ['public_key', 'user_data', 'nonce'] }));
      expect(doc.moduleId).toBe('i-0123456789abcdef0-enc0123456789abcdef');
      expect(doc.publicKey).toBeUndefined();
      expect(doc.userData).toBeUndefined();
      expect(doc.nonce).toBeUndefined();
    });

    it('32 PCRs, empty user_data/nonce and 4096-byte optional fields are within limits', async () => {
      const pcrs = new Map<number, Uint8Array>();
      for (let i = 0; i < 32; i++) pcrs.set(i, pcrValue(i + 1));
      const doc = await verify(await makeDocument(pki, { fields: { pcrs, user_data: new Uint8Array(0), nonce: new Uint8Array(0) } }));
      expect(doc.pcrs.size).toBe(32);
      expect(doc.pcrs.get(31)).toEqual(pcrValue(32));
      expect(doc.userData).toEqual(new Uint8Array(0));
      expect(doc.nonce).toEqual(new Uint8Array(0));
      const big = new Uint8Array(4096).fill(7);
      const large = await verify(await makeDocument(pki, { fields: { user_data: big, nonce: big } }));
      expect(large.userData).toEqual(big);
      expect(large.nonce).toEqual(big);
    });
  });

  describe('oversize fields', () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['user_data 4097 bytes', { user_data: new Uint8Array(4097) }, /user_data is 4097 bytes/],
      ['nonce 4097 bytes', { nonce: new Uint8Array(4097) }, /nonce is 4097 bytes/],
      ['public_key 4097 bytes', { public_key: new Uint8Array(4097) }, /public_key is 4097 bytes/],
      ['certificate 1025 bytes', { certificate: new Uint8Array(1025).fill(0x30) }, /certificate is 1025 bytes/],
    ];
    for (const [name, fields, message] of cases) {
      it(`${name} → too large`, async () => {
        const doc = await makeDocument(pki, { fields });
        expectThrows(() => decodeAttestation(doc), 'ORACLE_ERR_ATTESTATION_TOO_LARGE', message);
        await expectRejects(verify(doc), 'ORACLE_ERR_ATTESTATION_TOO_LARGE', message);
      });
    }

    it('a cabundle entry of 1025 bytes → too large', async () => {
      const doc = await makeDocument(pki, { cabundle: [pki.cabundle[0] as Uint8Array, new Uint8Array(1025).fill(0x30), ...pki.cabundle.slice(2)] });
      await expectRejects(verify(doc), 'ORACLE_ERR_ATTESTATION_TOO_LARGE', /cabundle\[1\] is 1025 bytes/);
    });

    it('33 PCRs → too large', async () => {
      const pcrs = new Map<number, Uint8Array>();
      for (let i = 0; i < 33; i++) pcrs.set(i, pcrValue(1));
      await expectRejects(verify(await makeDocument(pki, { fields: { pcrs } })), 'ORACLE_ERR_ATTESTATION_TOO_LARGE', /33 entries/);
    });

    it('a document over 16 KiB → too large (checked before decoding)', async () => {
      const huge = new Uint8Array(MAX_DOCUMENT_BYTES + 1);
      huge[0] = 0x84;
      expectThrows(() => decodeAttestation(huge), 'ORACLE_ERR_ATTESTATION_TOO_LARGE', /16385 bytes/);
      await expectRejects(verify(huge), 'ORACLE_ERR_ATTESTATION_TOO_LARGE');
    });
  });

  describe('unexpected and malformed payload fields', () => {
    // Policy (docs/nitro.md §2 step 5 leaves it open): unknown keys are REJECTED. The payload format has had
    // exactly nine keys since 2020; a new key is a format change whose meaning must be reviewed first, and a
    // verifier for archived records should fail closed rather than trust fields it does not understand.
    it('an extra text key is rejected even though it is signed', async () => {
      const doc = await makeDocument(pki, { fields: { extra: 'x' } });
      expectThrows(() => decodeAttestation(doc), 'ORACLE_ERR_ATTESTATION_MALFORMED', /unexpected field "extra"/);
      await expectRejects(verify(doc), 'ORACLE_ERR_ATTESTATION_MALFORMED', /unexpected field/);
    });

    it('a non-text key and a duplicated key are rejected', async () => {
      const withIntKey = cbor(new Map<unknown, unknown>([...new Map([['module_id', 'm']]), [7, 'x']]));
      await expectRejects(verify(await makeDocument(pki, { payloadBytes: withIntKey })), 'ORACLE_ERR_ATTESTATION_MALFORMED', /non-text key/);
      const entries = [...payloadMap(pki).entries()] as [unknown, unknown][];
      const duplicated = cbor(new Entries([...entries, ['nonce', new Uint8Array(4)]]));
      await expectRejects(verify(await makeDocument(pki, { payloadBytes: duplicated })), 'ORACLE_ERR_ATTESTATION_MALFORMED', /repeat map key/);
    });

    const bad: [string, Record<string, unknown> | string[], RegExp][] = [
      ['module_id null', { module_id: null }, /module_id must be a text string/],
      ['module_id empty', { module_id: '' }, /module_id is empty/],
      ['module_id missing', ['module_id'], /module_id must be a text string, got undefined/],
      ['digest SHA256', { digest: 'SHA256' }, /digest must be "SHA384"/],
      ['timestamp 0', { timestamp: 0 }, /timestamp must be a positive integer/],
      ['timestamp negative', { timestamp: -5 }, /timestamp/],
      ['timestamp beyond 2^53', { timestamp: 2n ** 60n }, /timestamp/],
      ['timestamp as text', { timestamp: '1725719859545' }, /timestamp/],
      ['pcrs empty', { pcrs: new Map() }, /pcrs is empty/],
      ['pcrs as array', { pcrs: [pcrValue(1)] }, /pcrs must be a map/],
      ['PCR of 47 bytes', { pcrs: new Map([[0, new Uint8Array(47)]]) }, /PCR0 must be 48 bytes/],
      ['PCR of 64 bytes', { pcrs: new Map([[0, new Uint8Array(64)]]) }, /PCR0 must be 48 bytes/],
      ['PCR index 32', { pcrs: new Map([[32, pcrValue(1)]]) }, /PCR index must be an integer 0\.\.31/],
      ['PCR text key', { pcrs: new Map([['0', pcrValue(1)]]) }, /PCR index/],
      ['certificate as text', { certificate: 'MII…' }, /certificate must be a byte string/],
      ['certificate null', { certificate: null }, /certificate must be a byte string/],
      ['cabundle empty', { cabundle: [] }, /cabundle is empty/],
      ['cabundle entry as text', { cabundle: ['x'] }, /cabundle\[0\] must be a byte string/],
      ['public_key empty', { public_key: new Uint8Array(0) }, /public_key must not be empty/],
      ['user_data as text', { user_data: 'hello' }, /user_data must be a byte string or null/],
    ];
    for (const [name, change, message] of bad) {
      it(`${name} → malformed`, async () => {
        const doc = await makeDocument(pki, Array.isArray(change) ? { omit: change } : { fields: change });
        expectThrows(() => decodeAttestation(doc), 'ORACLE_ERR_ATTESTATION_MALFORMED', message);
      });
    }

    it('a missing PCR0 is rejected by verification', async () => {
      const pcrs = defaultPcrs();
      pcrs.delete(0);
      await expectRejects(verify(await makeDocument(pki, { fields: { pcrs } })), 'ORACLE_ERR_ATTESTATION_MALFORMED', /PCR0 is missing/);
    });
  });

  describe('COSE envelope', () => {
    it('rejects any algorithm but ES384 and any crit header; never reads alg from the unprotected header', async () => {
      const es256 = cbor(new Map([[1, -7]]));
      await expectRejects(verify(await makeDocument(pki, { protectedBytes: es256 })), 'ORACLE_ERR_ATTESTATION_UNSUPPORTED_ALGORITHM', /got -7/);
      await expectRejects(verify(await makeDocument(pki, { protectedBytes: new Uint8Array(0), unprotected: new Map([[1, -35]]) })), 'ORACLE_ERR_ATTESTATION_UNSUPPORTED_ALGORITHM', /no algorithm/);
      await expectRejects(verify(await makeDocument(pki, { protectedBytes: cbor(new Map()) })), 'ORACLE_ERR_ATTESTATION_UNSUPPORTED_ALGORITHM', /got none/);
      const crit = cbor(new Map<number, unknown>([[1, -35], [2, [4]]]));
      await expectRejects(verify(await makeDocument(pki, { protectedBytes: crit })), 'ORACLE_ERR_ATTESTATION_UNSUPPORTED_ALGORITHM', /crit/);
      await expectRejects(verify(await makeDocument(pki, { protectedBytes: cbor([1, -35]) })), 'ORACLE_ERR_ATTESTATION_MALFORMED', /must encode a map/);
    });

    it('requires a raw 96-byte r‖s signature (DER or short signatures are malformed)', async () => {
      await expectRejects(verify(await makeDocument(pki, { mapSignature: (s) => s.subarray(0, 95) })), 'ORACLE_ERR_ATTESTATION_MALFORMED', /96 bytes/);
      const toDer = (s: Uint8Array): Uint8Array => {
        const int = (b: Uint8Array): number[] => {
          let i = 0;
          while (i < b.length - 1 && b[i] === 0) i++;
          const body = [...b.subarray(i)];
          if ((body[0] as number) & 0x80) body.unshift(0);
          return [0x02, body.length, ...body];
        };
        const seq = [...int(s.subarray(0, 48)), ...int(s.subarray(48))];
        return Uint8Array.from([0x30, seq.length, ...seq]);
      };
      await expectRejects(verify(await makeDocument(pki, { mapSignature: toDer })), 'ORACLE_ERR_ATTESTATION_MALFORMED', /96 bytes/);
    });

    it('signature must be over Sig_structure with external_aad = h\'\' and by the leaf key', async () => {
      await expectRejects(verify(await makeDocument(pki, { externalAad: new Map() })), 'ORACLE_ERR_ATTESTATION_BAD_SIGNATURE');
      await expectRejects(verify(await makeDocument(pki, { signingKey: await generateSigningKey() })), 'ORACLE_ERR_ATTESTATION_BAD_SIGNATURE', /leaf certificate key/);
    });

    it('rejects wrong envelope shapes', () => {
      const p = cbor(new Map([['module_id', 'x']]));
      const sig = new Uint8Array(96);
      const cases: [unknown, RegExp][] = [
        [[PROTECTED_ES384, new Map(), p], /array of 4/],
        [[PROTECTED_ES384, new Map(), p, sig, sig], /array of 4/],
        [new Map([[1, 2]]), /array of 4 elements, got map/],
        [[new Map([[1, -35]]), new Map(), p, sig], /protected header must be a byte string/],
        [[PROTECTED_ES384, [], p, sig], /unprotected header must be a map/],
        [[PROTECTED_ES384, new Map(), null, sig], /detached payloads/],
        [[PROTECTED_ES384, new Map(), new Uint8Array(0), sig], /payload is empty/],
        [[PROTECTED_ES384, new Map(), cbor([1, 2]), sig], /payload must be a map/],
        [[PROTECTED_ES384, new Map(), p, 'sig'], /signature must be a byte string/],
      ];
      for (const [envelope, message] of cases) {
        expectThrows(() => decodeAttestation(cbor(envelope)), 'ORACLE_ERR_ATTESTATION_MALFORMED', message);
      }
      expectThrows(() => decodeAttestation(new Uint8Array(0)), 'ORACLE_ERR_ATTESTATION_MALFORMED', /empty/);
    });
  });

  describe('certificate chain', () => {
    it('rejects a chain in the wrong order even when the document is validly signed', async () => {
      const [root, regional, zonal, instance] = pki.cabundle as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
      expectSyntheticFields(await verify(await makeDocument(pki, { cabundle: [root, regional, zonal, instance] })));
      await expectRejects(verify(await makeDocument(pki, { cabundle: [instance, zonal, regional, root] })), 'ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT', /out of order/);
      await expectRejects(verify(await makeDocument(pki, { cabundle: [root, zonal, regional, instance] })), 'ORACLE_ERR_ATTESTATION_INVALID_CHAIN', /was not issued by/);
      await expectRejects(verify(await makeDocument(pki, { cabundle: [root, regional, instance] })), 'ORACLE_ERR_ATTESTATION_INVALID_CHAIN', /cabundle\[2\] was not issued by cabundle\[1\]/);
      await expectRejects(verify(await makeDocument(pki, { cabundle: [regional, zonal, instance] })), 'ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT');
    });

    it('rejects a root look-alike (same subject as the AWS root, different key) under the default pin', async () => {
      const lookAlike = await createPki({ root: { subject: 'C=US, O=Amazon, OU=AWS, CN=aws.nitro-enclaves' } });
      expectSyntheticFields(await verifyAttestation(await makeDocument(lookAlike), lookAlike.trust));
      await expectRejects(verifyAttestation(await makeDocument(lookAlike)), 'ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT', /cabundle\[0\] is not the pinned root/);
      const fake = await selfSigned('C=US, O=Amazon, OU=AWS, CN=aws.nitro-enclaves');
      await expectRejects(verifyAttestation(await makeDocument(lookAlike, { cabundle: [fake, ...lookAlike.cabundle.slice(1)] }), lookAlike.trust), 'ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT');
    });

    it('rejects a pinned root whose self-signature is broken', async () => {
      const root = pki.cabundle[0] as Uint8Array;
      const broken = flipBit(root, root.length - 1);
      const pem = `-----BEGIN CERTIFICATE-----\n${Buffer.from(broken).toString('base64')}\n-----END CERTIFICATE-----\n`;
      const doc = await makeDocument(pki, { cabundle: [broken, ...pki.cabundle.slice(1)] });
      await expectRejects(verifyAttestation(doc, { rootCertPem: pem, rootCertDerSha256: sha256(broken) }), 'ORACLE_ERR_ATTESTATION_INVALID_CHAIN', /root\) is not self-signed/);
    });

    it('rejects certificates from another PKI that reuse the expected names', async () => {
      const other = await createPki();
      // Leaf from another PKI (same issuer name), document signed by that leaf's key.
      const doc = await makeDocument(pki, { certificate: other.leaf, signingKey: other.leafKey });
      await expectRejects(verify(doc), 'ORACLE_ERR_ATTESTATION_INVALID_CHAIN', /certificate \(leaf\) signature does not verify with the key of cabundle\[3\]/);
      const mixed = [pki.cabundle[0], pki.cabundle[1], other.cabundle[2], pki.cabundle[3]] as Uint8Array[];
      await expectRejects(verify(await makeDocument(pki, { cabundle: mixed })), 'ORACLE_ERR_ATTESTATION_INVALID_CHAIN');
    });

    const KU_DS = 1;
    const KU_CERT_SIGN = 32;
    const chainCases: [string, Parameters<typeof createPki>[0], RegExp][] = [
      ['an intermediate with CA=false', { zonal: { ca: false } }, /cabundle\[2\] is used as a CA but is not a CA/],
      ['an intermediate without basicConstraints', { regional: { ca: undefined } }, /cabundle\[1\] is used as a CA/],
      ['an intermediate with non-critical basicConstraints', { regional: { bcCritical: false } }, /cabundle\[1\] basicConstraints must be critical/],
      ['an intermediate without keyCertSign', { instance: { keyUsage: KU_DS } }, /cabundle\[3\] keyUsage lacks keyCertSign/],
      ['a pathLen violation', { zonal: { pathLength: 0 } }, /cabundle\[2\] allows 0 intermediate CA\(s\) below it \(pathLen\), but the chain has 1/],
      ['a leaf that is a CA', { leaf: { ca: true, pathLength: 0 } }, /leaf\) must not be a CA/],
      ['a leaf without digitalSignature', { leaf: { keyUsage: KU_CERT_SIGN } }, /leaf\) keyUsage lacks digitalSignature/],
      ['a P-256 leaf', { leaf: { curve: 'P-256' } }, /leaf\) key must be ECDSA P-384/],
    ];
    for (const [name, overrides, message] of chainCases) {
      it(`rejects ${name}`, async () => {
        const bad = await createPki(overrides);
        // P-256 signatures are 64 bytes; pad so the envelope stays well-formed and the chain check decides.
        const doc = await makeDocument(bad, { mapSignature: (s) => (s.length === 96 ? s : Uint8Array.from([...s, ...new Uint8Array(96 - s.length)])) });
        await expectRejects(verifyAttestation(doc, bad.trust), 'ORACLE_ERR_ATTESTATION_INVALID_CHAIN', message);
      });
    }

    it('checks every certificate, not only the leaf, at the verification time', async () => {
      const expiredZonal = await createPki({ zonal: { notAfter: new Date(T0.getTime() - 1000) } });
      await expectRejects(verifyAttestation(await makeDocument(expiredZonal), expiredZonal.trust), 'ORACLE_ERR_ATTESTATION_EXPIRED', /cabundle\[2\] has expired/);
      const futureLeaf = await createPki({ leaf: { notBefore: new Date(T0.getTime() + 60_000) } });
      await expectRejects(verifyAttestation(await makeDocument(futureLeaf), futureLeaf.trust), 'ORACLE_ERR_ATTESTATION_NOT_YET_VALID', /certificate \(leaf\) is not yet valid/);
      // `at` overrides the document time: 3 hours later the leaf has expired.
      await expectRejects(verify(await makeDocument(pki), { at: new Date(T0.getTime() + 3 * 3_600_000) }), 'ORACLE_ERR_ATTESTATION_EXPIRED', /certificate \(leaf\)/);
    });
  });

  describe('debug mode', () => {
    it('any of PCR0/1/2 all zero is debug; PCR8 zero alone is not', async () => {
      for (const index of [0, 1, 2]) {
        const pcrs = defaultPcrs();
        pcrs.set(index, pcrValue(0));
        const doc = await makeDocument(pki, { fields: { pcrs } });
        await expectRejects(verify(doc), 'ORACLE_ERR_ATTESTATION_DEBUG_MODE', new RegExp(`PCR${index} all zero`));
        expectSyntheticFields(await verify(doc, { allowDebug: true }), { pcrs });
      }
      const pcrs = defaultPcrs();
      expect(toHex(pcrs.get(8) as Uint8Array)).toBe(ZERO48);
      expectSyntheticFields(await verify(await makeDocument(pki, { fields: { pcrs } })), { pcrs });
    });
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('parseAttestationInput', () => {
  const raw = production();
  const b64 = fixtureText('nitrite-production.b64');
  const ascii = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

  it('detects raw CBOR, base64 (standard/url, wrapped, unpadded) and hex (any case, 0x, whitespace)', () => {
    expect(parseAttestationInput(raw)).toBe(raw);
    const b64Raw = Buffer.from(raw).toString('base64');
    const hexRaw = Buffer.from(raw).toString('hex');
    const inputs = [
      b64,
      `${b64}\n`,
      `\ufeff${b64.replace(/(.{76})/g, '$1\r\n')}\n`,
      Buffer.from(raw).toString('base64url'),
      b64Raw.replace(/=+$/, ''),
      hexRaw,
      `0x${hexRaw.toUpperCase()}`,
      `${hexRaw.replace(/(.{64})/g, '$1\n')}\n`,
    ];
    for (const input of inputs) expect(sha256(parseAttestationInput(new Uint8Array(Buffer.from(input, 'utf8'))))).toBe(VECTORS[0]?.sha256);
  });

  it('rejects garbage, non-COSE content and oversize input', () => {
    expectThrows(() => parseAttestationInput(new Uint8Array(0)), 'ORACLE_ERR_ATTESTATION_MALFORMED', /empty/);
    expectThrows(() => parseAttestationInput(ascii('not an attestation!')), 'ORACLE_ERR_ATTESTATION_MALFORMED', /neither raw CBOR, hex nor base64/);
    expectThrows(() => parseAttestationInput(ascii('abc')), 'ORACLE_ERR_ATTESTATION_MALFORMED'); // odd hex, bad base64 length
    expectThrows(() => parseAttestationInput(ascii(`${b64.slice(0, 100)}*${b64.slice(100)}`)), 'ORACLE_ERR_ATTESTATION_MALFORMED');
    expectThrows(() => parseAttestationInput(ascii('a1013822')), 'ORACLE_ERR_ATTESTATION_MALFORMED', /does not start with a COSE_Sign1/);
    expectThrows(() => parseAttestationInput(ascii(Buffer.from(new Uint8Array(MAX_DOCUMENT_BYTES + 1).fill(0x84)).toString('base64'))), 'ORACLE_ERR_ATTESTATION_TOO_LARGE');
    expectThrows(() => parseAttestationInput(new Uint8Array(MAX_DOCUMENT_BYTES + 1).fill(0x84)), 'ORACLE_ERR_ATTESTATION_TOO_LARGE');
    expectThrows(() => parseAttestationInput(new Uint8Array(200 * 1024).fill(0x41)), 'ORACLE_ERR_ATTESTATION_TOO_LARGE');
  });
});

describe('attestationToJson', () => {
  it('renders module_id, RFC 3339 timestamp, digest, hex PCRs and hex/null optional fields', async () => {
    const json = attestationToJson(await verifyAttestation(production()));
    expect(json.module_id).toBe('i-0a22e5c5f24d22174-enc0191cceb4289903f');
    expect(json.timestamp).toBe('2024-09-07T14:37:39.545Z');
    expect(json.timestamp).toBe(productionTime.toISOString());
    expect(json.digest).toBe('SHA384');
    expect(Object.keys(json.pcrs)).toEqual([...Array(16).keys()].map(String));
    expect(json.pcrs['0']).toBe(PROD_PCR0);
    expect(json.pcrs['8']).toBe(ZERO48);
    expect(json.public_key).toBe('01'.repeat(1024));
    expect(json.user_data).toBe('01'.repeat(1024));
    expect(json.nonce).toBe('01'.repeat(1024));
    expect(JSON.parse(JSON.stringify(json))).toEqual(json);

    const ever = attestationToJson(await verifyAttestation(loadVector('evervault-ga'), { allowDebug: true }));
    expect(ever.public_key).toBeNull();
    expect(ever.user_data).toMatch(/^30[0-9a-f]{180}$/); // 91-byte DER SubjectPublicKeyInfo
    expect(ever.nonce).toHaveLength(512);
    expect(ever.pcrs['3']).toBe(EVERVAULT_PCR3);
  });
});
