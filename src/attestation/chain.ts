/**
 * The certificate chain of a document: leaf ← cabundle[n-1] ← … ← cabundle[0], where cabundle[0] must be
 * byte-equal to the pinned root; every link is checked for algorithm, CA role, issuer, signature and
 * validity at the verification time (docs/nitro.md §2 steps 4-6).
 */
import 'reflect-metadata';
import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { bytesEqual, sha256Hex } from './bytes.ts';
import { AttestationError, chainError, malformed } from './errors.ts';
import type { AttestationDocument } from './types.ts';

const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';

interface ChainCert {
  label: string;
  der: Uint8Array;
  node: NodeX509Certificate;
  parsed: x509.X509Certificate;
}

function parseCertificate(der: Uint8Array, label: string): ChainCert {
  try {
    const node = new NodeX509Certificate(der);
    const parsed = new x509.X509Certificate(der);
    if (!bytesEqual(new Uint8Array(parsed.rawData), der)) throw new Error('trailing or non-DER bytes');
    void node.publicKey; // decodes the key now (throws on e.g. a point not on the curve)
    return { label, der, node, parsed };
  } catch (cause) {
    throw malformed(`${label} is not a DER X.509 certificate: ${(cause as Error).message}`, cause);
  }
}

function checkAlgorithms(cert: ChainCert): void {
  const details = cert.node.publicKey.asymmetricKeyDetails;
  if (cert.node.publicKey.asymmetricKeyType !== 'ec' || details?.namedCurve !== 'secp384r1') {
    throw chainError(`${cert.label} key must be ECDSA P-384, got ${cert.node.publicKey.asymmetricKeyType ?? 'unknown'} ${details?.namedCurve ?? ''}`.trim());
  }
  // Certificate.signatureAlgorithm (node:crypto has no accessor for it); must be ecdsa-with-SHA384.
  let sigAlg: string;
  try {
    const alg = cert.parsed.signatureAlgorithm as unknown as { name?: unknown; hash?: unknown };
    const hash = alg.hash;
    const hashName = typeof hash === 'string' ? hash : (hash as { name?: unknown } | undefined)?.name;
    sigAlg = `${typeof alg.name === 'string' ? alg.name : '?'}/${typeof hashName === 'string' ? hashName : '?'}`;
  } catch {
    sigAlg = 'unknown';
  }
  if (sigAlg.toUpperCase() !== 'ECDSA/SHA-384') throw chainError(`${cert.label} must be signed with ecdsa-with-SHA384, got ${sigAlg}`);
  for (const ext of cert.parsed.extensions) {
    if (ext.critical && ext.type !== OID_BASIC_CONSTRAINTS && ext.type !== OID_KEY_USAGE) {
      throw chainError(`${cert.label} has an unsupported critical extension ${ext.type}`);
    }
  }
}

function basicConstraints(cert: ChainCert): x509.BasicConstraintsExtension | null {
  return cert.parsed.getExtension(x509.BasicConstraintsExtension);
}

function keyUsages(cert: ChainCert): x509.KeyUsagesExtension | null {
  return cert.parsed.getExtension(x509.KeyUsagesExtension);
}

function checkCa(cert: ChainCert, intermediatesBelow: number): void {
  const bc = basicConstraints(cert);
  if (bc === null || !bc.ca) throw chainError(`${cert.label} is used as a CA but is not a CA (basicConstraints CA=true missing)`);
  if (!bc.critical) throw chainError(`${cert.label} basicConstraints must be critical`);
  if (bc.pathLength !== undefined && intermediatesBelow > bc.pathLength) {
    throw chainError(`${cert.label} allows ${bc.pathLength} intermediate CA(s) below it (pathLen), but the chain has ${intermediatesBelow}`);
  }
  const ku = keyUsages(cert);
  if (ku === null || (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) throw chainError(`${cert.label} keyUsage lacks keyCertSign`);
}

function checkLeaf(cert: ChainCert): void {
  const bc = basicConstraints(cert);
  if (bc !== null && bc.ca) throw chainError(`${cert.label} (leaf) must not be a CA`);
  const ku = keyUsages(cert);
  if (ku === null || (ku.usages & x509.KeyUsageFlags.digitalSignature) === 0) throw chainError(`${cert.label} (leaf) keyUsage lacks digitalSignature`);
}

/** Certificate signature check; OpenSSL errors (e.g. an unparsable signature value) count as "does not verify". */
function signedBy(child: ChainCert, parent: ChainCert): boolean {
  try {
    return child.node.verify(parent.node.publicKey);
  } catch {
    return false;
  }
}

function checkValidity(cert: ChainCert, at: Date): void {
  const { notBefore, notAfter } = cert.parsed;
  if (at.getTime() < notBefore.getTime()) {
    throw new AttestationError(
      'ORACLE_ERR_ATTESTATION_NOT_YET_VALID',
      `${cert.label} is not yet valid at ${at.toISOString()} (notBefore ${notBefore.toISOString()})`,
    );
  }
  if (at.getTime() > notAfter.getTime()) {
    throw new AttestationError(
      'ORACLE_ERR_ATTESTATION_EXPIRED',
      `${cert.label} has expired at ${at.toISOString()} (notAfter ${notAfter.toISOString()})`,
    );
  }
}

/**
 * Validates leaf ← cabundle[n-1] ← … ← cabundle[1] ← cabundle[0] = pinned root, as of `at`.
 * Returns the leaf public key.
 */
export function verifyChain(document: AttestationDocument, rootDer: Uint8Array, at: Date): KeyObject {
  const { cabundle } = document;
  const first = cabundle[0];
  if (first === undefined || !bytesEqual(first, rootDer)) {
    const rootIndex = cabundle.findIndex((c) => bytesEqual(c, rootDer));
    if (rootIndex > 0) {
      throw new AttestationError(
        'ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT',
        `cabundle is out of order: the pinned root is cabundle[${rootIndex}], but cabundle must be root-first (cabundle[0] = root)`,
      );
    }
    throw new AttestationError(
      'ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT',
      `cabundle[0] is not the pinned root certificate (DER SHA-256 ${first === undefined ? 'none' : sha256Hex(first)}, expected ${sha256Hex(rootDer)})`,
    );
  }

  // Leaf-first: [leaf, cabundle[n-1], …, cabundle[1], root]. The root is the pinned copy (byte-equal anyway).
  const chain: ChainCert[] = [parseCertificate(document.certificate, 'certificate (leaf)')];
  for (let i = cabundle.length - 1; i >= 1; i--) chain.push(parseCertificate(cabundle[i] as Uint8Array, `cabundle[${i}]`));
  chain.push(parseCertificate(rootDer, 'cabundle[0] (root)'));

  for (const cert of chain) checkAlgorithms(cert);

  const root = chain[chain.length - 1] as ChainCert;
  if (!signedBy(root, root)) throw chainError(`${root.label} is not self-signed`);
  for (let i = chain.length - 1; i >= 1; i--) {
    const parent = chain[i] as ChainCert;
    const child = chain[i - 1] as ChainCert;
    checkCa(parent, i - 1);
    if (!child.node.checkIssued(parent.node)) {
      throw chainError(`${child.label} was not issued by ${parent.label} (issuer "${child.node.issuer.replace(/\n/g, ', ')}" vs subject "${parent.node.subject.replace(/\n/g, ', ')}")`);
    }
    if (!signedBy(child, parent)) throw chainError(`${child.label} signature does not verify with the key of ${parent.label}`);
  }
  const leaf = chain[0] as ChainCert;
  checkLeaf(leaf);

  for (const cert of chain) checkValidity(cert, at);
  return leaf.node.publicKey;
}
