/**
 * AWS Nitro Enclaves attestation documents: decoding and offline verification (no fs, no network).
 *
 * Format and checklist: docs/nitro.md (shared). In short, a document is a COSE_Sign1
 * `[protected, unprotected, payload, signature]` (untagged, or CBOR tag 18), signed with ES384 by a 3-hour
 * leaf certificate that chains, through `cabundle` (root-first), to the pinned AWS Nitro root G1.
 * CBOR is cborg's and certificates are @peculiar/x509's; only the four-item COSE_Sign1 envelope is taken
 * apart here, because docs/nitro.md's checklist bounds and types every field and a COSE library would add a
 * dependency for one fixed algorithm (ES384) without doing those checks.
 */
import 'reflect-metadata';
import { X509Certificate as NodeX509Certificate, createHash, verify as cryptoVerify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { decode as cborDecode, encode as cborEncode } from 'cborg';
import { AWS_NITRO_ROOT_G1_DER_SHA256, AWS_NITRO_ROOT_G1_PEM } from './aws-root.ts';
import { AttestationError } from './errors.ts';

// ---------------------------------------------------------------------------------------------------------
// Limits (docs/nitro.md §1.1, §1.2, §2 step 1)

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

const COSE_ALG_ES384 = -35;
const COSE_HEADER_ALG = 1;
const COSE_HEADER_CRIT = 2;
const CBOR_TAG_COSE_SIGN1 = 0xd2; // tag 18, one-byte form
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';

const PAYLOAD_KEYS = ['module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle', 'public_key', 'user_data', 'nonce'] as const;
type PayloadKey = (typeof PAYLOAD_KEYS)[number];

// ---------------------------------------------------------------------------------------------------------
// Public types

export interface VerifyAttestationOptions {
  /** Time at which every certificate must be valid. Default: the document's own signed `timestamp`. */
  at?: Date;
  /**
   * PCR index → expected 48-byte value. Every listed PCR must be present and equal. Absent: no PCR pinning
   * (the caller must then check `pcrs` itself). An empty object is rejected (fails closed).
   */
  expectedPcrs?: Record<number, Uint8Array>;
  /** Accept debug-mode documents (PCR0/1/2 all zero). Tests only. */
  allowDebug?: boolean;
  /** Hex SHA-256 of the trusted root's DER. Default: the AWS Nitro root G1 fingerprint. */
  rootCertDerSha256?: string;
  /** Trusted root certificate (one PEM block). Default: the bundled AWS Nitro root G1. */
  rootCertPem?: string;
}

export interface AttestationDocument {
  moduleId: string;
  timestamp: Date;
  digest: string;
  pcrs: Map<number, Uint8Array>;
  certificate: Uint8Array;
  cabundle: Uint8Array[];
  publicKey?: Uint8Array;
  userData?: Uint8Array;
  nonce?: Uint8Array;
}

export interface AttestationJson {
  module_id: string;
  /** RFC 3339, UTC, millisecond precision. */
  timestamp: string;
  digest: string;
  pcrs: Record<string, string>;
  public_key: string | null;
  user_data: string | null;
  nonce: string | null;
}

// ---------------------------------------------------------------------------------------------------------
// Decoding

interface CoseSign1 {
  /** Original bytes of the protected header bstr content (signed as-is). */
  protectedBytes: Uint8Array;
  /** Original bytes of the payload bstr content (signed as-is). */
  payloadBytes: Uint8Array;
  signature: Uint8Array;
  document: AttestationDocument;
}

function malformed(message: string, cause?: unknown): AttestationError {
  return new AttestationError('ORACLE_ERR_ATTESTATION_MALFORMED', message, cause === undefined ? undefined : { cause });
}

function tooLarge(message: string): AttestationError {
  return new AttestationError('ORACLE_ERR_ATTESTATION_TOO_LARGE', message);
}

function decodeCbor(bytes: Uint8Array, what: string): unknown {
  try {
    // Defaults kept on purpose: indefinite-length items allowed (2025+ payload maps), no tags supported.
    return cborDecode(bytes, { useMaps: true, rejectDuplicateMapKeys: true, allowUndefined: false });
  } catch (cause) {
    throw malformed(`${what} is not valid CBOR: ${(cause as Error).message}`, cause);
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value instanceof Uint8Array) return `byte string (${value.length} bytes)`;
  if (value instanceof Map) return 'map';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function decodeCoseSign1(bytes: Uint8Array): CoseSign1 {
  if (!(bytes instanceof Uint8Array)) throw malformed('attestation document must be a Uint8Array');
  if (bytes.length === 0) throw malformed('attestation document is empty');
  if (bytes.length > MAX_DOCUMENT_BYTES) throw tooLarge(`attestation document is ${bytes.length} bytes; the limit is ${MAX_DOCUMENT_BYTES}`);

  // COSE_Sign1 may be tagged (18) or untagged; real documents are untagged. No other tag is accepted.
  const body = bytes[0] === CBOR_TAG_COSE_SIGN1 ? bytes.subarray(1) : bytes;
  const top = decodeCbor(body, 'COSE_Sign1 envelope');
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
      `COSE algorithm must be ES384 (-35), got ${alg === undefined ? 'none' : String(alg)}`,
    );
  }
}

function decodePayload(payloadBytes: Uint8Array): AttestationDocument {
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

/**
 * Decodes an attestation document and checks its structure (COSE_Sign1 layout, ES384 protected header,
 * payload field types and sizes). Does NOT verify any signature: use verifyAttestation for that.
 */
export function decodeAttestation(bytes: Uint8Array): AttestationDocument {
  try {
    return decodeCoseSign1(bytes).document;
  } catch (error) {
    throw asAttestationError(error);
  }
}

/** Safety net: every failure surfaces as an AttestationError (the original error is kept as `cause`). */
function asAttestationError(error: unknown): AttestationError {
  if (error instanceof AttestationError) return error;
  return malformed(`attestation document could not be processed: ${(error as Error)?.message ?? String(error)}`, error);
}

// ---------------------------------------------------------------------------------------------------------
// Verification

interface ChainCert {
  label: string;
  der: Uint8Array;
  node: NodeX509Certificate;
  parsed: x509.X509Certificate;
}

interface ResolvedOptions {
  at: Date | undefined;
  rootDer: Uint8Array;
  expectedPcrs: Map<number, Uint8Array> | undefined;
  allowDebug: boolean;
}

function invalidOptions(message: string): AttestationError {
  return new AttestationError('ORACLE_ERR_ATTESTATION_INVALID_OPTIONS', message);
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function pemToDer(pem: string): Uint8Array {
  const blocks = [...pem.matchAll(/-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----/g)];
  if (blocks.length !== 1 || blocks[0] === undefined) throw invalidOptions(`rootCertPem must contain exactly one CERTIFICATE block, found ${blocks.length}`);
  const body = (blocks[0][1] ?? '').replace(/\s+/g, '');
  if (body.length === 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length % 4 !== 0) throw invalidOptions('rootCertPem is not valid base64');
  return new Uint8Array(Buffer.from(body, 'base64'));
}

function resolveOptions(options: VerifyAttestationOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw invalidOptions('options must be an object');
  const { at, expectedPcrs, allowDebug, rootCertDerSha256, rootCertPem } = options;
  if (at !== undefined && (!(at instanceof Date) || Number.isNaN(at.getTime()))) throw invalidOptions('at must be a valid Date');
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
  return { at, rootDer, expectedPcrs: expected, allowDebug: allowDebug === true };
}

function chainError(message: string, cause?: unknown): AttestationError {
  return new AttestationError('ORACLE_ERR_ATTESTATION_INVALID_CHAIN', message, cause === undefined ? undefined : { cause });
}

function parseCertificate(der: Uint8Array, label: string): ChainCert {
  try {
    const node = new NodeX509Certificate(der);
    const parsed = new x509.X509Certificate(der);
    if (!bytesEqual(new Uint8Array(parsed.rawData), der)) throw new Error('trailing or non-DER bytes');
    void node.publicKey; // decodes the key now (throws on e.g. a point not on the curve)
    return { label, der, node, parsed };
  } catch (cause) {
    throw malformed(`${label} is not a DER X.509 certificate: ${(cause as Error).message}`, cause);
  }
}

function checkAlgorithms(cert: ChainCert): void {
  const details = cert.node.publicKey.asymmetricKeyDetails;
  if (cert.node.publicKey.asymmetricKeyType !== 'ec' || details?.namedCurve !== 'secp384r1') {
    throw chainError(`${cert.label} key must be ECDSA P-384, got ${cert.node.publicKey.asymmetricKeyType ?? 'unknown'} ${details?.namedCurve ?? ''}`.trim());
  }
  // Certificate.signatureAlgorithm (node:crypto has no accessor for it); must be ecdsa-with-SHA384.
  let sigAlg: string;
  try {
    const alg = cert.parsed.signatureAlgorithm as unknown as { name?: unknown; hash?: unknown };
    const hash = alg.hash;
    const hashName = typeof hash === 'string' ? hash : (hash as { name?: unknown } | undefined)?.name;
    sigAlg = `${typeof alg.name === 'string' ? alg.name : '?'}/${typeof hashName === 'string' ? hashName : '?'}`;
  } catch {
    sigAlg = 'unknown';
  }
  if (sigAlg.toUpperCase() !== 'ECDSA/SHA-384') throw chainError(`${cert.label} must be signed with ecdsa-with-SHA384, got ${sigAlg}`);
  for (const ext of cert.parsed.extensions) {
    if (ext.critical && ext.type !== OID_BASIC_CONSTRAINTS && ext.type !== OID_KEY_USAGE) {
      throw chainError(`${cert.label} has an unsupported critical extension ${ext.type}`);
    }
  }
}

function basicConstraints(cert: ChainCert): x509.BasicConstraintsExtension | null {
  return cert.parsed.getExtension(x509.BasicConstraintsExtension);
}

function keyUsages(cert: ChainCert): x509.KeyUsagesExtension | null {
  return cert.parsed.getExtension(x509.KeyUsagesExtension);
}

function checkCa(cert: ChainCert, intermediatesBelow: number): void {
  const bc = basicConstraints(cert);
  if (bc === null || !bc.ca) throw chainError(`${cert.label} is used as a CA but is not a CA (basicConstraints CA=true missing)`);
  if (!bc.critical) throw chainError(`${cert.label} basicConstraints must be critical`);
  if (bc.pathLength !== undefined && intermediatesBelow > bc.pathLength) {
    throw chainError(`${cert.label} allows ${bc.pathLength} intermediate CA(s) below it (pathLen), but the chain has ${intermediatesBelow}`);
  }
  const ku = keyUsages(cert);
  if (ku === null || (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) throw chainError(`${cert.label} keyUsage lacks keyCertSign`);
}

function checkLeaf(cert: ChainCert): void {
  const bc = basicConstraints(cert);
  if (bc !== null && bc.ca) throw chainError(`${cert.label} (leaf) must not be a CA`);
  const ku = keyUsages(cert);
  if (ku === null || (ku.usages & x509.KeyUsageFlags.digitalSignature) === 0) throw chainError(`${cert.label} (leaf) keyUsage lacks digitalSignature`);
}

/** Certificate signature check; OpenSSL errors (e.g. an unparsable signature value) count as "does not verify". */
function signedBy(child: ChainCert, parent: ChainCert): boolean {
  try {
    return child.node.verify(parent.node.publicKey);
  } catch {
    return false;
  }
}

function checkValidity(cert: ChainCert, at: Date): void {
  const { notBefore, notAfter } = cert.parsed;
  if (at.getTime() < notBefore.getTime()) {
    throw new AttestationError(
      'ORACLE_ERR_ATTESTATION_NOT_YET_VALID',
      `${cert.label} is not yet valid at ${at.toISOString()} (notBefore ${notBefore.toISOString()})`,
    );
  }
  if (at.getTime() > notAfter.getTime()) {
    throw new AttestationError(
      'ORACLE_ERR_ATTESTATION_EXPIRED',
      `${cert.label} has expired at ${at.toISOString()} (notAfter ${notAfter.toISOString()})`,
    );
  }
}

/**
 * Validates leaf ← cabundle[n-1] ← … ← cabundle[1] ← cabundle[0] = pinned root, as of `at`.
 * Returns the leaf public key.
 */
function verifyChain(document: AttestationDocument, rootDer: Uint8Array, at: Date): KeyObject {
  const { cabundle } = document;
  const first = cabundle[0];
  if (first === undefined || !bytesEqual(first, rootDer)) {
    const rootIndex = cabundle.findIndex((c) => bytesEqual(c, rootDer));
    if (rootIndex > 0) {
      throw new AttestationError(
        'ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT',
        `cabundle is out of order: the pinned root is cabundle[${rootIndex}], but cabundle must be root-first (cabundle[0] = root)`,
      );
    }
    throw new AttestationError(
      'ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT',
      `cabundle[0] is not the pinned root certificate (DER SHA-256 ${first === undefined ? 'none' : sha256Hex(first)}, expected ${sha256Hex(rootDer)})`,
    );
  }

  // Leaf-first: [leaf, cabundle[n-1], …, cabundle[1], root]. The root is the pinned copy (byte-equal anyway).
  const chain: ChainCert[] = [parseCertificate(document.certificate, 'certificate (leaf)')];
  for (let i = cabundle.length - 1; i >= 1; i--) chain.push(parseCertificate(cabundle[i] as Uint8Array, `cabundle[${i}]`));
  chain.push(parseCertificate(rootDer, 'cabundle[0] (root)'));

  for (const cert of chain) checkAlgorithms(cert);

  const root = chain[chain.length - 1] as ChainCert;
  if (!signedBy(root, root)) throw chainError(`${root.label} is not self-signed`);
  for (let i = chain.length - 1; i >= 1; i--) {
    const parent = chain[i] as ChainCert;
    const child = chain[i - 1] as ChainCert;
    checkCa(parent, i - 1);
    if (!child.node.checkIssued(parent.node)) {
      throw chainError(`${child.label} was not issued by ${parent.label} (issuer "${child.node.issuer.replace(/\n/g, ', ')}" vs subject "${parent.node.subject.replace(/\n/g, ', ')}")`);
    }
    if (!signedBy(child, parent)) throw chainError(`${child.label} signature does not verify with the key of ${parent.label}`);
  }
  const leaf = chain[0] as ChainCert;
  checkLeaf(leaf);

  for (const cert of chain) checkValidity(cert, at);
  return leaf.node.publicKey;
}

function verifyCoseSignature(cose: CoseSign1, leafKey: KeyObject): void {
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

function isAllZero(bytes: Uint8Array): boolean {
  return bytes.every((b) => b === 0);
}

function checkDebugMode(document: AttestationDocument, allowDebug: boolean): void {
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

function checkPcrs(document: AttestationDocument, expected: Map<number, Uint8Array>): void {
  for (const [index, want] of expected) {
    const got = document.pcrs.get(index);
    if (got === undefined) throw new AttestationError('ORACLE_ERR_ATTESTATION_PCR_MISMATCH', `PCR${index} is not in the document (expected ${toHex(want)})`);
    if (!bytesEqual(got, want)) {
      throw new AttestationError('ORACLE_ERR_ATTESTATION_PCR_MISMATCH', `PCR${index} is ${toHex(got)}, expected ${toHex(want)}`);
    }
  }
}

/**
 * Fully verifies an attestation document: structure, root pin, certificate chain as of `at` (default: the
 * document's timestamp), COSE_Sign1 ES384 signature, debug mode and PCR policy. Throws AttestationError.
 */
export async function verifyAttestation(bytes: Uint8Array, options: VerifyAttestationOptions = {}): Promise<AttestationDocument> {
  try {
    return verifyAttestationSync(bytes, options);
  } catch (error) {
    throw asAttestationError(error);
  }
}

function verifyAttestationSync(bytes: Uint8Array, options: VerifyAttestationOptions): AttestationDocument {
  const resolved = resolveOptions(options);
  const cose = decodeCoseSign1(bytes);
  const { document } = cose;
  const leafKey = verifyChain(document, resolved.rootDer, resolved.at ?? document.timestamp);
  verifyCoseSignature(cose, leafKey);
  checkDebugMode(document, resolved.allowDebug);
  if (resolved.expectedPcrs !== undefined) checkPcrs(document, resolved.expectedPcrs);
  return document;
}

// ---------------------------------------------------------------------------------------------------------
// Input and output helpers

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
