export {
  MAX_CERTIFICATE_BYTES,
  MAX_DOCUMENT_BYTES,
  MAX_OPTIONAL_FIELD_BYTES,
  MAX_PAYLOAD_BYTES,
  MAX_PCRS,
  MAX_TEXT_INPUT_BYTES,
  PCR_BYTES,
  SIGNATURE_BYTES,
} from './limits.ts';
export { decodeAttestation, verifyAttestation } from './verify.ts';
export { attestationToJson, parseAttestationInput } from './input.ts';
export type { AttestationDocument, AttestationJson, VerifyAttestationOptions } from './types.ts';
export { ATTESTATION_ERROR_CODES, AttestationError } from './errors.ts';
export type { AttestationErrorCode } from './errors.ts';
export { AWS_NITRO_ROOT_G1_DER_SHA256, AWS_NITRO_ROOT_G1_PEM } from './aws-root.ts';
