import type { IncomingMessage, ServerResponse } from 'node:http';
import { BadRequestError, BlockFetchTimeoutError, OracleError } from '../errors.ts';
import type { HeaderList } from '../protocol/headers.ts';
import type { FetchRecord } from '../protocol/record.ts';
import { loggableUrl } from '../protocol/request-key.ts';
import type { RequestKey, VariantRules } from '../protocol/request-key.ts';
import type { ExchangeHandler, HandlerInit } from './exchange.ts';
import { markOutcome, readExchange, sendError, sendPlan } from './exchange.ts';
import type { AnswerPlain } from './hit-front.ts';
import type { BlockReader } from './leaf-buffers.ts';
import { PlainReplay } from './plain-replay.ts';
import { headerFields, ReplayMemo } from './replay-memo.ts';

/** Status of a replay miss: the gateway had no answer for it (design §5: fail-closed, explained). */
export const MISS_STATUS = 504;


/** The replay decision for one request: the verified record that answers it, or an explained miss. */
export type ReplayAnswer = { readonly kind: 'hit'; readonly record: FetchRecord } | { readonly kind: 'miss'; readonly error: OracleError };

/**
 * The request as the client sent it, for a decider that must repeat it upstream (the guest recording through
 * the device): the key drops credentials and every header but the variant ones, which an origin may need.
 */
export interface ReplayRequest {
  /** Absolute URL as the client sent it (credential parameters included). */
  readonly url: string;
  /** The client's request headers, names lower-cased. */
  readonly headers: HeaderList;
}

/** What the replay handler asks of the replayer (`src/oracle/replayer.ts`). */
export interface ReplayDecider {
  /** The netlock's extra variant rules (its keys were computed with them). */
  variantRules(): Promise<VariantRules | undefined>;
  answer(key: RequestKey, request?: ReplayRequest): Promise<ReplayAnswer>;
  /** The answer when it is at hand without any I/O (a record verified before), else undefined. */
  answerNow?(key: RequestKey): ReplayAnswer | undefined;
  /** The record `answerNow` would answer with, without counting a hit (undefined: not at hand). */
  recordNow?(key: RequestKey): FetchRecord | undefined;
  /** Looks the key up and verifies its record, so that `recordNow` has it (a miss: it stays undefined); counts nothing. */
  prepare?(key: RequestKey): Promise<void>;
  /**
   * The decider repeats requests upstream (the guest recording through the device), so it needs each one as
   * the client sent it: the handler then reads every request in full instead of reusing a kept key.
   */
  readonly needsRequest?: boolean;
}

export interface ReplayHandlerInit extends HandlerInit {
  stats: HandlerInit['stats'] & { answeredAtOnce: number };
  replayer: ReplayDecider;
  /** The store under `source`, when it can read blocks into given memory: large bodies then reuse their buffers. */
  reader?: BlockReader;
}

/**
 * The proxy's replay mode: answers only from the netlock, fail-closed. It has no upstream client at all.
 * Plain GET and HEAD requests are answered by the proxy's front where it can (`plain-replay.ts`), the rest
 * here, through Node's server; both keep what they learn in one `ReplayMemo`.
 */
export class ReplayHandler implements ExchangeHandler {
  readonly #init: ReplayHandlerInit;
  readonly #memo = new ReplayMemo();
  /** Present when the store reads blocks into given memory and the decider keeps verified records (host replay). */
  readonly answerPlain: AnswerPlain | undefined;

  constructor(init: ReplayHandlerInit) {
    this.#init = init;
    const { reader, replayer } = init;
    if (reader !== undefined && PlainReplay.canAnswer(replayer)) {
      const plain = new PlainReplay({ memo: this.#memo, replayer, reader, stats: init.stats });
      this.answerPlain = (request, headEnd) => plain.answer(request, headEnd);
    }
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    const { replayer, stats, logger } = this.#init;
    const memo = this.#memo;
    stats.requests++;
    try {
      if (replayer.needsRequest === true) {
        const rules = await replayer.variantRules();
        const ex = await readExchange(req, url, rules === undefined ? {} : { variantRules: rules });
        await this.#answerWith(res, req, await replayer.answer(ex.key, { url: ex.url, headers: ex.headers }));
        return;
      }
      memo.rules ??= { value: await replayer.variantRules() };
      const rules = memo.rules.value;
      const cacheKey = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined ? undefined : memo.cacheKey(req.method, url, headerFields(req.headers));
      let key = cacheKey === undefined ? undefined : memo.key(cacheKey);
      if (key === undefined) {
        // Replay needs only the request body's digest, never its bytes: nothing is kept.
        key = (await readExchange(req, url, rules === undefined ? {} : { variantRules: rules })).key;
        if (cacheKey !== undefined) memo.keepKey(cacheKey, key);
      }
      await this.#answerWith(res, req, replayer.answerNow?.(key) ?? (await replayer.answer(key)));
    } catch (err) {
      stats.errors++;
      markOutcome(res, 'error');
      // A block no Kubo peer sent in time is the gateway timing out (504), as an origin timeout is in record mode.
      const status = err instanceof BadRequestError ? err.status : err instanceof BlockFetchTimeoutError ? 504 : 502;
      if (!(err instanceof BadRequestError)) logger.error('replay of %s failed: %s', loggableUrl(url), (err as Error).message);
      sendError(res, status, err instanceof OracleError ? err : (err as Error));
    }
  }

  async #answerWith(res: ServerResponse, req: IncomingMessage, answer: ReplayAnswer): Promise<void> {
    markOutcome(res, answer.kind);
    if (answer.kind === 'miss') {
      sendError(res, MISS_STATUS, answer.error, { 'x-fetch-oracle-miss': '1' });
      return;
    }
    const { source, stats, logger } = this.#init;
    await sendPlan(res, this.#memo.plan(answer.record, req.method ?? 'GET', headerFields(req.headers), req.headers), source, stats, logger, this.#init.reader);
  }
}
