import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { loggableUrl } from '../protocol/request-key.ts';
import type { ExchangeHandler } from '../proxy/exchange.ts';
import { outcomeOf } from '../proxy/exchange.ts';
import type { OracleMetrics, RequestOutcome } from './metrics.ts';

/** One answered request, as the live page shows it (short names: a page may hold 100,000 of them). */
export interface RequestEvent {
  /** Sequence number, from 0. */
  i: number;
  m: string;
  /** The URL without credentials (as the log prints it). */
  u: string;
  /** Status sent (0 when the client went before a head). */
  s: number;
  /** Body bytes sent. */
  z: number;
  /** Content type sent. */
  c: string;
  o: RequestOutcome;
  /** Start, in ms since the oracle started. */
  t: number;
  /** Duration in ms. */
  d: number;
  /** Redirect target, when the answer is a redirect. */
  l?: string;
}

export interface RequestLogSnapshot {
  /** Epoch ms of the oracle's start (`t` counts from it). */
  started: number;
  counts: Record<RequestOutcome, number>;
  /** Events dropped from the front to stay within capacity. */
  dropped: number;
  events: readonly RequestEvent[];
}

/** Requests kept for the live page: the newest first out of the window beyond this many. */
export const REQUEST_LOG_CAPACITY = 100_000;

/** The requests an oracle answered, in order, with the counts by outcome (the live page's timeline). */
export class RequestLog {
  readonly started = Date.now();
  readonly #t0 = performance.now();
  readonly #capacity: number;
  /** Events as logged: `u` is the URL as the client sent it until `snapshot` makes it loggable (normalising
   * costs more than answering a replayed request, so it is done only for the events a page asks for). */
  #events: Array<RequestEvent & { raw?: true }> = [];
  #dropped = 0;
  #next = 0;
  readonly #counts: Record<RequestOutcome, number> = { hit: 0, miss: 0, recorded: 0, error: 0 };
  readonly #metrics: OracleMetrics | undefined;

  constructor(options: { capacity?: number; metrics?: OracleMetrics } = {}) {
    this.#capacity = options.capacity ?? REQUEST_LOG_CAPACITY;
    this.#metrics = options.metrics;
  }

  /** How many requests have been logged in all (dropped ones included). */
  get size(): number {
    return this.#next;
  }

  /** The counts and the events kept, only those numbered above `after` when given. */
  snapshot(after?: number): RequestLogSnapshot {
    const first = this.#events[0]?.i ?? 0;
    const from = after === undefined ? 0 : Math.max(0, Math.min(this.#events.length, after + 1 - first));
    const events = this.#events.slice(from);
    for (const e of events) {
      if (e.raw === true) {
        e.u = loggableUrl(e.u);
        delete e.raw;
      }
    }
    return { started: this.started, counts: { ...this.#counts }, dropped: this.#dropped, events };
  }

  /** `handler`, with every request it answers logged (and counted in the metrics) once its response closes. */
  observe(handler: ExchangeHandler): ExchangeHandler {
    return { handle: (req, res, url) => this.#handle(handler, req, res, url) };
  }

  #handle(handler: ExchangeHandler, req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    const start = performance.now();
    let bytes = 0;
    const count = (chunk: unknown): void => {
      if (chunk instanceof Uint8Array) bytes += chunk.byteLength;
      else if (typeof chunk === 'string') bytes += Buffer.byteLength(chunk);
    };
    const write = res.write.bind(res) as (...args: unknown[]) => boolean;
    const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
    res.write = ((chunk: unknown, ...rest: unknown[]) => {
      count(chunk);
      return write(chunk, ...rest);
    }) as ServerResponse['write'];
    res.end = ((chunk?: unknown, ...rest: unknown[]) => {
      if (typeof chunk !== 'function') count(chunk);
      return end(chunk, ...rest);
    }) as ServerResponse['end'];
    res.once('close', () => {
      const location = res.getHeader('location');
      const status = res.headersSent ? res.statusCode : 0;
      this.#add({
        m: req.method ?? 'GET',
        u: url,
        raw: true,
        s: status,
        z: bytes,
        c: headerString(res.getHeader('content-type')),
        o: outcomeOf(res) ?? 'error',
        t: Math.round(start - this.#t0),
        d: Math.round((performance.now() - start) * 10) / 10,
        ...(status >= 300 && status < 400 && location !== undefined ? { l: headerString(location) } : {}),
      });
    });
    return handler.handle(req, res, url);
  }

  #add(e: Omit<RequestEvent, 'i'> & { raw: true }): void {
    this.#events.push({ i: this.#next++, ...e });
    this.#counts[e.o]++;
    this.#metrics?.request(e.o);
    if (this.#events.length > this.#capacity) {
      // Dropped in batches, so a full log does not copy its array on every request.
      const drop = Math.max(1, Math.floor(this.#capacity / 10));
      this.#events = this.#events.slice(drop);
      this.#dropped += drop;
    }
  }
}

function headerString(v: number | string | string[] | undefined): string {
  return v === undefined ? '' : Array.isArray(v) ? v.join(', ') : String(v);
}
