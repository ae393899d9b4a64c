import { InvalidRecordError } from '../errors.ts';
import type { QuorumNotMetError, RecordsDisagreeError } from '../errors.ts';
import type { CID } from 'multiformats/cid';
import type { BlockSource } from './blocks.ts';
import { equalBytes, verifyingSource } from './blocks.ts';
import { loadCountersignature } from './countersignature.ts';
import type { SignedCountersignature } from './countersignature.ts';
import { quorumError, tallyQuorum } from './quorum.ts';
import type { QuorumTally, Vouch } from './quorum.ts';
import { decodeRecord } from './record.ts';
import type { FetchRecord } from './record.ts';
import type { RequestKey } from './request-key.ts';
import { assertTrustedKey, toHex, verifyRecordSignature, verifyRecordSignatureInPool } from './signature.ts';
import type { SignedRecord } from './signature.ts';

/** Throws InvalidRecordError unless `record` answers `key` (a netlock cannot re-point a key at another URL's record). */
export function assertAnswersKey(cid: CID, record: FetchRecord, key: RequestKey): void {
  const r = record.request;
  const sameVariant = Object.entries(key.variant).every(([h, v]) => (r.headers[h] ?? '') === v);
  if (r.method !== key.method || r.url !== key.url || !sameVariant || (r.bodyDigest ?? '') !== (key.bodyDigest ?? '')) {
    throw new InvalidRecordError(`Record ${cid} answers ${r.method} ${r.url}, not the netlock key ${key.method} ${key.url}`);
  }
}

/**
 * Checks a decoded record against the entry that names it: signature by its oracle key, that key trusted,
 * and the record really answers `key`.
 */
export function verifyRecord(signed: SignedRecord, record: FetchRecord, key: RequestKey, trusted: readonly Uint8Array[]): void {
  verifyRecordSignature(signed, record.oracle);
  assertTrustedAnswer(signed, record, key, trusted);
}

/** What `verifyRecord` checks after the signature: the signer is trusted and the record answers `key`. */
function assertTrustedAnswer(signed: SignedRecord, record: FetchRecord, key: RequestKey, trusted: readonly Uint8Array[]): void {
  // Named only in the error: multiformats keeps a CID's text in a WeakMap by CID, an entry per first hit that
  // only a full collection clears (issue #15, session 31).
  assertTrustedKey(record.oracle, trusted, () => `Record ${signed.record}`);
  assertAnswersKey(signed.record, record, key);
}

/**
 * Loads the record a netlock entry names (its block verified against the CID) and checks it as `verifyRecord`
 * does, the signature on the thread pool: `openEntryRecords` reads many at once (a kept netlock, provenance),
 * so they are checked on every core.
 */
export async function loadVerifiedRecord(signed: SignedRecord, key: RequestKey, source: BlockSource, trusted: readonly Uint8Array[]): Promise<FetchRecord> {
  const record = decodeRecord(await verifyingSource(source).get(signed.record));
  await verifyRecordSignatureInPool(signed, record.oracle);
  assertTrustedAnswer(signed, record, key, trusted);
  return record;
}

/** What a netlock entry carries that the quorum reads: its signed record and its countersignatures. */
export interface WitnessedEntry {
  readonly signed: SignedRecord;
  readonly witnesses?: readonly SignedCountersignature[] | undefined;
}

export interface QuorumRecord {
  readonly record: FetchRecord;
  /** How the keys counted; undefined when the single-oracle check sufficed (quorum 1, signer trusted). */
  readonly tally: QuorumTally | undefined;
}

export interface QuorumOptions {
  /** Read and check every countersignature even when the record's own trusted signature meets the quorum (verify). */
  checkAll?: boolean;
  /** Check the record's own signature on the thread pool (`verify`, which checks many entries at once). */
  signatureInPool?: boolean;
  /**
   * The records' own signatures under this netlock's root were checked before, by the key each record names
   * (host replay of a root in its data directory's `verified-netlocks`): not again. The block's hash, that
   * key's trust, what the record answers and every countersignature still are.
   */
  signaturesChecked?: boolean;
}

/** `status 200, 5 bytes, sha256 ab12…`: what a record says was received. */
export function describeRecord(record: FetchRecord): string {
  return `status ${record.response.status}, ${record.response.size} bytes, sha256 ${toHex(record.response.sha256)}`;
}

/**
 * The record of a netlock entry, accepted only when `quorum` distinct trusted keys vouch for its CID: its own
 * signer and the witnesses whose countersignatures name it (docs/formats.md "Countersignature"). With quorum 1
 * and a trusted signer this is `loadVerifiedRecord` and reads no countersignature, so a netlock without
 * witnesses verifies and replays exactly as before. Every countersignature read must verify (a tampered one is
 * a BadCountersignatureError, not a vote less); one that names another record must name a record of the same
 * request, and makes a disagreement that the error names if the quorum is not met.
 */
export async function loadQuorumRecord(entry: WitnessedEntry, key: RequestKey, source: BlockSource, trusted: readonly Uint8Array[], quorum: number, options: QuorumOptions = {}): Promise<QuorumRecord> {
  const result = await evaluateQuorumRecord(entry, key, source, trusted, quorum, options);
  if (result.error !== undefined) throw result.error;
  return result;
}

/**
 * `loadQuorumRecord` that returns, instead of throwing, a quorum that is not met (with its tally, for a report
 * that names the disagreeing records); every other failure (blocks, signatures, key mismatch) still throws.
 */
export async function evaluateQuorumRecord(
  entry: WitnessedEntry,
  key: RequestKey,
  source: BlockSource,
  trusted: readonly Uint8Array[],
  quorum: number,
  options: QuorumOptions = {},
): Promise<QuorumRecord & { error?: QuorumNotMetError | RecordsDisagreeError }> {
  const verified = verifyingSource(source);
  const { signed } = entry;
  const record = decodeRecord(await verified.get(signed.record));
  const witnesses = entry.witnesses ?? [];
  const signerTrusted = trusted.some((t) => equalBytes(t, record.oracle));
  const checkSignature = options.signaturesChecked !== true;
  if (options.checkAll !== true && quorum <= 1 && (witnesses.length === 0 || signerTrusted)) {
    if (checkSignature) {
      if (options.signatureInPool === true) await verifyRecordSignatureInPool(signed, record.oracle);
      else verifyRecordSignature(signed, record.oracle);
    }
    assertTrustedAnswer(signed, record, key, trusted);
    return { record, tally: undefined };
  }
  if (checkSignature) verifyRecordSignature(signed, record.oracle);
  assertAnswersKey(signed.record, record, key);
  const records = new Map<string, FetchRecord>([[signed.record.toString(), record]]);
  const vouches: Vouch[] = [{ key: record.oracle, record: signed.record }];
  for (const w of witnesses) {
    const c = await loadCountersignature(w, verified);
    if (!records.has(c.record.toString())) {
      const other = decodeRecord(await verified.get(c.record));
      assertAnswersKey(c.record, other, key);
      records.set(c.record.toString(), other);
    }
    vouches.push({ key: c.witness, record: c.record });
  }
  const tally = tallyQuorum(signed.record, vouches, trusted, quorum);
  const err = quorumError(`${key.method} ${key.url}`, tally, (cid) => {
    const r = records.get(cid);
    return r === undefined ? '' : describeRecord(r);
  });
  return err === undefined ? { record, tally } : { record, tally, error: err };
}
