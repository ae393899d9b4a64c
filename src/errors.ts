/**
 * One shallow error hierarchy. Callers branch on `code`, which is stable across versions and travels
 * as `{ code, message }` across process boundaries (admin API, guest device, enclave).
 */
export const ERROR_CODES = [
  'ORACLE_ERR_INVALID_CONFIG',
  'ORACLE_ERR_BAD_REQUEST',
  'ORACLE_ERR_UPSTREAM',
  'ORACLE_ERR_TRUNCATED_BODY',
  'ORACLE_ERR_REPLAY_MISS',
  'ORACLE_ERR_BLOCK_MISSING',
  'ORACLE_ERR_BLOCK_CORRUPT',
  'ORACLE_ERR_BAD_SIGNATURE',
  'ORACLE_ERR_UNTRUSTED_KEY',
  'ORACLE_ERR_INVALID_RECORD',
  'ORACLE_ERR_INVALID_NETLOCK',
  'ORACLE_ERR_STORE',
  'ORACLE_ERR_ABORTED',
  // A bug or an unexpected failure inside the oracle (answered as 500); an admin request without the right token.
  'ORACLE_ERR_INTERNAL',
  'ORACLE_ERR_UNAUTHORIZED',
  // A zip or tar archive that cannot be read (seed's Go module zips, image layers).
  'ORACLE_ERR_INVALID_ARCHIVE',
  // The dehashing device (guest side) or the Cartesi Machine emulator (host side) failed.
  'ORACLE_ERR_DEVICE',
  'ORACLE_ERR_MACHINE',
  // fetch-oracle seed: a body that does not match its lockfile's digest; a lockfile that cannot be read.
  'ORACLE_ERR_DIGEST_MISMATCH',
  'ORACLE_ERR_INVALID_LOCKFILE',
  // Enclave mode: the NSM (or its helper) failed; a record is not bound to an attested key (verify --attested).
  'ORACLE_ERR_NSM',
  'ORACLE_ERR_NOT_ATTESTED',
  // Nitro attestation verification (src/attestation/errors.ts says when each applies).
  'ORACLE_ERR_ATTESTATION_MALFORMED',
  'ORACLE_ERR_ATTESTATION_TOO_LARGE',
  'ORACLE_ERR_ATTESTATION_UNSUPPORTED_ALGORITHM',
  'ORACLE_ERR_ATTESTATION_BAD_SIGNATURE',
  'ORACLE_ERR_ATTESTATION_INVALID_CHAIN',
  'ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT',
  'ORACLE_ERR_ATTESTATION_EXPIRED',
  'ORACLE_ERR_ATTESTATION_NOT_YET_VALID',
  'ORACLE_ERR_ATTESTATION_STALE',
  'ORACLE_ERR_ATTESTATION_DEBUG_MODE',
  'ORACLE_ERR_ATTESTATION_PCR_MISMATCH',
  'ORACLE_ERR_ATTESTATION_INVALID_OPTIONS',
  // The proxy front (issue 13): an origin that did not answer in time (504, nothing recorded); the proxy at its
  // connection cap (503); a target the proxy must never reach, its own proxy or admin port (403).
  'ORACLE_ERR_UPSTREAM_TIMEOUT',
  'ORACLE_ERR_OVERLOADED',
  'ORACLE_ERR_FORBIDDEN',
  // fetch-oracle machine image: a step of the root file system build failed (apt, dpkg-deb, mke2fs, a tool missing).
  'ORACLE_ERR_IMAGE_BUILD',
  // fetch-oracle provenance (issue 17): a DSSE envelope or in-toto statement that is malformed or does not match
  // its netlock; a subject whose digest is not the given file's.
  'ORACLE_ERR_INVALID_PROVENANCE',
  'ORACLE_ERR_SUBJECT_MISMATCH',
  // --ipfs: Kubo got no copy of a block it lacks from its peers (bitswap) within --ipfs-timeout (issue 17).
  'ORACLE_ERR_BLOCK_FETCH_TIMEOUT',
  // k-of-n witnesses (issue 17): fewer than K trusted keys signed an entry's record; the oracles that signed an
  // entry disagree (another record for the same request); a countersignature that is malformed or does not verify.
  'ORACLE_ERR_QUORUM_NOT_MET',
  'ORACLE_ERR_RECORDS_DISAGREE',
  'ORACLE_ERR_BAD_COUNTERSIGNATURE',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** The Nitro attestation verifier's codes (src/attestation/errors.ts lists them as ATTESTATION_ERROR_CODES). */
export type AttestationErrorCode = Extract<ErrorCode, `ORACLE_ERR_ATTESTATION_${string}`>;

function isAttestationCode(code: ErrorCode): code is AttestationErrorCode {
  return code.startsWith('ORACLE_ERR_ATTESTATION_');
}

/** Whether `code` is one of ERROR_CODES (a code read off the wire is a plain string). */
export function isErrorCode(code: string): code is ErrorCode {
  return (ERROR_CODES as readonly string[]).includes(code);
}

export class OracleError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'OracleError';
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export class InvalidConfigError extends OracleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ORACLE_ERR_INVALID_CONFIG', message, options);
    this.name = 'InvalidConfigError';
  }
}

export class BadRequestError extends OracleError {
  /** HTTP status the proxy answers with (400, 414, 431, …). */
  readonly status: number;

  constructor(message: string, status = 400) {
    super('ORACLE_ERR_BAD_REQUEST', message);
    this.name = 'BadRequestError';
    this.status = status;
  }
}

export class UpstreamError extends OracleError {
  /** The low-level reason (ECONNREFUSED, ENOTFOUND, a certificate error code…), for records and headers. */
  readonly reason: string;

  /** `code` only for UpstreamTimeoutError, which is an UpstreamError with a code of its own. */
  constructor(message: string, options?: { cause?: unknown; reason?: string }, code?: 'ORACLE_ERR_UPSTREAM_TIMEOUT') {
    super(code ?? 'ORACLE_ERR_UPSTREAM', message, options);
    this.name = 'UpstreamError';
    this.reason = options?.reason ?? 'UNKNOWN';
  }
}

/** The origin did not connect, answer or send its body within the upstream timeout; such an answer is never recorded. */
export class UpstreamTimeoutError extends UpstreamError {
  constructor(message: string, options?: { cause?: unknown; reason?: string }) {
    super(message, options, 'ORACLE_ERR_UPSTREAM_TIMEOUT');
    this.name = 'UpstreamTimeoutError';
  }
}

/** The proxy is at its connection cap (`--max-connections`): the connection is refused with 503. */
export class OverloadedError extends OracleError {
  constructor(message: string) {
    super('ORACLE_ERR_OVERLOADED', message);
    this.name = 'OverloadedError';
  }
}

/** A request the proxy refuses to forward: one aimed at its own proxy or admin port (a loop, or a way into the admin API). */
export class ForbiddenTargetError extends OracleError {
  constructor(message: string) {
    super('ORACLE_ERR_FORBIDDEN', message);
    this.name = 'ForbiddenTargetError';
  }
}

export class TruncatedBodyError extends OracleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ORACLE_ERR_TRUNCATED_BODY', message, options);
    this.name = 'TruncatedBodyError';
  }
}

export class ReplayMissError extends OracleError {
  constructor(message: string) {
    super('ORACLE_ERR_REPLAY_MISS', message);
    this.name = 'ReplayMissError';
  }
}

export class BlockMissingError extends OracleError {
  readonly cid: string;

  constructor(cid: string, message = `Block not found: ${cid}`) {
    super('ORACLE_ERR_BLOCK_MISSING', message);
    this.name = 'BlockMissingError';
    this.cid = cid;
  }
}

/**
 * Kubo (`--ipfs`) lacks a block and none of its peers sent it within the fetch timeout: the daemon answers,
 * the network does not (the peers that hold it are down, unpeered, or the block is nowhere).
 */
export class BlockFetchTimeoutError extends OracleError {
  readonly cid: string;

  constructor(cid: string, message = `No peer provided block ${cid} in time`) {
    super('ORACLE_ERR_BLOCK_FETCH_TIMEOUT', message);
    this.name = 'BlockFetchTimeoutError';
    this.cid = cid;
  }
}

export class BlockCorruptError extends OracleError {
  readonly cid: string;

  constructor(cid: string, message = `Block does not hash to its CID: ${cid}`) {
    super('ORACLE_ERR_BLOCK_CORRUPT', message);
    this.name = 'BlockCorruptError';
    this.cid = cid;
  }
}

export class BadSignatureError extends OracleError {
  constructor(message: string) {
    super('ORACLE_ERR_BAD_SIGNATURE', message);
    this.name = 'BadSignatureError';
  }
}

export class UntrustedKeyError extends OracleError {
  constructor(message: string) {
    super('ORACLE_ERR_UNTRUSTED_KEY', message);
    this.name = 'UntrustedKeyError';
  }
}

export class InvalidRecordError extends OracleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ORACLE_ERR_INVALID_RECORD', message, options);
    this.name = 'InvalidRecordError';
  }
}

export class InvalidNetlockError extends OracleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ORACLE_ERR_INVALID_NETLOCK', message, options);
    this.name = 'InvalidNetlockError';
  }
}

export class StoreError extends OracleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ORACLE_ERR_STORE', message, options);
    this.name = 'StoreError';
  }
}

export class AbortedError extends OracleError {
  constructor(message = 'The operation was aborted') {
    super('ORACLE_ERR_ABORTED', message);
    this.name = 'AbortedError';
  }
}

/** A bug or an unexpected failure inside the oracle; what reaches a client as 500. */
export class InternalError extends OracleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ORACLE_ERR_INTERNAL', message, options);
    this.name = 'InternalError';
  }
}

/** An admin API request without the bearer token it needs. */
export class UnauthorizedError extends OracleError {
  constructor(message: string) {
    super('ORACLE_ERR_UNAUTHORIZED', message);
    this.name = 'UnauthorizedError';
  }
}

/** A zip or tar archive that is malformed or truncated (not a digest question: its bytes cannot be read as an archive). */
export class InvalidArchiveError extends OracleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ORACLE_ERR_INVALID_ARCHIVE', message, options);
    this.name = 'InvalidArchiveError';
  }
}

/**
 * The dehashing device failed or was misused. Guest side: the cmio helper is missing, died or reported a
 * device failure. Host side: a GIO request that is not a block request (unknown domain, an id that is not
 * one sha2-256 CID): deterministic, so the host refuses it in band (code 0xFFFF) instead of aborting the run.
 */
export class DeviceError extends OracleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ORACLE_ERR_DEVICE', message, options);
    this.name = 'DeviceError';
  }
}

/** The Cartesi Machine emulator (cartesi-jsonrpc-machine) failed, refused a call, or stopped unexpectedly. */
export class MachineError extends OracleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ORACLE_ERR_MACHINE', message, options);
    this.name = 'MachineError';
  }
}

/**
 * `fetch-oracle machine image` could not build the root file system: a host tool is missing, or apt, dpkg-deb,
 * qemu or mke2fs failed; the message names the step and quotes the tool's last lines.
 */
export class ImageBuildError extends OracleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ORACLE_ERR_IMAGE_BUILD', message, options);
    this.name = 'ImageBuildError';
  }
}

export class NsmError extends OracleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ORACLE_ERR_NSM', message, options);
    this.name = 'NsmError';
  }
}

export class NotAttestedError extends OracleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ORACLE_ERR_NOT_ATTESTED', message, options);
    this.name = 'NotAttestedError';
  }
}

/** Fewer than the required number (`--quorum K`) of distinct trusted keys signed a netlock entry's record. */
export class QuorumNotMetError extends OracleError {
  constructor(message: string) {
    super('ORACLE_ERR_QUORUM_NOT_MET', message);
    this.name = 'QuorumNotMetError';
  }
}

/** The oracles that signed a netlock entry vouch for different records (one saw other bytes or another status). */
export class RecordsDisagreeError extends OracleError {
  constructor(message: string) {
    super('ORACLE_ERR_RECORDS_DISAGREE', message);
    this.name = 'RecordsDisagreeError';
  }
}

/** A countersignature block is malformed, or its signature does not verify for the witness key it names. */
export class BadCountersignatureError extends OracleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ORACLE_ERR_BAD_COUNTERSIGNATURE', message, options);
    this.name = 'BadCountersignatureError';
  }
}

/** A downloaded body does not match the digest its lockfile promises; nothing was recorded for it. */
export class DigestMismatchError extends OracleError {
  constructor(message: string) {
    super('ORACLE_ERR_DIGEST_MISMATCH', message);
    this.name = 'DigestMismatchError';
  }
}

/** A DSSE envelope or in-toto statement that is malformed, of the wrong payload type, or does not match its netlock. */
export class InvalidProvenanceError extends OracleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ORACLE_ERR_INVALID_PROVENANCE', message, options);
    this.name = 'InvalidProvenanceError';
  }
}

/** A provenance subject whose digest is not the given file's (or that names no such file). */
export class SubjectMismatchError extends OracleError {
  constructor(message: string) {
    super('ORACLE_ERR_SUBJECT_MISMATCH', message);
    this.name = 'SubjectMismatchError';
  }
}

/** A lockfile or URL list that cannot be parsed (or is of an unknown kind); the message names file and line. */
export class InvalidLockfileError extends OracleError {
  readonly file: string;
  readonly line: number;

  constructor(file: string, line: number, message: string, options?: { cause?: unknown }) {
    super('ORACLE_ERR_INVALID_LOCKFILE', `${file}${line > 0 ? `:${line}` : ''}: ${message}`, options);
    this.name = 'InvalidLockfileError';
    this.file = file;
    this.line = line;
  }
}

/**
 * A failed attestation check: an OracleError whose code says which check failed. Defined here (and
 * re-exported by src/attestation/errors.ts) so that errorFromCode can rebuild it without an import cycle.
 */
export class AttestationError extends OracleError {
  declare readonly code: AttestationErrorCode;

  constructor(code: AttestationErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'AttestationError';
  }
}

/** The first CID a message names (`Block not found: bafk…`), for the `cid` of a block error read back. */
function cidIn(message: string): string {
  return /\b(?:baf[a-z2-7]{50,}|Qm[1-9A-HJ-NP-Za-km-z]{44})\b/.exec(message)?.[0] ?? '';
}

/** `FILE[:LINE]: ` at the head of an InvalidLockfileError message, as its constructor writes it. */
function lockfileError(message: string): InvalidLockfileError {
  const m = /^(.+?):(\d+): /.exec(message);
  const err = new InvalidLockfileError(m?.[1] ?? '', m === null ? 0 : Number(m[2]), '');
  err.message = message; // verbatim: the constructor would prefix FILE:LINE again
  return err;
}

/** One rebuilder per code; the mapped type makes a new code without one a compile error. */
const FROM_CODE: { readonly [C in Exclude<ErrorCode, AttestationErrorCode>]: (message: string) => OracleError } = {
  ORACLE_ERR_INVALID_CONFIG: (m) => new InvalidConfigError(m),
  ORACLE_ERR_BAD_REQUEST: (m) => new BadRequestError(m),
  ORACLE_ERR_UPSTREAM: (m) => new UpstreamError(m),
  ORACLE_ERR_UPSTREAM_TIMEOUT: (m) => new UpstreamTimeoutError(m),
  ORACLE_ERR_OVERLOADED: (m) => new OverloadedError(m),
  ORACLE_ERR_FORBIDDEN: (m) => new ForbiddenTargetError(m),
  ORACLE_ERR_TRUNCATED_BODY: (m) => new TruncatedBodyError(m),
  ORACLE_ERR_REPLAY_MISS: (m) => new ReplayMissError(m),
  ORACLE_ERR_BLOCK_MISSING: (m) => new BlockMissingError(cidIn(m), m),
  ORACLE_ERR_BLOCK_CORRUPT: (m) => new BlockCorruptError(cidIn(m), m),
  ORACLE_ERR_BLOCK_FETCH_TIMEOUT: (m) => new BlockFetchTimeoutError(cidIn(m), m),
  ORACLE_ERR_BAD_SIGNATURE: (m) => new BadSignatureError(m),
  ORACLE_ERR_UNTRUSTED_KEY: (m) => new UntrustedKeyError(m),
  ORACLE_ERR_INVALID_RECORD: (m) => new InvalidRecordError(m),
  ORACLE_ERR_INVALID_NETLOCK: (m) => new InvalidNetlockError(m),
  ORACLE_ERR_STORE: (m) => new StoreError(m),
  ORACLE_ERR_ABORTED: (m) => new AbortedError(m),
  ORACLE_ERR_INTERNAL: (m) => new InternalError(m),
  ORACLE_ERR_UNAUTHORIZED: (m) => new UnauthorizedError(m),
  ORACLE_ERR_INVALID_ARCHIVE: (m) => new InvalidArchiveError(m),
  ORACLE_ERR_DEVICE: (m) => new DeviceError(m),
  ORACLE_ERR_MACHINE: (m) => new MachineError(m),
  ORACLE_ERR_IMAGE_BUILD: (m) => new ImageBuildError(m),
  ORACLE_ERR_DIGEST_MISMATCH: (m) => new DigestMismatchError(m),
  ORACLE_ERR_INVALID_LOCKFILE: lockfileError,
  ORACLE_ERR_NSM: (m) => new NsmError(m),
  ORACLE_ERR_NOT_ATTESTED: (m) => new NotAttestedError(m),
  ORACLE_ERR_INVALID_PROVENANCE: (m) => new InvalidProvenanceError(m),
  ORACLE_ERR_SUBJECT_MISMATCH: (m) => new SubjectMismatchError(m),
  ORACLE_ERR_QUORUM_NOT_MET: (m) => new QuorumNotMetError(m),
  ORACLE_ERR_RECORDS_DISAGREE: (m) => new RecordsDisagreeError(m),
  ORACLE_ERR_BAD_COUNTERSIGNATURE: (m) => new BadCountersignatureError(m),
};

/**
 * Rebuilds the error an `x-oracle-error` header, a `{code, message}` JSON body or a device reply carries:
 * the subclass for `code`, with `message` verbatim (fields only the message holds, such as a block's CID
 * or a lockfile's file:line, are read back from it). An unknown code is an InternalError naming it.
 */
export function errorFromCode(code: string, message: string): OracleError {
  if (!isErrorCode(code)) return new InternalError(`Unknown error code ${JSON.stringify(code)}: ${message}`);
  if (isAttestationCode(code)) return new AttestationError(code, message);
  return FROM_CODE[code](message);
}

/** `err` if it is an OracleError, else an InternalError carrying its message (and it as the cause). */
export function asOracleError(err: unknown): OracleError {
  if (err instanceof OracleError) return err;
  return new InternalError(err instanceof Error ? err.message : String(err), { cause: err });
}

/** Throws AbortedError when the signal has fired; call at the top of every async operation. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new AbortedError();
}
