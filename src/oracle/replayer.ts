import { LRUCache } from 'lru-cache';
import { ReplayMissError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { BlockSource } from '../protocol/blocks.ts';
import { explainMiss } from '../protocol/explain.ts';
import type { MissExplanation } from '../protocol/explain.ts';
import type { FetchRecord } from '../protocol/record.ts';
import type { RequestKey, VariantRules } from '../protocol/request-key.ts';
import { resolve } from '../protocol/resolve.ts';
import { loadQuorumRecord } from '../protocol/verify-record.ts';
import type { NetlockReader } from '../netlock/dag.ts';
import type { ReplayAnswer, ReplayDecider } from '../proxy/replay-handler.ts';
import type { OracleStats } from './stats.ts';

/**
 * Verified records a replayer keeps, by request key (least recently used out first). A decoded record is
 * a few KiB at most; 4,096 of them stay well under the 200 MB a replay may use (issue #15).
 */
export const RECORD_CACHE_ENTRIES = 4096;
/** Records verified and not yet answered with, when they are not kept (see `Replayer`'s `#fresh`). */
const MAX_FRESH = 256;

export interface ReplayMiss {
  method: string;
  url: string;
  accept: string;
  nearest: Array<{ method: string; url: string; differs: readonly string[] }>;
}

export interface ReplayerInit {
  netlock: NetlockReader;
  /** Blocks: records, index pages and bodies; verified on every read. */
  source: BlockSource;
  trusted: readonly Uint8Array[];
  /** Distinct trusted keys each record needs (k-of-n witnesses). @default 1 */
  quorum?: number;
  /** Every record's own signature under this root was checked before (`QuorumOptions.signaturesChecked`). */
  signaturesChecked?: boolean;
  stats: OracleStats;
  logger: Logger;
  /** @default RECORD_CACHE_ENTRIES (0 verifies every record on every hit) */
  recordCacheEntries?: number;
  /**
   * Keep a verified record only once its netlock entry answers a second time (the host: a build asks for
   * most URLs once, and each record kept for those outlived the young generation only to die in the old one,
   * a full collection every ~300 ms of first hits; issue #15). Off, every verified record is kept (the guest,
   * where reading a record again costs a round trip through the device).
   */
  keepFromSecondAnswer?: boolean;
  /**
   * Told of each miss before the client gets its 504 (the guest shim reports it to the host over GIO 0x27,
   * so the host has heard of every miss the command saw). A failure is logged, never the client's problem.
   */
  onMiss?: (miss: ReplayMiss) => void | Promise<void>;
}

type Explained = MissExplanation;

/** A request key's verified answer: the record, the netlock key it is filed under, and the hit it answers (made once). */
interface Verified {
  readonly record: FetchRecord;
  readonly entryKey: string;
  readonly hit: ReplayAnswer;
}

/**
 * The replay decision without sockets: the core's `resolve` over the netlock, every record verified.
 *
 * A record is verified (block hash, signature, trusted key, answers the key; the signature not for a root
 * whose signatures were checked before) when a request key needs it, and kept from its first answer on (or,
 * with `keepFromSecondAnswer`, from its second): the netlock root is immutable, so a request key always
 * resolves to the same record CID and signature, and a block that hashes to that CID always decodes to the
 * same record, so verifying it again can only give the same answer, or fail because the copy on disk changed
 * since, while the record kept is still the authentic one. Body blocks are not kept: the response reads and
 * hashes every one of them again (`sendPlan`).
 */
export class Replayer implements ReplayDecider {
  readonly #init: ReplayerInit;
  /**
   * Verified records, least recently used out first. An LRU cache whose hits allocate nothing: keeping the
   * order in a Map (delete and set again on every hit) made V8 rebuild its hash table over and over, ~150
   * bytes of garbage per replay hit (issue #15). Undefined: none kept.
   */
  readonly #verified: LRUCache<string, Verified> | undefined;
  /**
   * Records verified for an answer but not kept (`keepFromSecondAnswer`): held from `prepare` until the hit
   * they answer takes them, at most MAX_FRESH (the oldest dropped: a client gone between the two).
   */
  readonly #fresh = new Map<string, Verified>();
  /** Verifications under way, shared by concurrent requests for the same key. */
  readonly #pending = new Map<string, Promise<Verified | Explained>>();
  readonly misses: ReplayMiss[] = [];
  /** Netlock keys that answered a request. */
  readonly used = new Set<string>();

  constructor(init: ReplayerInit) {
    this.#init = init;
    const max = init.recordCacheEntries ?? RECORD_CACHE_ENTRIES;
    this.#verified = max > 0 ? new LRUCache<string, Verified>({ max }) : undefined;
  }

  async variantRules(): Promise<VariantRules | undefined> {
    return (await this.#init.netlock.rootValue()).variantRules;
  }

  answerNow(key: RequestKey): ReplayAnswer | undefined {
    const cached = this.#verified?.get(key.id) ?? this.#takeFresh(key.id);
    return cached === undefined ? undefined : this.#hit(cached);
  }

  recordNow(key: RequestKey): FetchRecord | undefined {
    return (this.#verified?.peek(key.id) ?? this.#fresh.get(key.id))?.record;
  }

  async prepare(key: RequestKey): Promise<void> {
    if (this.#verified?.has(key.id) !== true && !this.#fresh.has(key.id)) await this.#lookupShared(key);
  }

  async answer(key: RequestKey): Promise<ReplayAnswer> {
    const now = this.answerNow(key);
    if (now !== undefined) return now;
    const found = await this.#lookupShared(key);
    if (!('record' in found)) return this.#miss(key, found);
    this.#fresh.delete(key.id);
    return this.#hit(found);
  }

  #takeFresh(id: string): Verified | undefined {
    const fresh = this.#fresh.get(id);
    if (fresh !== undefined) this.#fresh.delete(id);
    return fresh;
  }

  #lookupShared(key: RequestKey): Promise<Verified | Explained> {
    let pending = this.#pending.get(key.id);
    if (pending === undefined) {
      pending = this.#lookup(key).finally(() => this.#pending.delete(key.id));
      this.#pending.set(key.id, pending);
    }
    return pending;
  }

  /** Every missed request is counted, listed and logged (concurrent ones share only the lookup). */
  async #miss(key: RequestKey, why: Explained): Promise<ReplayAnswer> {
    const { stats, logger, onMiss } = this.#init;
    stats.misses++;
    const miss: ReplayMiss = { method: key.method, url: key.url, accept: key.variant['accept'] ?? '', nearest: why.candidates.map((c) => ({ method: c.method, url: c.url, differs: c.differs })) };
    this.misses.push(miss);
    logger.warn('replay miss: %s %s (nearest: %s)', key.method, key.url, why.candidates[0]?.url ?? 'none');
    try {
      await onMiss?.(miss);
    } catch (err) {
      logger.warn('could not report the miss of %s %s: %s', key.method, key.url, (err as Error).message);
    }
    return { kind: 'miss', error: new ReplayMissError(why.text) };
  }

  #hit(v: Verified): ReplayAnswer {
    this.#init.stats.hits++;
    this.used.add(v.entryKey);
    return v.hit;
  }

  async #lookup(key: RequestKey): Promise<Verified | Explained> {
    const { netlock, source, trusted, quorum = 1, signaturesChecked = false } = this.#init;
    let nearby: readonly string[] = [];
    const found = await resolve(key, async (k) => {
      const looked = await netlock.lookup(k.id);
      if (k.id === key.id) nearby = looked.nearby;
      return looked.entry;
    });
    if (found === undefined) return explainMiss(key, nearby, netlock.root.toString());
    const { record } = await loadQuorumRecord(found.entry, found.key, source, trusted, quorum, { signaturesChecked });
    const verified: Verified = { record, entryKey: found.entry.key, hit: { kind: 'hit', record } };
    if (this.#init.keepFromSecondAnswer !== true || this.used.has(found.entry.key)) this.#verified?.set(key.id, verified);
    else {
      this.#fresh.set(key.id, verified);
      if (this.#fresh.size > MAX_FRESH) this.#fresh.delete(this.#fresh.keys().next().value!);
    }
    return verified;
  }
}
