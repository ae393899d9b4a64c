import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ATTESTATION_ERROR_CODES } from '../src/attestation/errors.ts';
import {
  AbortedError,
  asOracleError,
  AttestationError,
  BadCountersignatureError,
  BadRequestError,
  BadSignatureError,
  BlockCorruptError,
  BlockFetchTimeoutError,
  BlockMissingError,
  DeviceError,
  DigestMismatchError,
  ERROR_CODES,
  errorFromCode,
  ForbiddenTargetError,
  ImageBuildError,
  InternalError,
  InvalidArchiveError,
  InvalidConfigError,
  InvalidLockfileError,
  InvalidNetlockError,
  InvalidProvenanceError,
  InvalidRecordError,
  isErrorCode,
  MachineError,
  NotAttestedError,
  NsmError,
  OverloadedError,
  QuorumNotMetError,
  RecordsDisagreeError,
  ReplayMissError,
  StoreError,
  SubjectMismatchError,
  TruncatedBodyError,
  UnauthorizedError,
  UntrustedKeyError,
  UpstreamError,
  UpstreamTimeoutError,
} from '../src/errors.ts';
import type { ErrorCode, OracleError } from '../src/errors.ts';
import { readZipFiles } from '../src/seed/zip-reader.ts';

const ROOT = join(import.meta.dirname, '..');
/** Where codes are emitted: the host, the guest shim (TypeScript and the C helper) and the enclave image. */
const SOURCE_DIRS = ['src', 'guest', 'enclave'];
const SOURCE_FILE = /\.(ts|js|mjs|c|h|sh)$/;

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && SOURCE_FILE.test(e.name) && !e.parentPath.includes('node_modules') && !/\/dist(\/|$)/.test(e.parentPath))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

const files = SOURCE_DIRS.flatMap(sourceFiles).map((path) => ({ path, text: readFileSync(join(ROOT, path), 'utf8') }));
const registered = new Set<string>([...ERROR_CODES, ...ATTESTATION_ERROR_CODES]);

/** `file:line` of every match of `re` (global) in the sources, with the matched text. */
function occurrences(re: RegExp): Array<{ at: string; match: RegExpExecArray }> {
  const out: Array<{ at: string; match: RegExpExecArray }> = [];
  for (const f of files) {
    for (const m of f.text.matchAll(re)) out.push({ at: `${f.path}:${f.text.slice(0, m.index).split('\n').length}`, match: m });
  }
  return out;
}

/** The README's error-code table: code → class column. */
function readmeTable(): Map<string, string> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Error codes'));
  const rows = new Map<string, string>();
  for (const m of section.matchAll(/^\| `(ORACLE_ERR_[A-Z0-9_]+)` \| `([A-Za-z]+)`[^|]*\|/gm)) rows.set(m[1]!, m[2]!);
  return rows;
}

/** The class each code must come back as (kept here, apart from errors.ts, so a wrong mapping is caught). */
const CLASS_OF: Record<Exclude<ErrorCode, `ORACLE_ERR_ATTESTATION_${string}`>, abstract new (...args: never[]) => OracleError> = {
  ORACLE_ERR_INVALID_CONFIG: InvalidConfigError,
  ORACLE_ERR_BAD_REQUEST: BadRequestError,
  ORACLE_ERR_UPSTREAM: UpstreamError,
  ORACLE_ERR_UPSTREAM_TIMEOUT: UpstreamTimeoutError,
  ORACLE_ERR_OVERLOADED: OverloadedError,
  ORACLE_ERR_FORBIDDEN: ForbiddenTargetError,
  ORACLE_ERR_TRUNCATED_BODY: TruncatedBodyError,
  ORACLE_ERR_REPLAY_MISS: ReplayMissError,
  ORACLE_ERR_BLOCK_MISSING: BlockMissingError,
  ORACLE_ERR_BLOCK_CORRUPT: BlockCorruptError,
  ORACLE_ERR_BLOCK_FETCH_TIMEOUT: BlockFetchTimeoutError,
  ORACLE_ERR_BAD_SIGNATURE: BadSignatureError,
  ORACLE_ERR_UNTRUSTED_KEY: UntrustedKeyError,
  ORACLE_ERR_INVALID_RECORD: InvalidRecordError,
  ORACLE_ERR_INVALID_NETLOCK: InvalidNetlockError,
  ORACLE_ERR_STORE: StoreError,
  ORACLE_ERR_ABORTED: AbortedError,
  ORACLE_ERR_INTERNAL: InternalError,
  ORACLE_ERR_UNAUTHORIZED: UnauthorizedError,
  ORACLE_ERR_INVALID_ARCHIVE: InvalidArchiveError,
  ORACLE_ERR_DEVICE: DeviceError,
  ORACLE_ERR_MACHINE: MachineError,
  ORACLE_ERR_IMAGE_BUILD: ImageBuildError,
  ORACLE_ERR_DIGEST_MISMATCH: DigestMismatchError,
  ORACLE_ERR_INVALID_LOCKFILE: InvalidLockfileError,
  ORACLE_ERR_NSM: NsmError,
  ORACLE_ERR_NOT_ATTESTED: NotAttestedError,
  ORACLE_ERR_INVALID_PROVENANCE: InvalidProvenanceError,
  ORACLE_ERR_SUBJECT_MISMATCH: SubjectMismatchError,
  ORACLE_ERR_QUORUM_NOT_MET: QuorumNotMetError,
  ORACLE_ERR_RECORDS_DISAGREE: RecordsDisagreeError,
  ORACLE_ERR_BAD_COUNTERSIGNATURE: BadCountersignatureError,
};

function classOf(code: ErrorCode): abstract new (...args: never[]) => OracleError {
  return code.startsWith('ORACLE_ERR_ATTESTATION_') ? AttestationError : CLASS_OF[code as keyof typeof CLASS_OF];
}

describe('error codes', () => {
  it('scans the sources it should (src/, guest/ with the cmio helper, enclave/)', () => {
    const paths = files.map((f) => f.path);
    expect(paths).toContain('src/errors.ts');
    expect(paths).toContain('guest/device-block-source.ts');
    expect(paths).toContain('guest/cmio/cmio-helper.c');
    expect(paths.some((p) => p.startsWith('enclave/'))).toBe(true);
  });

  it('every code emitted in src/, guest/ or enclave/ is registered in ERROR_CODES', () => {
    // A code is `ORACLE_ERR_` and at least one more character; a bare prefix (`ORACLE_ERR_…`, a template
    // `ORACLE_ERR_ATTESTATION_${string}`) ends in `_` and names no code.
    const unregistered = occurrences(/ORACLE_ERR_[A-Z0-9_]+/g)
      .filter(({ match }) => !match[0].endsWith('_') && !registered.has(match[0]))
      .map(({ at, match }) => `${at}: ${match[0]}`);
    expect(unregistered).toEqual([]);
  });

  it("each code has its own subclass in src/errors.ts: super('ORACLE_ERR_…') nowhere else, once per code", () => {
    // A code literal among a super() call's arguments (UpstreamTimeoutError hands its code to UpstreamError's).
    const supers = occurrences(/super\([^;)]*?['"`](ORACLE_ERR_[A-Z0-9_]+)['"`]/g);
    expect(supers.filter(({ at }) => !at.startsWith('src/errors.ts:')).map(({ at, match }) => `${at}: ${match[0]}`)).toEqual([]);
    const perCode = new Map<string, number>();
    for (const { match } of supers) perCode.set(match[1]!, (perCode.get(match[1]!) ?? 0) + 1);
    for (const code of ERROR_CODES) {
      // The attestation codes share AttestationError, whose constructor takes the code.
      if (code.startsWith('ORACLE_ERR_ATTESTATION_')) continue;
      expect(perCode.get(code), code).toBe(1);
    }
    expect([...perCode.keys()].filter((c) => !registered.has(c))).toEqual([]);
  });

  it('no ad-hoc codes: no new OracleError(…) outside errors.ts, no Object.assign(new Error(…), { code: ORACLE_ERR_… })', () => {
    const adHoc = [
      ...occurrences(/new OracleError\(/g).filter(({ at }) => !at.startsWith('src/errors.ts:')),
      ...occurrences(/Object\.assign\(\s*new [A-Za-z]*Error\([^;]*?code:\s*['"`]ORACLE_ERR_/g),
    ].map(({ at, match }) => `${at}: ${match[0]}`);
    expect(adHoc).toEqual([]);
  });

  it("every registered code is documented in the README's error-code table, with its class", () => {
    const table = readmeTable();
    expect([...registered].filter((c) => !table.has(c))).toEqual([]);
    expect([...table.keys()].filter((c) => !registered.has(c))).toEqual([]);
    for (const code of ERROR_CODES) {
      const documented = table.get(code);
      // `MachineError` (`MachineRpcError`): the first class named is the one errorFromCode rebuilds.
      expect(documented, code).toBe(errorFromCode(code, 'x').name);
    }
  });

  it('the attestation list is the ORACLE_ERR_ATTESTATION_ part of ERROR_CODES', () => {
    expect(ATTESTATION_ERROR_CODES.length).toBeGreaterThan(0);
    expect(ATTESTATION_ERROR_CODES).toEqual(ERROR_CODES.filter((c) => c.startsWith('ORACLE_ERR_ATTESTATION_')));
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
  });
});

describe('errorFromCode', () => {
  it('round-trips every registered code to an instance of its class, with the same code and message', () => {
    for (const code of ERROR_CODES) {
      const message = `something about ${code}`;
      const err = errorFromCode(code, message);
      expect(err, code).toBeInstanceOf(classOf(code));
      expect(err.code).toBe(code);
      expect(err.message).toBe(message);
      expect(err.name).toBe(classOf(code).name);
      // And back onto the wire unchanged.
      expect(err.toJSON()).toEqual({ code, message });
    }
  });

  it('round-trips errors built by their own constructors, keeping what only the message carries', () => {
    const cid = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku';
    const samples: OracleError[] = [
      new BlockMissingError(cid),
      new BlockCorruptError(cid),
      new BlockFetchTimeoutError(cid),
      new InvalidLockfileError('package-lock.json', 12, 'not valid JSON'),
      new InvalidLockfileError('urls.txt', 0, 'unknown kind'),
      new BadRequestError('Invalid CONNECT port 0 (expected 1-65535)'),
      new AttestationError('ORACLE_ERR_ATTESTATION_PCR_MISMATCH', 'PCR0 is 00, expected 01'),
    ];
    for (const original of samples) {
      const back = errorFromCode(original.code, original.message);
      expect(back).toBeInstanceOf(original.constructor);
      expect(back.toJSON()).toEqual(original.toJSON());
    }
    expect(errorFromCode('ORACLE_ERR_BLOCK_MISSING', `Block not found: ${cid}`)).toMatchObject({ cid });
    expect(errorFromCode('ORACLE_ERR_INVALID_LOCKFILE', 'package-lock.json:12: not valid JSON')).toMatchObject({ file: 'package-lock.json', line: 12 });
  });

  it('an unknown code is an InternalError that names it', () => {
    for (const code of ['ORACLE_ERR_NO_SUCH_THING', 'ENOENT', '']) {
      const err = errorFromCode(code, 'the message');
      expect(err).toBeInstanceOf(InternalError);
      expect(err.code).toBe('ORACLE_ERR_INTERNAL');
      expect(err.message).toContain(JSON.stringify(code));
      expect(err.message).toContain('the message');
    }
    expect(isErrorCode('ORACLE_ERR_STORE')).toBe(true);
    expect(isErrorCode('ORACLE_ERR_NO_SUCH_THING')).toBe(false);
  });

  it('asOracleError keeps an OracleError and wraps anything else in an InternalError', () => {
    const store = new StoreError('disk full');
    expect(asOracleError(store)).toBe(store);
    const bug = new TypeError('undefined is not a function');
    const wrapped = asOracleError(bug);
    expect(wrapped).toBeInstanceOf(InternalError);
    expect(wrapped).toMatchObject({ code: 'ORACLE_ERR_INTERNAL', message: bug.message, cause: bug });
    expect(asOracleError('a string').message).toBe('a string');
  });
});

describe('codes mean what they say', () => {
  it('a malformed zip is an InvalidArchiveError, not a digest mismatch', async () => {
    const junk = new TextEncoder().encode('this is not a zip file, it is a sentence of some length');
    // eslint-disable-next-line @typescript-eslint/require-await -- an in-memory RangeReader: stream() is an AsyncIterable with nothing to await
    const reader = { size: junk.byteLength, read: (o: number, l: number) => Promise.resolve(junk.subarray(o, o + l)), stream: async function* () { yield junk; } };
    const firstEntry = async (): Promise<unknown> => (await readZipFiles(reader).next()).value;
    await expect(firstEntry()).rejects.toBeInstanceOf(InvalidArchiveError);
  });
});
