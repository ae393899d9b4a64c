import { AttestationError, ERROR_CODES } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';

/**
 * The verifier's failure codes, kept in ERROR_CODES (src/errors.ts), where each is explained:
 * MALFORMED (not CBOR / not COSE_Sign1 / truncated / a field of the wrong type), TOO_LARGE (over the limits in
 * docs/nitro.md), UNSUPPORTED_ALGORITHM (not ES384, or `crit`), BAD_SIGNATURE (COSE signature), INVALID_CHAIN
 * (a certificate link), UNTRUSTED_ROOT (not the pinned root), EXPIRED / NOT_YET_VALID (validity at the
 * verification time), STALE (older than the caller's maximum age), DEBUG_MODE (PCR0/1/2 zero), PCR_MISMATCH,
 * INVALID_OPTIONS (the caller's options).
 */
export const ATTESTATION_ERROR_CODES = ERROR_CODES.filter((c): c is Extract<ErrorCode, `ORACLE_ERR_ATTESTATION_${string}`> => c.startsWith('ORACLE_ERR_ATTESTATION_'));

export type AttestationErrorCode = Extract<ErrorCode, `ORACLE_ERR_ATTESTATION_${string}`>;

/** A failed attestation check: an OracleError whose code says which check failed (defined in src/errors.ts, beside errorFromCode, which rebuilds it). */
export { AttestationError };

export function malformed(message: string, cause?: unknown): AttestationError {
  return new AttestationError('ORACLE_ERR_ATTESTATION_MALFORMED', message, cause === undefined ? undefined : { cause });
}

export function tooLarge(message: string): AttestationError {
  return new AttestationError('ORACLE_ERR_ATTESTATION_TOO_LARGE', message);
}

export function invalidOptions(message: string): AttestationError {
  return new AttestationError('ORACLE_ERR_ATTESTATION_INVALID_OPTIONS', message);
}

export function chainError(message: string, cause?: unknown): AttestationError {
  return new AttestationError('ORACLE_ERR_ATTESTATION_INVALID_CHAIN', message, cause === undefined ? undefined : { cause });
}

/** Safety net: every failure surfaces as an AttestationError (the original error is kept as `cause`). */
export function asAttestationError(error: unknown): AttestationError {
  if (error instanceof AttestationError) return error;
  return malformed(`attestation document could not be processed: ${(error as Error)?.message ?? String(error)}`, error);
}
