import { createHash } from 'node:crypto';
import { asOracleError, BlockCorruptError, InvalidNetlockError } from '../errors.ts';
import type { CID } from 'multiformats/cid';
import type { AbortOptions, BlockSource } from '../protocol/blocks.ts';
import { equalBytes, verifyingSource } from '../protocol/blocks.ts';
import { NetlockReader, WALK_ONCE } from './dag.ts';
import type { NetlockEntry } from './dag.ts';
import type { FetchRecord } from '../protocol/record.ts';
import { parseKeyId } from '../protocol/request-key.ts';
import type { RequestKey } from '../protocol/request-key.ts';
import { toHex } from '../protocol/signature.ts';
import { readBody } from '../protocol/unixfs.ts';
import { evaluateQuorumRecord } from '../protocol/verify-record.ts';
import { AttestationChecker } from './verify-attested.ts';
import type { AttestationPolicy, AttestationSummary } from './verify-attested.ts';

export interface VerifyFailure {
  /** `METHOD url` of the entry (or `netlock` for the DAG itself). */
  entry: string;
  code: string;
  message: string;
}

export interface VerifyReport {
  root: string;
  entries: number;
  bodyBytes: number;
  oracles: string[];
  failures: VerifyFailure[];
  /** With `attested`: the attestation documents that bound the records (verify --attested). */
  attestations?: AttestationSummary[];
  /** Distinct trusted keys each entry's record needed (`--quorum`, default 1). */
  quorum: number;
  /** Witness keys the netlock names (hex), when witnesses countersigned it. */
  witnesses: string[];
  /** Entries whose oracles vouch for different records (whether or not the quorum was met). */
  disagreements: Array<{ entry: string; records: Array<{ record: string; keys: string[] }> }>;
  /** Keys whose signatures were not counted toward the quorum, why, and on how many entries. */
  notCounted: Array<{ key: string; why: 'untrusted' | 'signed more than one record'; entries: number }>;
}

export interface VerifyNetlockOptions extends AbortOptions {
  /** Accept a record only when its key is bound by a valid attestation document matching this policy. */
  attested?: AttestationPolicy;
  /** Accept an entry only when this many distinct trusted keys signed its record (k-of-n witnesses). @default 1 */
  quorum?: number;
}

export function keyFromId(id: string): RequestKey {
  const k = parseKeyId(id);
  return { method: k.method, url: k.url, variant: k.variant, id, ...(k.bodyDigest === '' ? {} : { bodyDigest: k.bodyDigest }) };
}

/**
 * Checks a whole netlock: every index page and record block hashes to its CID, every record is signed by
 * its oracle key (and that key is trusted, when `trusted` is given), every record answers its key, and
 * every body block is present, hashes to its CID, and the body matches the record's size and sha256.
 */
export async function verifyNetlock(root: CID, store: BlockSource, trusted: readonly Uint8Array[] | undefined, options: VerifyNetlockOptions = {}): Promise<VerifyReport> {
  const source = verifyingSource(store);
  const attested = options.attested === undefined ? undefined : new AttestationChecker(options.attested, store);
  const reader = new NetlockReader(root, source, WALK_ONCE);
  const quorum = options.quorum ?? 1;
  const report: VerifyReport = { root: root.toString(), entries: 0, bodyBytes: 0, oracles: [], failures: [], quorum, witnesses: [], disagreements: [], notCounted: [] };
  const notCounted = new Map<string, VerifyReport['notCounted'][number]>();
  let rootValue;
  try {
    rootValue = await reader.rootValue(options);
  } catch (err) {
    report.failures.push({ entry: 'netlock', code: codeOf(err), message: (err as Error).message });
    return report;
  }
  report.oracles = rootValue.oracles.map(toHex);
  report.witnesses = (rootValue.witnesses ?? []).map(toHex);
  const keys = trusted ?? [...rootValue.oracles, ...(rootValue.witnesses ?? [])];
  const named = new Set([...report.oracles, ...report.witnesses]);
  /** The checks of one entry that run beside other entries': its record (signature on the thread pool) and body. */
  const check = async (entry: NetlockEntry): Promise<CheckedEntry> => {
    const key = keyFromId(entry.key);
    const name = `${key.method} ${key.url}`;
    try {
      const witnessed = (entry.witnesses?.length ?? 0) > 0;
      const evaluated = await evaluateQuorumRecord(entry, key, store, keys, quorum, { checkAll: witnessed, signatureInPool: true });
      const body = evaluated.error === undefined ? await checkBody(evaluated.record, source, options) : undefined;
      return { entry, name, evaluated, body };
    } catch (err) {
      return { entry, name, failure: err as Error };
    }
  };
  /** What an entry's checks found, entered in the report in the netlock's order (the attestation checked here). */
  const enter = async (checked: CheckedEntry): Promise<void> => {
    report.entries++;
    try {
      if ('failure' in checked) throw checked.failure;
      const { record, tally, error } = checked.evaluated;
      if (tally !== undefined) {
        if (tally.dissent.length > 0) report.disagreements.push({ entry: checked.name, records: [{ record: tally.record, keys: [...tally.counted, ...tally.untrusted] }, ...tally.dissent.map((d) => ({ record: d.record, keys: [...d.keys] }))] });
        const why = [...tally.untrusted.map((k) => [k, 'untrusted'] as const), ...tally.equivocating.map((k) => [k, 'signed more than one record'] as const)];
        for (const [k, reason] of why) {
          const seen = notCounted.get(`${k} ${reason}`) ?? { key: k, why: reason, entries: 0 };
          seen.entries++;
          notCounted.set(`${k} ${reason}`, seen);
        }
        const unnamed = [...tally.counted, ...tally.untrusted, ...tally.equivocating, ...tally.dissent.flatMap((d) => d.keys)].filter((k) => !named.has(k));
        if (unnamed.length > 0) throw new InvalidNetlockError(`Countersigned by key(s) ${unnamed.join(', ')} that the netlock root does not name`);
      }
      if (error !== undefined) throw error;
      await attested?.check(record, checked.entry.signed.record, options);
      const body = checked.body;
      if (body !== undefined) {
        if (body.size !== undefined) report.bodyBytes += body.size;
        if (body.error !== undefined) throw body.error;
      }
    } catch (err) {
      report.failures.push({ entry: checked.name, code: codeOf(err), message: (err as Error).message });
    }
  };
  // Entries are checked CHECKS_AT_ONCE at a time, so that signatures use every core (one at a time, ed25519
  // was most of a 100,000-entry verify: issue #15), and entered in order, so the report is the same.
  const checking: Array<Promise<CheckedEntry>> = [];
  let indexError: unknown;
  try {
    for await (const entry of reader.entries(options)) {
      checking.push(check(entry));
      if (checking.length >= CHECKS_AT_ONCE) await enter(await checking.shift()!);
    }
  } catch (err) {
    indexError = err;
  }
  while (checking.length > 0) await enter(await checking.shift()!);
  if (indexError !== undefined) report.failures.push({ entry: 'netlock index', code: codeOf(indexError), message: (indexError as Error).message });
  if (attested !== undefined) report.attestations = attested.summaries();
  report.notCounted = [...notCounted.values()];
  if (report.entries !== rootValue.count) {
    report.failures.push({ entry: 'netlock', code: 'ORACLE_ERR_INVALID_NETLOCK', message: `Root says ${rootValue.count} entries, index holds ${report.entries}` });
  }
  return report;
}

/** Entries whose checks run at once in `verifyNetlock`. */
const CHECKS_AT_ONCE = 8;

/** One entry as `verifyNetlock` checked it: its record's evaluation and body, or the failure that stopped them. */
type CheckedEntry = { entry: NetlockEntry; name: string } & ({ evaluated: Awaited<ReturnType<typeof evaluateQuorumRecord>>; body: BodyCheck | undefined } | { failure: Error });

/** A body read back and hashed: its size once read whole, and why it does not match its record, if it does not. */
interface BodyCheck {
  size?: number;
  error?: Error;
}

async function checkBody(record: FetchRecord, source: BlockSource, options: AbortOptions): Promise<BodyCheck | undefined> {
  const body = record.response.body;
  if (body === null) return undefined;
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of readBody(body, source, options)) {
      hash.update(chunk);
      size += chunk.byteLength;
    }
  } catch (err) {
    return { error: err as Error };
  }
  if (size !== record.response.size || !equalBytes(new Uint8Array(hash.digest()), record.response.sha256)) {
    return { size, error: new BlockCorruptError(body.toString(), `Body ${body} has ${size} bytes / sha256 not matching the record (${record.response.size} bytes, sha256 ${toHex(record.response.sha256)})`) };
  }
  return { size };
}

function codeOf(err: unknown): string {
  return asOracleError(err).code;
}
