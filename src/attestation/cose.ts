/**
 * The COSE_Sign1 envelope (RFC 8152 §4.2): `[protected, unprotected, payload, signature]`, untagged or CBOR
 * tag 18, with an ES384 protected header; and its signature check over the original bytes.
 */
import { verify as cryptoVerify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { encode as cborEncode } from 'cborg';
import { decodeCbor, describe } from './cbor.ts';
import { AttestationError, malformed, tooLarge } from './errors.ts';
import { MAX_DOCUMENT_BYTES, MAX_PAYLOAD_BYTES, SIGNATURE_BYTES } from './limits.ts';
import { decodePayload } from './payload.ts';
import type { AttestationDocument } from './types.ts';

/** Tag 18 in its one-byte form: the only tag accepted, and only on the envelope. */
export const CBOR_TAG_COSE_SIGN1 = 0xd2;
const COSE_ALG_ES384 = -35;
const COSE_HEADER_ALG = 1;
const COSE_HEADER_CRIT = 2;

export interface CoseSign1 {
  /** Original bytes of the protected header bstr content (signed as-is). */
  protectedBytes: Uint8Array;
  /** Original bytes of the payload bstr content (signed as-is). */
  payloadBytes: Uint8Array;
  signature: Uint8Array;
  document: AttestationDocument;
}

export function decodeCoseSign1(bytes: Uint8Array): CoseSign1 {
  if (!(bytes instanceof Uint8Array)) throw malformed('attestation document must be a Uint8Array');
  if (bytes.length === 0) throw malformed('attestation document is empty');
  if (bytes.length > MAX_DOCUMENT_BYTES) throw tooLarge(`attestation document is ${bytes.length} bytes; the limit is ${MAX_DOCUMENT_BYTES}`);

  // COSE_Sign1 may be tagged (18) or untagged; real documents are untagged. No other tag is accepted.
  const body = bytes[0] === CBOR_TAG_COSE_SIGN1 ? bytes.subarray(1) : bytes;
  const top = decodeCbor(body, 'COSE_Sign1 envelope', bytes.length - body.length);
  if (!Array.isArray(top) || top.length !== 4) {
    throw malformed(`COSE_Sign1 envelope must be an array of 4 elements, got ${Array.isArray(top) ? `an array of ${top.length}` : describe(top)}`);
  }
  const [protectedBytes, unprotected, payloadBytes, signature] = top as [unknown, unknown, unknown, unknown];
  if (!(protectedBytes instanceof Uint8Array)) throw malformed(`COSE protected header must be a byte string, got ${describe(protectedBytes)}`);
  if (!(unprotected instanceof Map)) throw malformed(`COSE unprotected header must be a map, got ${describe(unprotected)}`);
  if (!(payloadBytes instanceof Uint8Array)) throw malformed(`COSE payload must be a byte string (detached payloads are not allowed), got ${describe(payloadBytes)}`);
  if (!(signature instanceof Uint8Array)) throw malformed(`COSE signature must be a byte string, got ${describe(signature)}`);
  if (signature.length !== SIGNATURE_BYTES) throw malformed(`ES384 signature must be ${SIGNATURE_BYTES} bytes (r‖s), got ${signature.length}`);
  if (payloadBytes.length === 0) throw malformed('COSE payload is empty');
  if (payloadBytes.length > MAX_PAYLOAD_BYTES) throw tooLarge(`COSE payload is ${payloadBytes.length} bytes; the limit is ${MAX_PAYLOAD_BYTES}`);

  checkProtectedHeader(protectedBytes);
  const document = decodePayload(payloadBytes);
  return { protectedBytes, payloadBytes, signature, document };
}

/** The algorithm is taken from the protected header only (never from the unprotected one). */
function checkProtectedHeader(protectedBytes: Uint8Array): void {
  if (protectedBytes.length === 0) {
    throw new AttestationError('ORACLE_ERR_ATTESTATION_UNSUPPORTED_ALGORITHM', 'COSE protected header is empty: no algorithm (ES384 required)');
  }
  const header = decodeCbor(protectedBytes, 'COSE protected header');
  if (!(header instanceof Map)) throw malformed(`COSE protected header must encode a map, got ${describe(header)}`);
  if (header.has(COSE_HEADER_CRIT)) {
    throw new AttestationError('ORACLE_ERR_ATTESTATION_UNSUPPORTED_ALGORITHM', 'COSE protected header carries crit (2); no critical header parameters are supported');
  }
  const alg: unknown = header.get(COSE_HEADER_ALG);
  if (alg !== COSE_ALG_ES384) {
    throw new AttestationError(
      'ORACLE_ERR_ATTESTATION_UNSUPPORTED_ALGORITHM',
      `COSE algorithm must be ES384 (-35), got ${alg === undefined ? 'none' : typeof alg === 'number' || typeof alg === 'bigint' || typeof alg === 'string' ? String(alg) : describe(alg)}`,
    );
  }
}

export function verifyCoseSignature(cose: CoseSign1, leafKey: KeyObject): void {
  // Sig_structure (RFC 8152 §4.4) over the ORIGINAL protected-header and payload bytes; external_aad = h''.
  const toBeSigned = cborEncode(['Signature1', cose.protectedBytes, new Uint8Array(0), cose.payloadBytes]);
  let ok: boolean;
  try {
    ok = cryptoVerify('sha384', toBeSigned, { key: leafKey, dsaEncoding: 'ieee-p1363' }, cose.signature);
  } catch (cause) {
    throw new AttestationError('ORACLE_ERR_ATTESTATION_BAD_SIGNATURE', `COSE_Sign1 signature check failed: ${(cause as Error).message}`, { cause });
  }
  if (!ok) throw new AttestationError('ORACLE_ERR_ATTESTATION_BAD_SIGNATURE', 'COSE_Sign1 signature does not verify with the leaf certificate key');
}
