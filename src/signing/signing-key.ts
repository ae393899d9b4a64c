import { sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { CID } from 'multiformats/cid';
import { PUBLIC_KEY_BYTES, recordSigningMessage, SIGNATURE_BYTES } from '../protocol/signature.ts';
import type { SignedRecord } from '../protocol/signature.ts';
import { loadSodium } from '../protocol/sodium.ts';
import type { Sodium } from '../protocol/sodium.ts';

/** libsodium's secret key: the 32-byte seed, then the public key. */
const SECRET_KEY_BYTES = 32 + PUBLIC_KEY_BYTES;

/** Which implementation signs records: libsodium's, or Node's (OpenSSL) where sodium-native cannot load. */
export type SigningBackend = 'libsodium' | 'node';

/**
 * Signs with one ed25519 key (records, countersignatures), through libsodium when it loads, else Node's
 * OpenSSL. Ed25519 signatures are deterministic (RFC 8032 §5.1.6): both give the same 64 bytes for the same
 * key and message (tested), so nothing signed depends on which one signed. libsodium signs in ~15 us here
 * against OpenSSL's ~33 us in a loop, and in a record process the signature fell from 11% of its CPU to 6%
 * (issue #15). The secret key then lives in libsodium's guarded, read-only memory, outside V8's heap.
 * Verification is `ed25519Verifies` (`signature.ts`): OpenSSL's verdict everywhere.
 */
export class SigningKey {
  readonly backend: SigningBackend;
  readonly #key: KeyObject;
  readonly #sodium: Sodium | null;
  readonly #secret: Buffer | undefined;

  /**
   * `key`: the private key; `secretKey`: the same key as libsodium writes it (seed ‖ public key, 64 bytes).
   * `sodium` is for tests (null: Node signs).
   */
  constructor(key: KeyObject, secretKey: Uint8Array, sodium: Sodium | null = loadSodium()) {
    this.#key = key;
    this.#secret = sodium === null ? undefined : guardedCopy(sodium, secretKey.subarray(0, SECRET_KEY_BYTES));
    this.#sodium = this.#secret === undefined ? null : sodium;
    this.backend = this.#sodium === null ? 'node' : 'libsodium';
  }

  /** `key` alone: its seed and public key read from its JWK export. */
  static fromKeyObject(key: KeyObject, sodium: Sodium | null = loadSodium()): SigningKey {
    const jwk = key.export({ format: 'jwk' });
    const secretKey = Buffer.concat([Buffer.from(jwk.d!, 'base64url'), Buffer.from(jwk.x!, 'base64url')]);
    try {
      return new SigningKey(key, secretKey, sodium);
    } finally {
      secretKey.fill(0);
    }
  }

  sign(record: CID): SignedRecord {
    return { record, signature: this.signMessage(recordSigningMessage(record)) };
  }

  /** The key's signature of `message` (a record's or a countersignature's signing message, prefix included). */
  signMessage(message: Uint8Array): Uint8Array {
    if (this.#sodium === null) return new Uint8Array(sign(null, message, this.#key));
    const signature = new Uint8Array(SIGNATURE_BYTES);
    this.#sodium.crypto_sign_detached(signature, message, this.#secret!);
    return signature;
  }
}

/** The key in libsodium's guarded, read-only memory; undefined when the system refuses it (Node signs then). */
function guardedCopy(sodium: Sodium, secretKey: Uint8Array): Buffer | undefined {
  try {
    const secret = sodium.sodium_malloc(secretKey.byteLength);
    secret.set(secretKey);
    sodium.sodium_mprotect_readonly(secret);
    return secret;
  } catch {
    return undefined;
  }
}
