// @peculiar/x509 2.x resolves its ASN.1 providers through tsyringe, which needs the Reflect metadata
// polyfill loaded before the library itself.
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import { BasicConstraintsExtension, KeyUsageFlags, KeyUsagesExtension, SubjectKeyIdentifierExtension, X509CertificateGenerator } from '@peculiar/x509';
import type { JsonName, X509Certificate } from '@peculiar/x509';
import { SIGNING_ALGORITHM } from './p256-key.ts';
import type { CryptoKey, CryptoKeyPair } from './p256-key.ts';

export const DAY_MS = 24 * 60 * 60 * 1000;
/** CA lifetime; long, because every client that trusts the CA has to be re-provisioned when it changes. */
export const CA_CERT_LIFETIME_YEARS = 10;
/** Certificates start a day in the past so clients with a slow clock accept them at once. */
export const CLOCK_SKEW_ALLOWANCE_MS = DAY_MS;

/** A CA certificate with its signing key, in memory. */
export interface CaSigner {
  readonly certificate: X509Certificate;
  readonly privateKey: CryptoKey;
}

/**
 * A self-signed root for issuing TLS server leaves. Extensions per RFC 5280 §4.2.1: basicConstraints
 * critical with CA:TRUE and pathLenConstraint 0 (§4.2.1.9; it signs leaves only), keyUsage critical
 * keyCertSign|cRLSign (§4.2.1.3), and a subjectKeyIdentifier (§4.2.1.2) for the leaves' AKI to point at.
 */
export async function createCaCertificate(keys: CryptoKeyPair, commonName: string, now = new Date(), validity?: { notBefore: Date; notAfter: Date }): Promise<X509Certificate> {
  // A fixed window (the guest shim's CA, made in a machine whose clock is not the world's) or one from `now`.
  const notBefore = validity?.notBefore ?? new Date(now.getTime() - CLOCK_SKEW_ALLOWANCE_MS);
  const notAfter = validity?.notAfter ?? new Date(notBefore);
  if (validity === undefined) notAfter.setUTCFullYear(notAfter.getUTCFullYear() + CA_CERT_LIFETIME_YEARS);
  return X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerialNumber(),
      name: [{ CN: [commonName] }] satisfies JsonName,
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new BasicConstraintsExtension(true, 0, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
        await SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );
}

/**
 * 16 random bytes with the top bit cleared: a positive INTEGER (RFC 5280 §4.1.2.2, at most 20 octets)
 * carrying well over the 64 bits of CSPRNG output CA/B BR §7.1 asks for. A non-zero first byte keeps the
 * DER encoding exactly 16 octets.
 */
export function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString('hex');
}
