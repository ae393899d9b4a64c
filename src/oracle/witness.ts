import type { CID } from 'multiformats/cid';
import { InvalidConfigError, throwIfAborted, TruncatedBodyError, UpstreamError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { BlockSource } from '../protocol/blocks.ts';
import { verifyingSource } from '../protocol/blocks.ts';
import { encodeCountersignature, loadCountersignature } from '../protocol/countersignature.ts';
import type { Countersignature, SignedCountersignature } from '../protocol/countersignature.ts';
import { witnessVerdict } from '../protocol/quorum.ts';
import type { WitnessReason } from '../protocol/quorum.ts';
import type { VariantRules } from '../protocol/request-key.ts';
import { decodeRecord } from '../protocol/record.ts';
import { toHex, verifyRecordSignature } from '../protocol/signature.ts';
import { assertAnswersKey, describeRecord } from '../protocol/verify-record.ts';
import { NetlockReader } from '../netlock/dag.ts';
import type { NetlockEntry } from '../netlock/dag.ts';
import type { DecodedEntry } from '../netlock/file.ts';
import { keyFromId } from '../netlock/verify.ts';
import type { LocalSigner } from '../signing/local-signer.ts';
import type { BlockStore } from '../store/block-store.ts';
import { RecordPath } from './record-path.ts';
import { createStats } from './stats.ts';

/** Entries a witness fetches at once. */
export const WITNESS_CONCURRENCY = 4;

export interface WitnessInit {
  /** The netlock to witness; its index, records and countersignatures must be in `store` (import its CAR first). */
  root: CID;
  /** The witness's own store: its records and bodies go there, and the witnessed netlock. */
  store: BlockStore;
  /** The witness's data directory (its record index). */
  dataDir: string;
  /** The witness's key: it signs the witness's own records and its countersignatures. */
  signer: LocalSigner;
  upstreamCaPem?: readonly string[];
  /** @default WITNESS_CONCURRENCY */
  concurrency?: number;
  logger: Logger;
  signal?: AbortSignal;
}

/** An entry the witness could not countersign, and why. */
export interface NotWitnessed {
  method: string;
  url: string;
  accept: string;
  reason: WitnessReason;
  message: string;
  /** The netlock's record. */
  record: string;
  /** The witness's own record of what it got (different status or bytes); its countersignature names it. */
  witnessRecord?: string;
}

export interface WitnessResult {
  /** The netlock witnessed. */
  root: string;
  /** The witness key (hex). */
  witness: string;
  entries: number;
  /** Entries whose record the witness countersigned (same status and bytes). */
  countersigned: number;
  notWitnessed: NotWitnessed[];
  /** Every entry with its countersignatures, the witness's added: what the witnessed netlock is built from. */
  decoded: DecodedEntry[];
  variantRules: VariantRules | undefined;
}

/**
 * `fetch-oracle witness`: fetches every entry of a netlock again through this oracle's own record path (its
 * key, its store, its upstream client) and countersigns the entry's record when it got the same status and
 * body bytes. When it got something else, the countersignature names the witness's own record instead, so
 * the witnessed netlock carries the disagreement; an entry it could not fetch (unreachable, a request body
 * the netlock does not hold) gets no countersignature. Countersignatures already on an entry are checked and
 * kept, except the witness's own earlier ones, which this run replaces.
 */
export async function witnessNetlock(init: WitnessInit): Promise<WitnessResult> {
  const { logger, signer } = init;
  const source = verifyingSource(init.store);
  const reader = new NetlockReader(init.root, source);
  const rootValue = await reader.rootValue(init.signal === undefined ? {} : { signal: init.signal });
  const me = toHex(signer.publicKey);
  if (rootValue.oracles.some((k) => toHex(k) === me)) {
    throw new InvalidConfigError(`The witness key ${me} signed records of netlock ${init.root}: a witness needs its own key (--key KEYFILE, or another --data)`);
  }
  const entries: NetlockEntry[] = [];
  for await (const e of reader.entries()) entries.push(e);
  const stats = createStats('record');
  const path = await RecordPath.open({
    store: init.store,
    dataDir: init.dataDir,
    signer,
    // Every entry is fetched again, even one this data directory recorded before; no answer is recorded as a 502.
    refresh: true,
    recordUpstreamFailures: false,
    ...(rootValue.variantRules === undefined ? {} : { variantRules: rootValue.variantRules }),
    upstreamCaPem: init.upstreamCaPem ?? [],
    stats,
    logger: logger.child('witness'),
  });
  const result: WitnessResult = { root: init.root.toString(), witness: me, entries: entries.length, countersigned: 0, notWitnessed: [], decoded: new Array<DecodedEntry>(entries.length), variantRules: rootValue.variantRules };
  try {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < entries.length) {
        const i = next++;
        throwIfAborted(init.signal);
        result.decoded[i] = await witnessEntry(entries[i]!, source, path, init, result);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(init.concurrency ?? WITNESS_CONCURRENCY, entries.length)) }, worker));
  } finally {
    await path.close();
  }
  result.notWitnessed.sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : a.method < b.method ? -1 : 1));
  return result;
}

async function witnessEntry(entry: NetlockEntry, source: BlockSource, path: RecordPath, init: WitnessInit, result: WitnessResult): Promise<DecodedEntry> {
  const key = keyFromId(entry.key);
  const record = decodeRecord(await source.get(entry.signed.record));
  verifyRecordSignature(entry.signed, record.oracle);
  assertAnswersKey(entry.signed.record, record, key);
  // Keep the countersignatures of other witnesses (checked); this witness's earlier ones are replaced.
  const kept: Array<{ signed: SignedCountersignature; value: Countersignature }> = [];
  for (const w of entry.witnesses ?? []) {
    const value = await loadCountersignature(w, source);
    if (toHex(value.witness) !== result.witness) kept.push({ signed: w, value });
  }
  const decoded = (extra: Array<{ signed: SignedCountersignature; value: Countersignature }>): DecodedEntry => {
    const all = [...kept, ...extra];
    return { key: entry.key, signed: entry.signed, record, ...(all.length === 0 ? {} : { witnesses: all.map((c) => c.signed), countersigned: all.map((c) => c.value) }) };
  };
  const accept = key.variant['accept'] ?? '';
  const miss = (reason: WitnessReason, message: string, witnessRecord?: CID): void => {
    result.notWitnessed.push({ method: key.method, url: key.url, accept, reason, message, record: entry.signed.record.toString(), ...(witnessRecord === undefined ? {} : { witnessRecord: witnessRecord.toString() }) });
    init.logger.warn('not witnessed: %s %s: %s: %s', key.method, key.url, reason, message);
  };
  if (key.bodyDigest !== undefined) {
    miss('not-reproducible', 'the netlock holds only the digest of the request body, so the request cannot be sent again');
    return decoded([]);
  }
  let mine: DecodedEntry;
  try {
    ({ entry: mine } = await path.recorder.recordDirect({ method: key.method, url: key.url, headers: Object.entries(key.variant) }, init.signal === undefined ? {} : { signal: init.signal }));
  } catch (err) {
    if (!(err instanceof UpstreamError || err instanceof TruncatedBodyError)) throw err;
    miss('unreachable', `${err.code}: ${err.message}`);
    return decoded([]);
  }
  if (mine.key !== entry.key) {
    miss('not-reproducible', `the witness computed another request key for it (${mine.key.split('\n').slice(0, 3).join(' ')})`);
    return decoded([]);
  }
  const verdict = witnessVerdict(record.response, mine.record.response);
  // Agreeing: vouch for the netlock's record. Disagreeing: vouch for the witness's own record of what it got.
  const vouched = verdict === 'same' ? entry.signed.record : mine.signed.record;
  const value: Countersignature = { v: 1, type: 'fetch-oracle/countersignature', record: vouched, witness: init.signer.publicKey, fetchedAt: mine.record.fetchedAt };
  const block = await encodeCountersignature(value);
  await init.store.put(block.cid, block.bytes);
  const signed = init.signer.countersign(block.cid);
  if (verdict === 'same') {
    result.countersigned++;
  } else {
    miss(verdict, `the netlock's record ${entry.signed.record} has ${describeRecord(record)}; the witness got ${describeRecord(mine.record)} (its record ${mine.signed.record})`, mine.signed.record);
  }
  return decoded([{ signed, value }]);
}
