import { ReplayMissError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { BlockSource } from '../protocol/blocks.ts';
import { explainMiss } from '../protocol/explain.ts';
import type { RequestKey, VariantRules } from '../protocol/request-key.ts';
import { resolve } from '../protocol/resolve.ts';
import { loadVerifiedRecord } from '../protocol/verify-record.ts';
import type { NetlockReader } from '../netlock/dag.ts';
import type { ReplayAnswer, ReplayDecider } from '../proxy/replay-handler.ts';
import type { OracleStats } from './stats.ts';

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
  stats: OracleStats;
  logger: Logger;
  /**
   * Told of each miss before the client gets its 504 (the guest shim reports it to the host over GIO 0x27,
   * so the host has heard of every miss the command saw). A failure is logged, never the client's problem.
   */
  onMiss?: (miss: ReplayMiss) => void | Promise<void>;
}

/** The replay decision without sockets: the core's `resolve` over the netlock, every record verified. */
export class Replayer implements ReplayDecider {
  readonly #init: ReplayerInit;
  readonly misses: ReplayMiss[] = [];
  /** Netlock keys that answered a request. */
  readonly used = new Set<string>();

  constructor(init: ReplayerInit) {
    this.#init = init;
  }

  async variantRules(): Promise<VariantRules | undefined> {
    return (await this.#init.netlock.rootValue()).variantRules;
  }

  async answer(key: RequestKey): Promise<ReplayAnswer> {
    const { netlock, source, trusted, stats, logger } = this.#init;
    let nearby: readonly string[] = [];
    const found = await resolve(key, async (k) => {
      const looked = await netlock.lookup(k.id);
      if (k.id === key.id) nearby = looked.nearby;
      return looked.entry;
    });
    if (found === undefined) {
      stats.misses++;
      const why = explainMiss(key, nearby, netlock.root.toString());
      const miss: ReplayMiss = { method: key.method, url: key.url, accept: key.variant['accept'] ?? '', nearest: why.candidates.map((c) => ({ method: c.method, url: c.url, differs: c.differs })) };
      this.misses.push(miss);
      logger.warn('replay miss: %s %s (nearest: %s)', key.method, key.url, why.candidates[0]?.url ?? 'none');
      try {
        await this.#init.onMiss?.(miss);
      } catch (err) {
        logger.warn('could not report the miss of %s %s: %s', key.method, key.url, (err as Error).message);
      }
      return { kind: 'miss', error: new ReplayMissError(why.text) };
    }
    const record = await loadVerifiedRecord(found.entry.signed, found.key, source, trusted);
    stats.hits++;
    this.used.add(found.entry.key);
    return { kind: 'hit', record };
  }
}
