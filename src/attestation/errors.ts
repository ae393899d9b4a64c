import { OracleError } from '../errors.ts';

/** Codes of the Nitro attestation verifier (also listed in ERROR_CODES in src/errors.ts). */
export const ATTESTATION_ERROR_CODES = [
  /** Not CBOR / not a COSE_Sign1 / a payload field is missing, of the wrong type or out of range. */
  'ORACLE_ERR_ATTESTATION_MALFORMED',
  /** The document or one of its fields is larger than the limits in docs/nitro.md. */
  'ORACLE_ERR_ATTESTATION_TOO_LARGE',
  /** The protected header does not say ES384 (-35), or carries `crit`. */
  'ORACLE_ERR_ATTESTATION_UNSUPPORTED_ALGORITHM',
  /** The COSE_Sign1 signature does not verify with the leaf certificate's key. */
  'ORACLE_ERR_ATTESTATION_BAD_SIGNATURE',
  /** A certificate link is broken (signature, issuer name, CA flags, key usage, path length, algorithm). */
  'ORACLE_ERR_ATTESTATION_INVALID_CHAIN',
  /** The root is not the pinned one (fingerprint mismatch, or cabundle[0] is not the pinned root). */
  'ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT',
  /** A certificate's notAfter is before the verification time. */
  'ORACLE_ERR_ATTESTATION_EXPIRED',
  /** A certificate's notBefore is after the verification time. */
  'ORACLE_ERR_ATTESTATION_NOT_YET_VALID',
  /** PCR0, PCR1 or PCR2 is all zeros (enclave started with --debug-mode) and allowDebug is not set. */
  'ORACLE_ERR_ATTESTATION_DEBUG_MODE',
  /** A PCR differs from (or is missing for) an expected value. */
  'ORACLE_ERR_ATTESTATION_PCR_MISMATCH',
  /** The verifier options themselves are invalid (bad PEM, bad fingerprint, bad PCR policy, bad date). */
  'ORACLE_ERR_ATTESTATION_INVALID_OPTIONS',
] as const;

export type AttestationErrorCode = (typeof ATTESTATION_ERROR_CODES)[number];

/** A failed attestation check: an OracleError whose code says which check failed. */
export class AttestationError extends OracleError {
  declare readonly code: AttestationErrorCode;

  constructor(code: AttestationErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'AttestationError';
  }
}
