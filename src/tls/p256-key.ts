import { KeyObject, webcrypto } from 'node:crypto';

// Node's WebCrypto types; the project compiles without the DOM lib, which would declare them globally.
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;

/** ECDSA over P-256 with SHA-256 (RFC 5758 §3.2): universally supported and fast to generate. */
export const EC_KEY_ALGORITHM: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
export const SIGNING_ALGORITHM: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };

/** An extractable ECDSA P-256 key pair (WebCrypto). */
export async function generateP256KeyPair(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify']);
}

/** PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) of an extractable WebCrypto private key. */
export function privateKeyToPem(privateKey: CryptoKey): string {
  return KeyObject.from(privateKey).export({ type: 'pkcs8', format: 'pem' }).toString();
}
