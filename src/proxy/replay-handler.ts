import type { IncomingMessage, ServerResponse } from 'node:http';
import { BadRequestError, OracleError } from '../errors.ts';
import type { HeaderList } from '../protocol/headers.ts';
import type { FetchRecord } from '../protocol/record.ts';
import { planResponse } from '../protocol/replay.ts';
import { loggableUrl } from '../protocol/request-key.ts';
import type { RequestKey, VariantRules } from '../protocol/request-key.ts';
import type { ExchangeHandler, HandlerInit } from './exchange.ts';
import { readExchange, sendError, sendPlan } from './exchange.ts';

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
}

export interface ReplayHandlerInit extends HandlerInit {
  replayer: ReplayDecider;
}

/** The proxy's replay mode: answers only from the netlock, fail-closed. It has no upstream client at all. */
export class ReplayHandler implements ExchangeHandler {
  readonly #init: ReplayHandlerInit;

  constructor(init: ReplayHandlerInit) {
    this.#init = init;
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    const { replayer, source, stats, logger } = this.#init;
    stats.requests++;
    try {
      const rules = await replayer.variantRules();
      // Replay needs only the request body's digest, never its bytes: nothing is kept.
      const ex = await readExchange(req, url, rules === undefined ? {} : { variantRules: rules });
      const answer = await replayer.answer(ex.key, { url: ex.url, headers: ex.headers });
      if (answer.kind === 'miss') {
        sendError(res, MISS_STATUS, answer.error, { 'x-fetch-oracle-miss': '1' });
        return;
      }
      await sendPlan(res, planResponse(answer.record, { method: ex.key.method, headers: req.headers }), source, stats, logger);
    } catch (err) {
      stats.errors++;
      const status = err instanceof BadRequestError ? err.status : 502;
      if (!(err instanceof BadRequestError)) logger.error('replay of %s failed: %s', loggableUrl(url), (err as Error).message);
      sendError(res, status, err instanceof OracleError ? err : (err as Error));
    }
  }
}
