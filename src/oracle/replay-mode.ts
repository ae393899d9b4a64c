import type { IncomingMessage, ServerResponse } from 'node:http';
import { BadRequestError, InvalidRecordError, OracleError, ReplayMissError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { BlockSource } from '../protocol/blocks.ts';
import { verifyingSource } from '../protocol/blocks.ts';
import { explainMiss } from '../protocol/explain.ts';
import type { NetlockReader } from '../netlock/dag.ts';
import { decodeRecord } from '../protocol/record.ts';
import type { FetchRecord } from '../protocol/record.ts';
import { planResponse } from '../protocol/replay.ts';
import { withMethod } from '../protocol/request-key.ts';
import type { RequestKey } from '../protocol/request-key.ts';
import { assertTrustedKey, verifyRecordSignature } from '../protocol/signature.ts';
import type { SignedRecord } from '../protocol/signature.ts';
import type { ExchangeHandler } from '../proxy/exchange.ts';
import { readExchange, sendError, sendPlan } from '../proxy/exchange.ts';
import type { OracleStats } from './stats.ts';

export const MISS_STATUS = 504;

export interface ReplayMiss {
  method: string;
  url: string;
  accept: string;
  nearest: Array<{ method: string; url: string; differs: readonly string[] }>;
}

/**
 * Loads and checks the record a netlock entry names: block hash, signature by a trusted key, and that
 * the record really answers this request key (a netlock cannot re-point a key at another URL's record).
 */
export async function loadVerifiedRecord(signed: SignedRecord, key: RequestKey, source: BlockSource, trusted: readonly Uint8Array[]): Promise<FetchRecord> {
  const record = decodeRecord(await verifyingSource(source).get(signed.record));
  verifyRecordSignature(signed, record.oracle);
  assertTrustedKey(record.oracle, trusted, `Record ${signed.record}`);
  const r = record.request;
  const sameVariant = Object.entries(key.variant).every(([h, v]) => (r.headers[h] ?? '') === v);
  if (r.method !== key.method || r.url !== key.url || !sameVariant || (r.bodyDigest ?? '') !== (key.bodyDigest ?? '')) {
    throw new InvalidRecordError(`Record ${signed.record} answers ${r.method} ${r.url}, not the netlock key ${key.method} ${key.url}`);
  }
  return record;
}

export interface ReplayModeInit {
  netlock: NetlockReader;
  /** Blocks: records, index pages and bodies; verified on every read. */
  source: BlockSource;
  trusted: readonly Uint8Array[];
  stats: OracleStats;
  logger: Logger;
}

/** Replay mode: answers only from the netlock, fail-closed. It has no upstream client at all. */
export class ReplayMode implements ExchangeHandler {
  readonly #init: ReplayModeInit;
  readonly misses: ReplayMiss[] = [];
  readonly used = new Set<string>();

  constructor(init: ReplayModeInit) {
    this.#init = init;
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    const { stats, logger, netlock, source, trusted } = this.#init;
    stats.requests++;
    let ex: Awaited<ReturnType<typeof readExchange>> | undefined;
    try {
      ex = await readExchange(req, res, url, (await netlock.rootValue()).variantRules);
      await ex.body?.dispose(); // replay needs only the body's digest, never its bytes
      let key = ex.key;
      const looked = await netlock.lookup(key.id);
      const nearby = looked.nearby;
      let entry = looked.entry;
      if (entry === undefined && key.method === 'HEAD') {
        // HEAD is answered from a recorded GET of the same URL and variant.
        const get = withMethod(key, 'GET');
        const found = await netlock.lookup(get.id);
        if (found.entry !== undefined) {
          entry = found.entry;
          key = get;
        }
      }
      if (entry === undefined) {
        stats.misses++;
        const why = explainMiss(ex.key, nearby, netlock.root.toString());
        this.misses.push({
          method: ex.key.method,
          url: ex.key.url,
          accept: ex.key.variant['accept'] ?? '',
          nearest: why.candidates.map((c) => ({ method: c.method, url: c.url, differs: c.differs })),
        });
        logger.warn('replay miss: %s %s (nearest: %s)', ex.key.method, ex.key.url, why.candidates[0]?.url ?? 'none');
        sendError(res, MISS_STATUS, new ReplayMissError(why.text), { 'x-fetch-oracle-miss': '1' });
        return;
      }
      const record = await loadVerifiedRecord(entry.signed, key, source, trusted);
      stats.hits++;
      this.used.add(entry.key);
      await sendPlan(res, planResponse(record, { method: ex.key.method, headers: req.headers }), source, stats, logger);
    } catch (err) {
      stats.errors++;
      const status = err instanceof BadRequestError ? err.status : 502;
      if (!(err instanceof BadRequestError)) logger.error('replay of %s failed: %s', url, (err as Error).message);
      sendError(res, status, err instanceof OracleError ? err : (err as Error));
    } finally {
      await ex?.body?.dispose();
    }
  }
}
