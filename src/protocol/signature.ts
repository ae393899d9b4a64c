import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { CID } from 'multiformats/cid';
import { BadSignatureError, UntrustedKeyError } from '../errors.ts';
import { equalBytes } from './blocks.ts';
import { loadSodium } from './sodium.ts';

/** Sizes of ed25519 signatures and public keys (RFC 8032 §5.1.5, §5.1.6). */
export const SIGNATURE_BYTES = 64;
export const PUBLIC_KEY_BYTES = 32;

/** Domain separation so a record signature can never be replayed as any other statement (design §3). */
export const RECORD_SIGNATURE_PREFIX = new TextEncoder().encode('fetch-oracle/record/v1\n');

export interface SignedRecord {
  readonly record: CID;
  /** ed25519 signature (64 bytes) over RECORD_SIGNATURE_PREFIX ‖ record CID bytes. */
  readonly signature: Uint8Array;
}

export function recordSigningMessage(record: CID): Uint8Array {
  const out = new Uint8Array(RECORD_SIGNATURE_PREFIX.byteLength + record.bytes.byteLength);
  out.set(RECORD_SIGNATURE_PREFIX, 0);
  out.set(record.bytes, RECORD_SIGNATURE_PREFIX.byteLength);
  return out;
}

const b64url = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');

/**
 * Signing and verification run on Node's native ed25519 (RFC 8032, deterministic: the same signatures
 * tweetnacl makes, as a test checks), because tweetnacl's pure-JS verify costs ~10 ms and would cap
 * replay at ~100 requests/s per core; native costs ~0.15 ms. Key pairs come from their seeds the same way
 * (`privateKeyOfSeed`); tweetnacl is left to tests, which check both against it.
 */
const publicKeys = new Map<string, KeyObject>();
export function publicKeyObject(publicKey: Uint8Array): KeyObject {
  const id = b64url(publicKey);
  let key = publicKeys.get(id);
  if (key === undefined) {
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: id }, format: 'jwk' });
    if (publicKeys.size > 1024) publicKeys.clear();
    publicKeys.set(id, key);
  }
  return key;
}

/** PKCS #8 for an Ed25519 private key (RFC 8410 §7), up to its 32-byte seed. */
const PKCS8_ED25519_SEED_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** The private key of a 32-byte ed25519 seed, by Node's OpenSSL (tweetnacl's `keyPair.fromSeed` took ~26 ms cold). */
export function privateKeyOfSeed(seed: Uint8Array): KeyObject {
  if (seed.byteLength !== 32) throw new RangeError(`An ed25519 seed is 32 bytes, not ${seed.byteLength}`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_SEED_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/** The raw 32-byte public key of an ed25519 private key. */
export function rawPublicKey(key: KeyObject): Uint8Array {
  return new Uint8Array(Buffer.from(createPublicKey(key).export({ format: 'jwk' }).x!, 'base64url'));
}

/** The ed25519 public key of a 32-byte seed (what tweetnacl's `keyPair.fromSeed` gives). */
export function publicKeyOfSeed(seed: Uint8Array): Uint8Array {
  return rawPublicKey(privateKeyOfSeed(seed));
}

/** A private key object from a tweetnacl secret key (seed ‖ public key, 64 bytes). */
export function privateKeyObject(secretKey: Uint8Array): KeyObject {
  return createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64url(secretKey.subarray(0, 32)), x: b64url(secretKey.subarray(32)) }, format: 'jwk' });
}

export function signRecordCid(record: CID, secretKey: Uint8Array | KeyObject): SignedRecord {
  const key = secretKey instanceof Uint8Array ? privateKeyObject(secretKey) : secretKey;
  return { record, signature: new Uint8Array(sign(null, recordSigningMessage(record), key)) };
}

/**
 * Whether `signature` is `publicKey`'s ed25519 signature of `message`, as Node's OpenSSL decides. libsodium
 * answers first where it loads (`sodium.ts`): 40 us against OpenSSL's 90 here, and a replay checks one
 * signature per URL it serves. It accepts only signatures OpenSSL accepts (the same equation and checks of S
 * and R, and it also refuses small-order and non-canonical keys and R), so one it accepts is OpenSSL's answer
 * too, and one it refuses is asked of OpenSSL: the answer is OpenSSL's either way, on every platform, the
 * guest's included (issue #15). A signature or key of the wrong size is no signature.
 */
export function ed25519Verifies(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.byteLength !== SIGNATURE_BYTES || publicKey.byteLength !== PUBLIC_KEY_BYTES) return false;
  if (loadSodium()?.crypto_sign_verify_detached(signature, message, publicKey) === true) return true;
  try {
    return verify(null, message, publicKeyObject(publicKey), signature);
  } catch {
    return false; // a key that is not a curve point
  }
}

/** Throws BadSignatureError unless `signature` is `publicKey`'s signature of the record CID (`ed25519Verifies`). */
export function verifyRecordSignature(signed: SignedRecord, publicKey: Uint8Array): void {
  assertSizes(signed, publicKey);
  let ok = false;
  try {
    ok = ed25519Verifies(recordSigningMessage(signed.record), signed.signature, publicKey);
  } catch {
    ok = false; // not a signed record at all (no CID to sign)
  }
  if (!ok) throw badSignature(signed, publicKey);
}

/**
 * `verifyRecordSignature` for records checked many at a time (`verify`, `import`, a record run keeping a
 * netlock of 100,000 entries, which verifies them all before it listens; issue #15): by OpenSSL on libuv's
 * thread pool, on every core, where one after the other they take ~90 us each of the calling thread. Where
 * the pool has two cores at most to spread them over, libsodium on the calling thread (~40 us) is sooner:
 * there it answers first, OpenSSL deciding what it refuses (`ed25519Verifies` says why that is OpenSSL's
 * verdict).
 */
export function verifyRecordSignatureInPool(signed: SignedRecord, publicKey: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    assertSizes(signed, publicKey); // a throw here rejects
    if (poolCores() <= 2 && loadSodium() !== null) {
      if (ed25519Verifies(recordSigningMessage(signed.record), signed.signature, publicKey)) resolve();
      else reject(badSignature(signed, publicKey));
      return;
    }
    let key: KeyObject;
    try {
      key = publicKeyObject(publicKey);
    } catch {
      return reject(badSignature(signed, publicKey)); // not a curve point
    }
    const done = (err: Error | null, ok: boolean): void => (err === null && ok ? resolve() : reject(badSignature(signed, publicKey)));
    try {
      verify(null, recordSigningMessage(signed.record), key, signed.signature, done);
    } catch (err) {
      done(err as Error, false);
    }
  });
}

let cores: number | undefined;

/** The cores libuv's thread pool can check signatures on at once: its threads (4 unless set), at most the CPUs. */
function poolCores(): number {
  cores ??= Math.min(Number(process.env['UV_THREADPOOL_SIZE'] ?? '4') || 4, availableParallelism());
  return cores;
}

/** Throws BadSignatureError for a signature or key of the wrong size (the message says which). */
function assertSizes(signed: SignedRecord, publicKey: Uint8Array): void {
  if (signed.signature.byteLength !== SIGNATURE_BYTES) {
    throw new BadSignatureError(`Signature of record ${signed.record} is ${signed.signature.byteLength} bytes (expected ${SIGNATURE_BYTES})`);
  }
  if (publicKey.byteLength !== PUBLIC_KEY_BYTES) {
    throw new BadSignatureError(`Oracle key of record ${signed.record} is ${publicKey.byteLength} bytes (expected ${PUBLIC_KEY_BYTES})`);
  }
}

function badSignature(signed: SignedRecord, publicKey: Uint8Array): BadSignatureError {
  return new BadSignatureError(`Bad signature on record ${signed.record} for oracle key ${toHex(publicKey)}`);
}

/** Trusted oracle keys: a record's `oracle` must be one of them. */
export function assertTrustedKey(publicKey: Uint8Array, trusted: readonly Uint8Array[], what: string | (() => string)): void {
  if (!trusted.some((k) => equalBytes(k, publicKey))) {
    throw new UntrustedKeyError(
      `${typeof what === 'string' ? what : what()} is signed by oracle key ${toHex(publicKey)}, which is not trusted (trusted: ${trusted.map(toHex).join(', ') || 'none'}); pass --trust ${toHex(publicKey)} if you trust it`,
    );
  }
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function fromHex(hex: string, expectedBytes?: number): Uint8Array {
  if (!/^([0-9a-fA-F]{2})*$/.test(hex)) throw new Error(`Invalid hex string: ${JSON.stringify(hex.slice(0, 80))}`);
  const out = new Uint8Array(Buffer.from(hex, 'hex'));
  if (expectedBytes !== undefined && out.byteLength !== expectedBytes) {
    throw new Error(`Expected ${expectedBytes} bytes of hex, got ${out.byteLength}`);
  }
  return out;
}
