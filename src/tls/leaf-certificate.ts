// @peculiar/x509 2.x resolves its ASN.1 providers through tsyringe, which needs the Reflect metadata
// polyfill loaded before the library itself.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509CertificateGenerator,
} from '@peculiar/x509';
import type { JsonGeneralName, JsonName, X509Certificate } from '@peculiar/x509';
import { BadRequestError } from '../errors.ts';
import { CLOCK_SKEW_ALLOWANCE_MS, DAY_MS, randomSerialNumber } from './ca-certificate.ts';
import type { CaSigner } from './ca-certificate.ts';
import { parseCertHost } from './cert-host.ts';
import type { CertHost } from './cert-host.ts';
import { SIGNING_ALGORITHM } from './p256-key.ts';
import type { CryptoKey } from './p256-key.ts';

/**
 * Leaf lifetime. CA/Browser Forum Baseline Requirements §6.3.2 (ballot SC-31, 2020): subscriber
 * certificates SHOULD NOT have a validity period over 397 days; Apple and Chrome enforce 398 days. Those
 * caps bind publicly trusted roots only, but staying under them means no client policy ever trips on
 * our leaves. (Ballot SC-081 lowers the public cap to 200 days from 2026-03-15; private roots are exempt.)
 */
export const LEAF_CERT_LIFETIME_DAYS = 397;
/** X.520 ub-common-name (RFC 5280 Appendix A.1): longer hostnames go into the SAN only. */
const MAX_COMMON_NAME_LENGTH = 64;

/**
 * A TLS server leaf for `hosts`, signed by `ca`. Names go into the subjectAltName, which is what clients
 * match (RFC 6125 §6.4.4, RFC 9110 §4.3.4): DNS names as dNSName, IP literals as iPAddress (RFC 5280
 * §4.2.1.6). The CN repeats the first host, as CA/B BR §7.1.4.3 allows, unless it exceeds ub-common-name;
 * then the subject is empty and the SAN critical (RFC 5280 §4.2.1.6). EKU serverAuth (§4.2.1.12),
 * keyUsage digitalSignature (all an ECDHE_ECDSA server key does), SKI and AKI (§4.2.1.1-2) for path building.
 * Validity is clamped to the CA's notAfter so no leaf outlives its issuer.
 */
export async function createLeafCertificate(
  ca: CaSigner,
  hosts: readonly (string | CertHost)[],
  publicKey: CryptoKey,
  now = new Date(),
): Promise<X509Certificate> {
  const names = hosts.map((host) => (typeof host === 'string' ? parseCertHost(host) : host));
  const first = names[0];
  if (first === undefined) throw new BadRequestError('Cannot issue a leaf certificate without a host name');
  const notBefore = new Date(now.getTime() - CLOCK_SKEW_ALLOWANCE_MS);
  // BR §1.6.1 counts the validity period from notBefore through notAfter inclusive, hence the 1 s.
  const lifetimeEnd = notBefore.getTime() + LEAF_CERT_LIFETIME_DAYS * DAY_MS - 1000;
  const notAfter = new Date(Math.min(lifetimeEnd, ca.certificate.notAfter.getTime()));
  const withCommonName = first.value.length <= MAX_COMMON_NAME_LENGTH;
  const san: JsonGeneralName[] = names.map((name) => ({ type: name.type, value: name.value }));
  const caKeyId = ca.certificate.getExtension(SubjectKeyIdentifierExtension)?.keyId;
  return X509CertificateGenerator.create(
    {
      serialNumber: randomSerialNumber(),
      subject: withCommonName ? ([{ CN: [first.value] }] satisfies JsonName) : ([] satisfies JsonName),
      issuer: ca.certificate.subjectName,
      notBefore,
      notAfter,
      publicKey,
      signingKey: ca.privateKey,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new BasicConstraintsExtension(false, undefined, true),
        new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
        new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth], false),
        new SubjectAlternativeNameExtension(san, !withCommonName),
        await SubjectKeyIdentifierExtension.create(publicKey, false, webcrypto),
        caKeyId !== undefined
          ? new AuthorityKeyIdentifierExtension(caKeyId, false)
          : await AuthorityKeyIdentifierExtension.create(ca.certificate.publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );
}
