import type { CID } from 'multiformats/cid';
import { QuorumNotMetError, RecordsDisagreeError } from '../errors.ts';
import { toHex } from './signature.ts';

/** One key's statement about a netlock entry: "this record is the answer" (its record signature or a countersignature). */
export interface Vouch {
  readonly key: Uint8Array;
  readonly record: CID;
}

/** How the keys that spoke about one entry count toward `--quorum K` (the pure decision of k-of-n witnesses). */
export interface QuorumTally {
  /** The entry's record CID (the one replay serves). */
  readonly record: string;
  readonly quorum: number;
  /** Distinct trusted keys that vouch for the entry's record and for nothing else (hex, sorted). */
  readonly counted: readonly string[];
  /** Keys that vouch for the entry's record but are not trusted: not counted (hex, sorted). */
  readonly untrusted: readonly string[];
  /** Keys that vouch for more than one record of the same entry: never counted (hex, sorted). */
  readonly equivocating: readonly string[];
  /** The other records some key vouches for, and those keys (the oracles that saw something else). */
  readonly dissent: ReadonlyArray<{ readonly record: string; readonly keys: readonly string[] }>;
  readonly accepted: boolean;
}

/**
 * Counts the distinct trusted keys that vouch for `entryRecord`: each key once however often it signed, a
 * key that vouches for two different records of one entry not at all (it said two things), untrusted keys
 * not at all. Accepted when the count reaches `quorum`.
 */
export function tallyQuorum(entryRecord: CID, vouches: readonly Vouch[], trusted: readonly Uint8Array[], quorum: number): QuorumTally {
  const trustedHex = new Set(trusted.map(toHex));
  const recordsOf = new Map<string, Set<string>>();
  for (const v of vouches) {
    const key = toHex(v.key);
    const set = recordsOf.get(key) ?? new Set<string>();
    set.add(v.record.toString());
    recordsOf.set(key, set);
  }
  const target = entryRecord.toString();
  const counted: string[] = [];
  const untrusted: string[] = [];
  const equivocating: string[] = [];
  const others = new Map<string, string[]>();
  for (const [key, records] of recordsOf) {
    if (records.size > 1) equivocating.push(key);
    for (const r of records) {
      if (r !== target) others.set(r, [...(others.get(r) ?? []), key]);
    }
    if (records.size > 1 || !records.has(target)) continue;
    (trustedHex.has(key) ? counted : untrusted).push(key);
  }
  const dissent = [...others.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([record, keys]) => ({ record, keys: keys.sort() }));
  return { record: target, quorum, counted: counted.sort(), untrusted: untrusted.sort(), equivocating: equivocating.sort(), dissent, accepted: counted.length >= quorum };
}

/**
 * The error for a tally that is not accepted, naming the entry (`what`), every record and the keys behind it,
 * or undefined when it is accepted. `describe` says what a record holds (status, size, sha256), so that a
 * disagreement shows what each oracle saw.
 */
export function quorumError(what: string, tally: QuorumTally, describe: (record: string) => string = () => ''): QuorumNotMetError | RecordsDisagreeError | undefined {
  if (tally.accepted) return undefined;
  const about = (record: string): string => {
    const d = describe(record);
    return d === '' ? record : `${record} (${d})`;
  };
  const notCounted = [
    ...tally.untrusted.map((k) => `${k} (untrusted)`),
    ...tally.equivocating.map((k) => `${k} (signed more than one record)`),
  ];
  const count = `${tally.counted.length} of the ${tally.quorum} trusted keys needed signed record ${about(tally.record)}${tally.counted.length > 0 ? ` (${tally.counted.join(', ')})` : ''}${notCounted.length > 0 ? `; not counted: ${notCounted.join(', ')}` : ''}`;
  if (tally.dissent.length > 0) {
    const others = tally.dissent.map((d) => `record ${about(d.record)} signed by ${d.keys.join(', ')}`).join('; ');
    return new RecordsDisagreeError(`${what}: the oracles disagree: ${others}; ${count}`);
  }
  return new QuorumNotMetError(`${what}: ${count}`);
}

/** Why a witness could not countersign an entry's record (`fetch-oracle witness` lists each). */
export type WitnessReason = 'different-status' | 'different-bytes' | 'unreachable' | 'not-reproducible';

/** What a witness's own fetch says about a recorded answer: the same status and body bytes, or which differs. */
export interface WitnessedAnswer {
  readonly status: number;
  readonly size: number;
  readonly sha256: Uint8Array;
}

/**
 * The witness's decision for one entry: `same` when its fetch got the record's status and body bytes (size and
 * sha256; response headers are not compared, as origins vary volatile ones such as `server` or `x-served-by`
 * between fetches), else the first of status, bytes that differs.
 */
export function witnessVerdict(recorded: WitnessedAnswer, fetched: WitnessedAnswer): 'same' | 'different-status' | 'different-bytes' {
  if (recorded.status !== fetched.status) return 'different-status';
  if (recorded.size !== fetched.size || toHex(recorded.sha256) !== toHex(fetched.sha256)) return 'different-bytes';
  return 'same';
}
