/**
 * DSSE envelopes (Dead Simple Signing Envelope, github.com/secure-systems-lab/dsse, `envelope.md` and
 * `protocol.md`): the signature covers PAE(payloadType, payload), never a re-serialised payload, so a verifier
 * checks the exact bytes it then parses. Signed with the oracle's ed25519 key (RFC 8032, Node's native code as
 * signature.ts). A PAE starts with `DSSEv1 `, a record signing message with `fetch-oracle/record/v1\n`: one key
 * can sign both and neither signature can be passed off as the other.
 */
import { sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { BadSignatureError, InvalidProvenanceError } from '../errors.ts';
import { assertTrustedKey, fromHex, PUBLIC_KEY_BYTES, publicKeyObject, SIGNATURE_BYTES, toHex } from './signature.ts';

/** The payload type of an in-toto Statement (in-toto attestation spec, `envelope.md`). */
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

export interface DsseSignature {
  /** Unauthenticated hint; here the signer's ed25519 public key in hex (what `--trust` takes). */
  readonly keyid: string;
  /** Base64 (standard alphabet, padded) of the 64-byte ed25519 signature over the PAE. */
  readonly sig: string;
}

/** The JSON envelope (DSSE `envelope.md`); `payload` is base64 of the exact signed bytes. */
export interface DsseEnvelope {
  readonly payload: string;
  readonly payloadType: string;
  readonly signatures: readonly DsseSignature[];
}

const encoder = new TextEncoder();

/**
 * Pre-Authentication Encoding (DSSE `protocol.md`):
 * `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, LEN the byte length as ASCII decimal without leading zeros.
 */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = encoder.encode(payloadType);
  const head = encoder.encode(`DSSEv1 ${type.byteLength} `);
  const mid = encoder.encode(` ${payload.byteLength} `);
  const out = new Uint8Array(head.byteLength + type.byteLength + mid.byteLength + payload.byteLength);
  out.set(head, 0);
  out.set(type, head.byteLength);
  out.set(mid, head.byteLength + type.byteLength);
  out.set(payload, head.byteLength + type.byteLength + mid.byteLength);
  return out;
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');

/** Signs `payload` as a one-signature envelope with an ed25519 private key whose public half is `publicKey`. */
export function signEnvelope(payloadType: string, payload: Uint8Array, privateKey: KeyObject, publicKey: Uint8Array): DsseEnvelope {
  const sig = new Uint8Array(sign(null, pae(payloadType, payload), privateKey));
  return { payload: b64(payload), payloadType, signatures: [{ keyid: toHex(publicKey), sig: b64(sig) }] };
}

/** Strict base64 (standard or URL-safe alphabet, as DSSE readers accept both); throws on anything else. */
function decodeBase64(text: string, what: string): Uint8Array {
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text)) throw new InvalidProvenanceError(`${what} is not base64`);
  return new Uint8Array(Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64'));
}

/** Parses one envelope (one line of a `.intoto.jsonl` file); throws InvalidProvenanceError naming the defect. */
export function parseEnvelope(text: string): DsseEnvelope {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new InvalidProvenanceError(`DSSE envelope is not JSON: ${(cause as Error).message}`, { cause });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidProvenanceError('DSSE envelope is not a JSON object');
  const v = value as Record<string, unknown>;
  if (typeof v['payload'] !== 'string') throw new InvalidProvenanceError('DSSE envelope has no "payload" string');
  if (typeof v['payloadType'] !== 'string') throw new InvalidProvenanceError('DSSE envelope has no "payloadType" string');
  const sigs = v['signatures'];
  if (!Array.isArray(sigs) || sigs.length === 0) throw new InvalidProvenanceError('DSSE envelope has no "signatures"');
  const signatures = sigs.map((s: unknown, i): DsseSignature => {
    const o = (typeof s === 'object' && s !== null ? s : {}) as Record<string, unknown>;
    if (typeof o['sig'] !== 'string') throw new InvalidProvenanceError(`DSSE signature ${i} has no "sig" string`);
    const keyid = o['keyid'] === undefined ? '' : o['keyid'];
    if (typeof keyid !== 'string') throw new InvalidProvenanceError(`DSSE signature ${i} has a "keyid" that is not a string`);
    return { keyid, sig: o['sig'] };
  });
  return { payload: v['payload'], payloadType: v['payloadType'], signatures };
}

export interface VerifiedEnvelope {
  /** The exact bytes that were signed. */
  readonly payload: Uint8Array;
  /** The trusted key whose signature verified. */
  readonly publicKey: Uint8Array;
}

/**
 * Accepts an envelope only if its payload type is `payloadType` and one of its signatures is a trusted key's
 * ed25519 signature over the PAE. The keyid is a hint (DSSE): every signature is tried against every trusted key.
 * Throws InvalidProvenanceError (payload type), UntrustedKeyError (validly signed, by the key its keyid names,
 * which is not trusted), BadSignatureError (no signature verifies).
 */
export function verifyEnvelope(envelope: DsseEnvelope, trusted: readonly Uint8Array[], payloadType: string = IN_TOTO_PAYLOAD_TYPE): VerifiedEnvelope {
  if (envelope.payloadType !== payloadType) {
    throw new InvalidProvenanceError(`DSSE payload type is ${JSON.stringify(envelope.payloadType)} (expected ${JSON.stringify(payloadType)})`);
  }
  if (trusted.length === 0) throw new BadSignatureError('No trusted key to verify the DSSE envelope with (pass --trust KEY)');
  const payload = decodeBase64(envelope.payload, 'DSSE payload');
  const message = pae(envelope.payloadType, payload);
  for (const s of envelope.signatures) {
    const sig = decodeBase64(s.sig, 'DSSE signature');
    if (sig.byteLength !== SIGNATURE_BYTES) continue;
    for (const key of trusted) {
      if (key.byteLength !== PUBLIC_KEY_BYTES) continue;
      let ok = false;
      try {
        ok = verify(null, message, publicKeyObject(key), sig);
      } catch {
        ok = false; // a key that is not a valid curve point
      }
      if (ok) return { payload, publicKey: key };
    }
  }
  // Nothing verified: say whether the envelope is validly signed by a key that is not trusted (its keyid
  // names it) or simply not validly signed.
  for (const s of envelope.signatures) {
    if (!/^[0-9a-f]{64}$/.test(s.keyid)) continue;
    const key = fromHex(s.keyid);
    let ok = false;
    try {
      ok = verify(null, message, publicKeyObject(key), decodeBase64(s.sig, 'DSSE signature'));
    } catch {
      ok = false;
    }
    if (ok) assertTrustedKey(key, trusted, 'DSSE envelope');
  }
  const ids = envelope.signatures.map((s) => s.keyid || '(no keyid)').join(', ');
  throw new BadSignatureError(`No signature of the DSSE envelope (keyids: ${ids}) verifies with a trusted key (trusted: ${trusted.map(toHex).join(', ')})`);
}
