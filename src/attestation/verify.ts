/**
 * AWS Nitro Enclaves attestation documents: decoding and offline verification (no fs, no network).
 *
 * Format and checklist: docs/nitro.md (shared). In short, a document is a COSE_Sign1
 * `[protected, unprotected, payload, signature]` (untagged, or CBOR tag 18), signed with ES384 by a 3-hour
 * leaf certificate that chains, through `cabundle` (root-first), to the pinned AWS Nitro root G1. The parts:
 * cbor.ts (decoding, truncation), cose.ts (envelope, signature), payload.ts (fields), chain.ts
 * (certificates), policy.ts (options, debug mode, PCRs, freshness), input.ts (file forms, JSON view).
 * CBOR is cborg's and certificates are @peculiar/x509's; only the four-item COSE_Sign1 envelope is taken
 * apart here (cose.ts), because docs/nitro.md's checklist bounds and types every field and a COSE library would
 * add a dependency for one fixed algorithm (ES384) without doing those checks.
 */
import { verifyChain } from './chain.ts';
import { decodeCoseSign1, verifyCoseSignature } from './cose.ts';
import { asAttestationError } from './errors.ts';
import { checkDebugMode, checkFreshness, checkPcrs, resolveOptions } from './policy.ts';
import type { AttestationDocument, VerifyAttestationOptions } from './types.ts';

/**
 * Decodes an attestation document and checks its structure (COSE_Sign1 layout, ES384 protected header,
 * payload field types and sizes). Does NOT verify any signature: use verifyAttestation for that.
 */
export function decodeAttestation(bytes: Uint8Array): AttestationDocument {
  try {
    return decodeCoseSign1(bytes).document;
  } catch (error) {
    throw asAttestationError(error);
  }
}

/**
 * Fully verifies an attestation document: structure, root pin, certificate chain as of `at` (default: the
 * document's timestamp), COSE_Sign1 ES384 signature, debug mode, PCR policy and, with `maxAgeMs`, freshness.
 * Throws AttestationError.
 */
export function verifyAttestation(bytes: Uint8Array, options: VerifyAttestationOptions = {}): Promise<AttestationDocument> {
  try {
    return Promise.resolve(verifyAttestationSync(bytes, options));
  } catch (error) {
    return Promise.reject(asAttestationError(error));
  }
}

function verifyAttestationSync(bytes: Uint8Array, options: VerifyAttestationOptions): AttestationDocument {
  const resolved = resolveOptions(options);
  const cose = decodeCoseSign1(bytes);
  const { document } = cose;
  const leafKey = verifyChain(document, resolved.rootDer, resolved.at ?? document.timestamp);
  verifyCoseSignature(cose, leafKey);
  checkDebugMode(document, resolved.allowDebug);
  if (resolved.expectedPcrs !== undefined) checkPcrs(document, resolved.expectedPcrs);
  // Last: the timestamp is only worth judging once the signature has vouched for it.
  if (resolved.maxAgeMs !== undefined && resolved.at !== undefined) checkFreshness(document, resolved.at, resolved.maxAgeMs);
  return document;
}
