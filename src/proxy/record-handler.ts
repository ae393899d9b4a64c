import type { IncomingMessage, ServerResponse } from 'node:http';
import { BadRequestError, BlockCorruptError, BlockMissingError, OracleError, TruncatedBodyError, UpstreamError, UpstreamTimeoutError } from '../errors.ts';
import { AbortSwitch } from '../io/abort-switch.ts';
import type { AbortOptions } from '../protocol/blocks.ts';
import type { HeaderList } from '../protocol/headers.ts';
import type { FetchRecord } from '../protocol/record.ts';
import { planResponse } from '../protocol/replay.ts';
import type { RequestKey, VariantRules } from '../protocol/request-key.ts';
import type { DecodedEntry } from '../netlock/file.ts';
import type { Exchange, ExchangeHandler, HandlerInit, RequestBody, ResponseHead } from './exchange.ts';
import { markOutcome, planBody, readExchange, sendError, sendPlanBody, sendResponse, startBody } from './exchange.ts';
import { spoolRequestBody } from './request-body.ts';

/** A request as the recorder needs it: from a proxied exchange, or built by `seed`. */
export interface RecorderRequest {
  /** Absolute URL as the client sent it (credentials included): what the upstream fetch uses. */
  readonly url: string;
  /** Request headers sent upstream (names lower-cased); only the variant headers enter the key. */
  readonly headers: HeaderList;
  readonly body: RequestBody | undefined;
  readonly key: RequestKey;
}

export interface RecordOptions extends AbortOptions {
  /**
   * Aborted when the client that asked has gone. The upstream fetch then stops only if the client left
   * before every declared byte and nobody else waits for it (nothing partial is recorded).
   */
  clientGone?: AbortSwitch;
  /** Answer a fresh fetch as it arrives (`live`) rather than once it is recorded. Ranged and conditional
   * requests are still answered from the stored record. @default false */
  live?: boolean;
  /**
   * A request that got no answer at all (DNS, refused, TLS, timeout) is answered as the build saw it: the
   * recorded answer when there is one, else a recorded 502. Otherwise the UpstreamError is thrown (`seed`
   * promises a body). @default false
   */
  answerFailures?: boolean;
  /**
   * Runs on the record that would answer, before it is committed or added to this run (a lockfile's digest,
   * an expected status); throwing refuses it, and a fresh record is then not recorded.
   */
  check?: (record: FetchRecord) => Promise<void>;
}

/** The recorder's answer: a committed entry (to plan from the store), or a fresh fetch as it arrives. */
export type RecorderAnswer =
  | { readonly kind: 'stored'; readonly entry: DecodedEntry; readonly fetched: boolean }
  | {
      readonly kind: 'live';
      /** The head as the origin sent it (see `liveResponseHead`). */
      readonly head: ResponseHead;
      /** The body as it is imported; it ends only after the record is committed and journalled, so a
       * client never sees a complete body that was not recorded, and fails if nothing is recorded. */
      readonly body: AsyncIterable<Uint8Array>;
      /** Settles once the fetch is recorded (or not). */
      readonly done: Promise<DecodedEntry>;
      /** The reader will take no more: the recording goes on without it. Idempotent. */
      leave(): void;
    };

/** What the record handler asks of the recorder (`src/oracle/recorder.ts`). */
export interface ExchangeRecorder {
  readonly variantRules: VariantRules | undefined;
  record(request: RecorderRequest, options?: RecordOptions): Promise<RecorderAnswer>;
  /**
   * A recorded body failed verification while it was served (a block corrupt or missing): the recorder
   * sets the bad block aside and fetches the request again the next time it is asked (`record`), which
   * repairs the store when the origin still sends the same bytes.
   */
  bodyFailed(entry: DecodedEntry, err: BlockCorruptError | BlockMissingError): Promise<void>;
}

/** A failure of a recorded body's blocks: what a re-fetch repairs. */
function isBlockFailure(err: unknown): err is BlockCorruptError | BlockMissingError {
  return err instanceof BlockCorruptError || err instanceof BlockMissingError;
}

export interface RecordHandlerInit extends HandlerInit {
  recorder: ExchangeRecorder;
}

/** The proxy's record mode: reads a request, asks the recorder, streams its answer. */
export class RecordHandler implements ExchangeHandler {
  readonly #init: RecordHandlerInit;

  constructor(init: RecordHandlerInit) {
    this.#init = init;
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    const { recorder, stats, logger } = this.#init;
    stats.requests++;
    let ex: Exchange;
    try {
      ex = await readExchange(req, url, { readBody: spoolRequestBody, ...(recorder.variantRules === undefined ? {} : { variantRules: recorder.variantRules }) });
    } catch (err) {
      stats.errors++;
      markOutcome(res, 'error');
      sendError(res, err instanceof BadRequestError ? err.status : 400, err as Error);
      return;
    }
    const gone = new AbortSwitch();
    const onClose = (): void => {
      if (!res.writableFinished) gone.abort();
    };
    res.on('close', onClose);
    try {
      const options: RecordOptions = { live: true, answerFailures: true, clientGone: gone };
      let answer = await recorder.record(ex, options);
      markOutcome(res, answer.kind === 'stored' && !answer.fetched ? 'hit' : 'recorded');
      if (answer.kind === 'stored') {
        // A request body only keys a recorded answer; a spool file is gone before the client has its answer.
        await ex.body?.dispose();
        // A recorded body found broken before the head (a single-block body, the first block of a larger
        // one) is fetched again for this very request, when it has no body to send again.
        if ((await this.#sendStored(ex, res, answer.entry, ex.body === undefined)) === 'sent') return;
        answer = await recorder.record(ex, options);
        markOutcome(res, 'recorded');
        if (answer.kind === 'stored') {
          await this.#sendStored(ex, res, answer.entry, false);
          return;
        }
      }
      try {
        await sendResponse(res, answer.head, answer.body, stats);
      } finally {
        answer.leave();
      }
      // A client that left early does not end the recording: the answer is recorded before this returns.
      await answer.done;
    } catch (err) {
      stats.errors++;
      markOutcome(res, 'error');
      const status = err instanceof UpstreamTimeoutError ? 504 : err instanceof UpstreamError || err instanceof TruncatedBodyError || err instanceof OracleError ? 502 : 500;
      logger.error('%s %s: %s', ex.key.method, ex.key.url, (err as Error).message);
      sendError(res, status, err as Error);
    } finally {
      res.off('close', onClose);
      await ex.body?.dispose();
    }
  }

  /**
   * Sends a recorded answer. Its body's first block is read before the head: when that fails and `retry`,
   * resolves 'refetch' with nothing sent (the recorder has set the block aside and will fetch again);
   * otherwise such a failure throws, for the caller's error answer. A body that fails mid-stream ends the
   * transfer, and the recorder fetches it again for the next request.
   */
  async #sendStored(ex: Exchange, res: ServerResponse, entry: DecodedEntry, retry: boolean): Promise<'sent' | 'refetch'> {
    const { recorder, source, stats, logger } = this.#init;
    const plan = planResponse(entry.record, { method: ex.key.method, headers: ex.req.headers });
    let body: AsyncIterable<Uint8Array> | null;
    try {
      body = await startBody(planBody(plan, source));
    } catch (err) {
      if (!isBlockFailure(err)) throw err;
      await recorder.bodyFailed(entry, err);
      if (!retry) throw err;
      logger.warn('recorded body %s of %s %s is unusable (%s): fetching it again for this request', plan.body?.cid.toString() ?? '-', entry.record.request.method, entry.record.request.url, err.message);
      return 'refetch';
    }
    const failed = await sendPlanBody(res, plan, body, stats, logger);
    if (isBlockFailure(failed)) await recorder.bodyFailed(entry, failed);
    return 'sent';
  }
}
