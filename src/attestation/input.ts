/** Reading a document from a file's bytes (raw, hex or base64) and writing its fields as JSON. */
import { toHex } from './bytes.ts';
import { CBOR_TAG_COSE_SIGN1 } from './cose.ts';
import { malformed, tooLarge } from './errors.ts';
import { MAX_DOCUMENT_BYTES, MAX_TEXT_INPUT_BYTES } from './limits.ts';
import type { AttestationDocument, AttestationJson } from './types.ts';

function looksLikeRawCose(first: number | undefined): boolean {
  return first === 0x84 || first === 0x9f || first === CBOR_TAG_COSE_SIGN1; // array(4), indefinite array, tag 18
}

/**
 * Accepts a document as raw CBOR, hex (optionally `0x`-prefixed) or base64 (standard or URL alphabet,
 * padding optional); ASCII whitespace is ignored in text forms. Returns the raw CBOR bytes.
 */
export function parseAttestationInput(text: Uint8Array): Uint8Array {
  if (!(text instanceof Uint8Array)) throw malformed('attestation input must be a Uint8Array');
  if (text.length === 0) throw malformed('attestation input is empty');
  if (looksLikeRawCose(text[0])) {
    if (text.length > MAX_DOCUMENT_BYTES) throw tooLarge(`attestation document is ${text.length} bytes; the limit is ${MAX_DOCUMENT_BYTES}`);
    return text;
  }
  if (text.length > MAX_TEXT_INPUT_BYTES) throw tooLarge(`attestation text is ${text.length} bytes; the limit is ${MAX_TEXT_INPUT_BYTES}`);
  let start = 0;
  if (text[0] === 0xef && text[1] === 0xbb && text[2] === 0xbf) start = 3; // UTF-8 BOM
  const compact = Buffer.from(text.subarray(start)).toString('latin1').replace(/[\t\n\v\f\r ]+/g, '');

  let bytes: Uint8Array;
  const hex = compact.startsWith('0x') || compact.startsWith('0X') ? compact.slice(2) : compact;
  if (hex.length > 0 && hex.length % 2 === 0 && /^[0-9a-fA-F]+$/.test(hex)) {
    bytes = new Uint8Array(Buffer.from(hex, 'hex'));
  } else if ((/^[A-Za-z0-9+/]+={0,2}$/.test(compact) || /^[A-Za-z0-9_-]+={0,2}$/.test(compact)) && validBase64Length(compact)) {
    bytes = new Uint8Array(Buffer.from(compact, 'base64'));
  } else {
    throw malformed('attestation input is neither raw CBOR, hex nor base64');
  }
  if (!looksLikeRawCose(bytes[0])) throw malformed('decoded attestation input does not start with a COSE_Sign1 array (0x84) or tag 18 (0xd2)');
  if (bytes.length > MAX_DOCUMENT_BYTES) throw tooLarge(`attestation document is ${bytes.length} bytes; the limit is ${MAX_DOCUMENT_BYTES}`);
  return bytes;
}

function validBase64Length(s: string): boolean {
  const padded = s.endsWith('=');
  return padded ? s.length % 4 === 0 : s.length % 4 !== 1;
}

/** JSON view for logs and CLIs: byte fields as lowercase hex, absent optional fields as null. */
export function attestationToJson(doc: AttestationDocument): AttestationJson {
  const pcrs: Record<string, string> = {};
  for (const index of [...doc.pcrs.keys()].sort((a, b) => a - b)) pcrs[String(index)] = toHex(doc.pcrs.get(index) as Uint8Array);
  return {
    module_id: doc.moduleId,
    timestamp: doc.timestamp.toISOString(),
    digest: doc.digest,
    pcrs,
    public_key: doc.publicKey === undefined ? null : toHex(doc.publicKey),
    user_data: doc.userData === undefined ? null : toHex(doc.userData),
    nonce: doc.nonce === undefined ? null : toHex(doc.nonce),
  };
}
