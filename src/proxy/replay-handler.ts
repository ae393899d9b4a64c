import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { BadRequestError, BlockFetchTimeoutError, OracleError } from '../errors.ts';
import type { HeaderList } from '../protocol/headers.ts';
import { RAW_CODE, verifyBlockSync } from '../protocol/blocks.ts';
import type { FetchRecord } from '../protocol/record.ts';
import { planResponse } from '../protocol/replay.ts';
import type { ResponsePlan } from '../protocol/replay.ts';
import { loggableUrl } from '../protocol/request-key.ts';
import type { RequestKey, VariantRules } from '../protocol/request-key.ts';
import type { ExchangeHandler, HandlerInit } from './exchange.ts';
import { markOutcome, oneBlockBody, plainHead, readExchange, sendError, sendPlan } from './exchange.ts';
import type { AtOnceAnswer } from './hit-front.ts';
import { BodyBuffers } from './leaf-buffers.ts';
import type { BlockReader } from './leaf-buffers.ts';
import type { PlainRequest } from './request-head.ts';

/** Status of a replay miss: the gateway had no answer for it (design §5: fail-closed, explained). */
export const MISS_STATUS = 504;

/** Request keys kept for repeated GET/HEAD requests (least recently used out first). */
export const KEY_CACHE_ENTRIES = 4096;
/** Plans kept per record: one per method and `accept-encoding` value seen, a handful in practice. */
const PLANS_PER_RECORD = 8;
/** Request headers that make a plan differ from the plain one (ranges and validators): never cached. */
const PLAN_SPECIFIC_HEADERS = ['range', 'if-range', 'if-none-match', 'if-modified-since'] as const;

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
 *
 * A build asks for the same few requests over and over, so what follows from a request's method, URL and
 * variant headers alone is kept: its key (normalising a URL costs more than looking it up), and per record
 * the plan of a plain GET or HEAD (its head, flattened once). Ranges and conditional requests are planned
 * afresh. Nothing kept depends on the bytes on disk: every body block is still read and verified.
 */
export class ReplayHandler implements ExchangeHandler {
  readonly #init: ReplayHandlerInit;
  readonly #keys = new Map<string, RequestKey>();
  readonly #plans = new WeakMap<FetchRecord, Map<string, ResponsePlan>>();
  #rules: { value: VariantRules | undefined } | undefined;
  /** Headers that enter a key besides `accept`: every header any variant rule names. */
  #ruleHeaders: readonly string[] | undefined;

  /** Present when the store reads blocks at once and the decider keeps verified records (host replay). */
  readonly answerAtOnce: ((request: PlainRequest, headEnd: Buffer) => AtOnceAnswer | undefined) | undefined;

  constructor(init: ReplayHandlerInit) {
    this.#init = init;
    const { reader, replayer } = init;
    if (reader !== undefined && replayer.recordNow !== undefined && replayer.needsRequest !== true) {
      this.answerAtOnce = (request, headEnd) => this.#answerAtOnce(request, headEnd, reader, replayer);
    }
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    const { replayer, stats, logger } = this.#init;
    stats.requests++;
    try {
      if (replayer.needsRequest === true) {
        const rules = await replayer.variantRules();
        const ex = await readExchange(req, url, rules === undefined ? {} : { variantRules: rules });
        await this.#answerWith(res, req, await replayer.answer(ex.key, { url: ex.url, headers: ex.headers }));
        return;
      }
      // The netlock root is read once: its rules never change.
      if (this.#rules === undefined) this.#rules = { value: await replayer.variantRules() };
      const rules = this.#rules.value;
      const cacheKey = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined ? undefined : this.#keyCacheKey(req.method, url, (n) => req.headers[n], rules);
      let key = cacheKey === undefined ? undefined : this.#keys.get(cacheKey);
      if (key === undefined) {
        // Replay needs only the request body's digest, never its bytes: nothing is kept.
        key = (await readExchange(req, url, rules === undefined ? {} : { variantRules: rules })).key;
        if (cacheKey !== undefined) this.#keepKey(cacheKey, key);
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
    await sendPlan(res, this.#plan(answer.record, req.method ?? 'GET', (n) => req.headers[n], req.headers), source, stats, logger, this.#init.reader);
  }

  /**
   * Answers a plain GET or HEAD at once when everything it needs is at hand: its key seen before, its record
   * verified before, its body one block the store reads at once (`readKept`). The block is verified as on
   * every answer; one that fails is left to `handle`, which reads it again and answers 502.
   */
  #answerAtOnce(request: PlainRequest, headEnd: Buffer, reader: BlockReader, replayer: ReplayDecider): AtOnceAnswer | undefined {
    const rules = this.#rules;
    if (rules === undefined) return undefined;
    const field = (name: string): string | undefined => request.field(name);
    if (PLAN_SPECIFIC_HEADERS.some((h) => field(h) !== undefined)) return undefined;
    const key = this.#keys.get(this.#keyCacheKey(request.method, request.url, field, rules.value)!);
    const record = key === undefined ? undefined : replayer.recordNow!(key);
    if (record === undefined) return undefined;
    const plan = this.#plan(record, request.method, field);
    const head = plainHead(plan, request.method, headEnd);
    if (head === null) return undefined;
    let bytes: Uint8Array = head.bytes;
    let bodyBytes = 0;
    if (plan.body !== null) {
      const { cid, parts } = plan.body;
      if (cid.code !== RAW_CODE) return undefined;
      // The block is read into memory just after a copy of the head: the answer is one write.
      let whole: Uint8Array | undefined;
      const headLength = head.bytes.byteLength;
      const block = reader.readKept(cid, (size) => (whole = BodyBuffers.take(headLength + size)).subarray(headLength));
      if (block === undefined) return undefined;
      try {
        verifyBlockSync(cid, block);
        const [part, more] = oneBlockBody(cid, parts, block);
        if (more !== undefined || (part !== undefined && part.byteLength !== block.byteLength)) return undefined;
      } catch {
        return undefined;
      }
      head.bytes.copy(whole!);
      bytes = whole!;
      bodyBytes = block.byteLength;
    }
    replayer.answerNow!(key!);
    const { stats } = this.#init;
    stats.requests++;
    stats.answeredAtOnce++;
    stats.bytesServed += bodyBytes;
    return { bytes, lent: bodyBytes > 0, status: plan.status, bodyBytes, contentType: head.contentType };
  }

  /**
   * What a GET or HEAD without a body is keyed by: method, URL as sent and the variant headers; undefined
   * for any other request (its body enters the key, or the request is unusual enough to read in full).
   */
  #keyCacheKey(method: string | undefined, url: string, field: FieldOf, rules: VariantRules | undefined): string | undefined {
    if (method !== 'GET' && method !== 'HEAD') return undefined;
    let k = `${method}\n${url}\n${headerText(field('accept'))}`;
    if (rules !== undefined) {
      this.#ruleHeaders ??= [...new Set(Object.values(rules).flat().map((h) => h.toLowerCase()))].sort();
      for (const h of this.#ruleHeaders) k += `\n${headerText(field(h))}`;
    }
    return k;
  }

  #keepKey(cacheKey: string, key: RequestKey): void {
    this.#keys.set(cacheKey, key);
    if (this.#keys.size > KEY_CACHE_ENTRIES) this.#keys.delete(this.#keys.keys().next().value!);
  }

  /** The plan for a request from `record`: kept per record for plain requests, made afresh for ranges and validators. */
  #plan(record: FetchRecord, method: string, field: FieldOf, headers?: IncomingHttpHeaders): ResponsePlan {
    if (headers !== undefined && PLAN_SPECIFIC_HEADERS.some((h) => headers[h] !== undefined)) return planResponse(record, { method, headers });
    const acceptEncoding = field('accept-encoding');
    const k = `${method}\n${headerText(acceptEncoding)}`;
    let plans = this.#plans.get(record);
    const kept = plans?.get(k);
    if (kept !== undefined) return kept;
    // A plain request: only its accept-encoding enters the plan.
    const plan = planResponse(record, { method, headers: acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding } });
    if (plans === undefined) this.#plans.set(record, (plans = new Map<string, ResponsePlan>()));
    if (plans.size >= PLANS_PER_RECORD) plans.clear();
    plans.set(k, plan);
    return plan;
  }
}

/** A request's header field by lower-case name (an IncomingMessage's, or a plain request's). */
type FieldOf = (name: string) => string | string[] | undefined;

/** A header's value as one string, absent and repeated ones told apart (header values never hold NUL). */
function headerText(v: string | string[] | undefined): string {
  return v === undefined ? '\u0000' : Array.isArray(v) ? v.join('\u0000') : v;
}
