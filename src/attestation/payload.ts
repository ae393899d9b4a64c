/** The attestation payload map (docs/nitro.md §1.2): nine fixed keys, each type- and size-checked. */
import { describe, decodeCbor } from './cbor.ts';
import { malformed, tooLarge } from './errors.ts';
import { MAX_CERTIFICATE_BYTES, MAX_OPTIONAL_FIELD_BYTES, MAX_PCRS, PCR_BYTES } from './limits.ts';
import type { AttestationDocument } from './types.ts';

const PAYLOAD_KEYS = ['module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle', 'public_key', 'user_data', 'nonce'] as const;
type PayloadKey = (typeof PAYLOAD_KEYS)[number];

export function decodePayload(payloadBytes: Uint8Array): AttestationDocument {
  const map = decodeCbor(payloadBytes, 'attestation payload');
  if (!(map instanceof Map)) throw malformed(`attestation payload must be a map, got ${describe(map)}`);

  const known = new Set<string>(PAYLOAD_KEYS);
  for (const key of map.keys()) {
    if (typeof key !== 'string') throw malformed(`attestation payload has a non-text key (${describe(key)})`);
    // Policy: unknown keys are rejected (fail closed). The payload format is fixed (nine keys since 2020); a
    // new key would be a format change whose meaning must be reviewed before documents carrying it are trusted.
    if (!known.has(key)) throw malformed(`attestation payload has an unexpected field "${key.slice(0, 64)}"`);
  }
  const get = (key: PayloadKey): unknown => map.get(key);

  const moduleId = get('module_id');
  if (typeof moduleId !== 'string') throw malformed(`module_id must be a text string, got ${describe(moduleId)}`);
  if (moduleId.length === 0) throw malformed('module_id is empty');

  const digest = get('digest');
  if (typeof digest !== 'string') throw malformed(`digest must be a text string, got ${describe(digest)}`);
  if (digest !== 'SHA384') throw malformed(`digest must be "SHA384", got "${digest.slice(0, 32)}"`);

  const timestamp = get('timestamp');
  if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp <= 0) {
    throw malformed(`timestamp must be a positive integer number of milliseconds, got ${typeof timestamp === 'number' || typeof timestamp === 'bigint' ? String(timestamp) : describe(timestamp)}`);
  }
  const time = new Date(timestamp);
  if (Number.isNaN(time.getTime())) throw malformed(`timestamp ${timestamp} is out of the representable date range`);

  const pcrsValue = get('pcrs');
  if (!(pcrsValue instanceof Map)) throw malformed(`pcrs must be a map, got ${describe(pcrsValue)}`);
  if (pcrsValue.size === 0) throw malformed('pcrs is empty');
  if (pcrsValue.size > MAX_PCRS) throw tooLarge(`pcrs has ${pcrsValue.size} entries; the limit is ${MAX_PCRS}`);
  const pcrs = new Map<number, Uint8Array>();
  for (const [index, value] of pcrsValue as Map<unknown, unknown>) {
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= MAX_PCRS) {
      throw malformed(`PCR index must be an integer 0..${MAX_PCRS - 1}, got ${typeof index === 'number' ? String(index) : describe(index)}`);
    }
    if (!(value instanceof Uint8Array)) throw malformed(`PCR${index} must be a byte string, got ${describe(value)}`);
    if (value.length !== PCR_BYTES) throw malformed(`PCR${index} must be ${PCR_BYTES} bytes (SHA-384), got ${value.length}`);
    pcrs.set(index, value.slice());
  }

  const certificate = certificateBytes(get('certificate'), 'certificate');

  const cabundleValue = get('cabundle');
  if (!Array.isArray(cabundleValue)) throw malformed(`cabundle must be an array, got ${describe(cabundleValue)}`);
  if (cabundleValue.length === 0) throw malformed('cabundle is empty');
  const cabundle = cabundleValue.map((entry: unknown, i) => certificateBytes(entry, `cabundle[${i}]`));

  const document: AttestationDocument = { moduleId, timestamp: time, digest, pcrs, certificate, cabundle };
  const publicKey = optionalBytes(get('public_key'), 'public_key', 1);
  const userData = optionalBytes(get('user_data'), 'user_data', 0);
  const nonce = optionalBytes(get('nonce'), 'nonce', 0);
  if (publicKey !== undefined) document.publicKey = publicKey;
  if (userData !== undefined) document.userData = userData;
  if (nonce !== undefined) document.nonce = nonce;
  return document;
}

function certificateBytes(value: unknown, name: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw malformed(`${name} must be a byte string (DER), got ${describe(value)}`);
  if (value.length === 0) throw malformed(`${name} is empty`);
  if (value.length > MAX_CERTIFICATE_BYTES) throw tooLarge(`${name} is ${value.length} bytes; the limit is ${MAX_CERTIFICATE_BYTES}`);
  return value.slice();
}

/** Optional fields: absent and CBOR null both mean "not set" (real documents always carry null). */
function optionalBytes(value: unknown, name: string, minLength: number): Uint8Array | undefined {
  if (value === undefined || value === null) return undefined;
  if (!(value instanceof Uint8Array)) throw malformed(`${name} must be a byte string or null, got ${describe(value)}`);
  if (value.length < minLength) throw malformed(`${name} must not be empty (use null)`);
  if (value.length > MAX_OPTIONAL_FIELD_BYTES) throw tooLarge(`${name} is ${value.length} bytes; the limit is ${MAX_OPTIONAL_FIELD_BYTES}`);
  return value.slice();
}
