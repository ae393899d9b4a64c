/**
 * The caller's policy: options resolved once (root pin, PCRs, time, freshness) and the checks that apply it
 * to a decoded document (debug mode, expected PCRs, maximum age).
 */
import { AWS_NITRO_ROOT_G1_DER_SHA256, AWS_NITRO_ROOT_G1_PEM } from './aws-root.ts';
import { bytesEqual, isAllZero, sha256Hex, toHex } from './bytes.ts';
import { AttestationError, invalidOptions, malformed } from './errors.ts';
import { MAX_PCRS, PCR_BYTES } from './limits.ts';
import type { AttestationDocument, VerifyAttestationOptions } from './types.ts';

export interface ResolvedOptions {
  at: Date | undefined;
  maxAgeMs: number | undefined;
  rootDer: Uint8Array;
  expectedPcrs: Map<number, Uint8Array> | undefined;
  allowDebug: boolean;
}

function pemToDer(pem: string): Uint8Array {
  const blocks = [...pem.matchAll(/-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----/g)];
  if (blocks.length !== 1 || blocks[0] === undefined) throw invalidOptions(`rootCertPem must contain exactly one CERTIFICATE block, found ${blocks.length}`);
  const body = (blocks[0][1] ?? '').replace(/\s+/g, '');
  if (body.length === 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length % 4 !== 0) throw invalidOptions('rootCertPem is not valid base64');
  return new Uint8Array(Buffer.from(body, 'base64'));
}

export function resolveOptions(options: VerifyAttestationOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw invalidOptions('options must be an object');
  const { at, maxAgeMs, expectedPcrs, allowDebug, rootCertDerSha256, rootCertPem } = options;
  if (at !== undefined && (!(at instanceof Date) || Number.isNaN(at.getTime()))) throw invalidOptions('at must be a valid Date');
  if (maxAgeMs !== undefined) {
    if (typeof maxAgeMs !== 'number' || !Number.isSafeInteger(maxAgeMs) || maxAgeMs < 0) throw invalidOptions('maxAgeMs must be a non-negative integer number of milliseconds');
    if (at === undefined) throw invalidOptions('maxAgeMs needs at (the time the age is measured at; against its own timestamp every document is fresh)');
  }
  if (allowDebug !== undefined && typeof allowDebug !== 'boolean') throw invalidOptions('allowDebug must be a boolean');

  let pinned = AWS_NITRO_ROOT_G1_DER_SHA256;
  if (rootCertDerSha256 !== undefined) {
    const normalized = typeof rootCertDerSha256 === 'string' ? rootCertDerSha256.replace(/:/g, '').toLowerCase() : '';
    if (!/^[0-9a-f]{64}$/.test(normalized)) throw invalidOptions('rootCertDerSha256 must be 64 hex characters (SHA-256 of the root DER)');
    pinned = normalized;
  }
  if (rootCertPem !== undefined && typeof rootCertPem !== 'string') throw invalidOptions('rootCertPem must be a string');
  const rootDer = pemToDer(rootCertPem ?? AWS_NITRO_ROOT_G1_PEM);
  const actual = sha256Hex(rootDer);
  if (actual !== pinned) {
    throw new AttestationError(
      'ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT',
      `root certificate DER SHA-256 is ${actual}, but the pinned fingerprint is ${pinned}`,
    );
  }

  let expected: Map<number, Uint8Array> | undefined;
  if (expectedPcrs !== undefined) {
    if (typeof expectedPcrs !== 'object' || expectedPcrs === null) throw invalidOptions('expectedPcrs must be an object');
    const entries = Object.entries(expectedPcrs as Record<string, unknown>);
    if (entries.length === 0) throw invalidOptions('expectedPcrs is empty: list the PCRs to pin, or omit the option');
    expected = new Map();
    for (const [key, value] of entries) {
      const index = /^(0|[1-9][0-9]?)$/.test(key) ? Number(key) : NaN;
      if (!(index >= 0 && index < MAX_PCRS)) throw invalidOptions(`expectedPcrs key "${key}" is not a PCR index 0..${MAX_PCRS - 1}`);
      if (!(value instanceof Uint8Array) || value.length !== PCR_BYTES) {
        throw invalidOptions(`expectedPcrs[${index}] must be a ${PCR_BYTES}-byte Uint8Array`);
      }
      expected.set(index, value);
    }
  }
  return { at, maxAgeMs, rootDer, expectedPcrs: expected, allowDebug: allowDebug === true };
}

export function checkDebugMode(document: AttestationDocument, allowDebug: boolean): void {
  const zero: number[] = [];
  for (const index of [0, 1, 2]) {
    const value = document.pcrs.get(index);
    if (value === undefined) throw malformed(`PCR${index} is missing (PCRs 0..15 are locked at boot and always present)`);
    if (isAllZero(value)) zero.push(index);
  }
  if (zero.length > 0 && !allowDebug) {
    throw new AttestationError(
      'ORACLE_ERR_ATTESTATION_DEBUG_MODE',
      `enclave ran in debug mode (${zero.map((i) => `PCR${i}`).join(', ')} all zero); its memory is observable, so the document is not trusted`,
    );
  }
}

export function checkPcrs(document: AttestationDocument, expected: Map<number, Uint8Array>): void {
  for (const [index, want] of expected) {
    const got = document.pcrs.get(index);
    if (got === undefined) throw new AttestationError('ORACLE_ERR_ATTESTATION_PCR_MISMATCH', `PCR${index} is not in the document (expected ${toHex(want)})`);
    if (!bytesEqual(got, want)) {
      throw new AttestationError('ORACLE_ERR_ATTESTATION_PCR_MISMATCH', `PCR${index} is ${toHex(got)}, expected ${toHex(want)}`);
    }
  }
}

/** The document's own time is no later than `at` and no more than `maxAgeMs` before it. */
export function checkFreshness(document: AttestationDocument, at: Date, maxAgeMs: number): void {
  const ageMs = at.getTime() - document.timestamp.getTime();
  if (ageMs < 0) {
    throw new AttestationError(
      'ORACLE_ERR_ATTESTATION_NOT_YET_VALID',
      `document timestamp ${document.timestamp.toISOString()} is after the verification time ${at.toISOString()}`,
    );
  }
  if (ageMs > maxAgeMs) {
    throw new AttestationError(
      'ORACLE_ERR_ATTESTATION_STALE',
      `document is ${formatDuration(ageMs)} old at ${at.toISOString()} (timestamp ${document.timestamp.toISOString()}); the maximum age is ${formatDuration(maxAgeMs)}`,
    );
  }
}

/** `1d 2h 3m 4.5s` (zero parts left out), for messages. */
export function formatDuration(ms: number): string {
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest > 0 || parts.length === 0) parts.push(`${rest / 1000}s`);
  return parts.join(' ');
}
