import { AttestationError, ERROR_CODES } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';

/**
 * The verifier's failure codes, kept in ERROR_CODES (src/errors.ts), where each is explained:
 * MALFORMED (not CBOR / not COSE_Sign1 / a field of the wrong type), TOO_LARGE (over the limits in
 * docs/nitro.md), UNSUPPORTED_ALGORITHM (not ES384, or `crit`), BAD_SIGNATURE (COSE signature), INVALID_CHAIN
 * (a certificate link), UNTRUSTED_ROOT (not the pinned root), EXPIRED / NOT_YET_VALID (validity at the
 * verification time), DEBUG_MODE (PCR0/1/2 zero), PCR_MISMATCH, INVALID_OPTIONS (the caller's options).
 */
export const ATTESTATION_ERROR_CODES = ERROR_CODES.filter((c): c is Extract<ErrorCode, `ORACLE_ERR_ATTESTATION_${string}`> => c.startsWith('ORACLE_ERR_ATTESTATION_'));

export type AttestationErrorCode = Extract<ErrorCode, `ORACLE_ERR_ATTESTATION_${string}`>;

/** A failed attestation check: an OracleError whose code says which check failed (defined in src/errors.ts, beside errorFromCode, which rebuilds it). */
export { AttestationError };
