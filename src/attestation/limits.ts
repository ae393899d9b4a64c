/**
 * Size limits of an attestation document (docs/nitro.md §1.1, §1.2, §2 step 1). Checked before anything is
 * trusted, so a hostile document cannot make the verifier allocate or work without bound.
 */

/** Whole document. NSM responses fit in 12 KiB; the checklist caps input at 16 KiB. */
export const MAX_DOCUMENT_BYTES = 16 * 1024;
/** COSE payload: 1..16384 bytes (AWS spec). */
export const MAX_PAYLOAD_BYTES = 16 * 1024;
/** `certificate` and each `cabundle` entry: 1..1024 bytes (AWS spec). */
export const MAX_CERTIFICATE_BYTES = 1024;
/**
 * `public_key`, `user_data`, `nonce`. The AWS doc says 1024 (CDDL) or 512 (checks); real documents carry
 * 1024-byte fields and larger user_data has been reported working. The hard bound is the NSM request size
 * (4096 bytes of CBOR), so no field can exceed it.
 */
export const MAX_OPTIONAL_FIELD_BYTES = 4096;
/** PCR map: 1..32 entries, indices 0..31. */
export const MAX_PCRS = 32;
/** PCR values are SHA-384 digests (the document's `digest` is always "SHA384"). */
export const PCR_BYTES = 48;
/** ES384 signature: r ‖ s, 48 bytes each. */
export const SIGNATURE_BYTES = 96;
/** Text (hex/base64) accepted by parseAttestationInput before decoding. */
export const MAX_TEXT_INPUT_BYTES = 128 * 1024;
