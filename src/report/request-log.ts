import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { loggableUrl } from '../protocol/request-key.ts';
import type { ExchangeHandler } from '../proxy/exchange.ts';
import type { AtOnceAnswer } from '../proxy/hit-front.ts';
import { outcomeOf } from '../proxy/exchange.ts';
import { TextRing } from '../io/text-ring.ts';
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

/** Requests kept for the live page: the oldest leave the window beyond this many. */
export const REQUEST_LOG_CAPACITY = 100_000;

/**
 * One event as the log holds it: `[m, u (as the client sent it), s, z, c, o, t, d, l?]` as one JSON string. A
 * flat string of ~150 bytes is all the heap holds per request; an event object (with its URL made loggable in
 * place, which left it in V8's dictionary mode) cost ~1.2 KB, so 100,000 of them put a record run with the
 * live page open 120 MB over one without (issue #15).
 */
type HeldEvent = [string, string, number, number, string, RequestOutcome, number, number, string?];

/**
 * The requests an oracle answered, in order, with the counts by outcome (the live page's timeline). With
 * `spillDir` (a recording oracle's data directory) the events wait in scratch files there (`TextRing`), and
 * the process holds 8 bytes a request.
 */
export class RequestLog {
  readonly started = Date.now();
  readonly #t0 = performance.now();
  /** The events kept. The URL in each is made loggable only when a snapshot reads it (normalising costs more
   * than answering a replayed request). */
  readonly #events: TextRing;
  readonly #counts: Record<RequestOutcome, number> = { hit: 0, miss: 0, recorded: 0, error: 0 };
  readonly #metrics: OracleMetrics | undefined;

  constructor(options: { capacity?: number; metrics?: OracleMetrics; spillDir?: string } = {}) {
    this.#events = new TextRing(options.capacity ?? REQUEST_LOG_CAPACITY, options.spillDir);
    this.#metrics = options.metrics;
  }

  /** How many requests have been logged in all (dropped ones included). */
  get size(): number {
    return this.#events.next;
  }

  /** The counts and the events kept, only those numbered above `after` when given. */
  snapshot(after?: number): RequestLogSnapshot {
    const { pages, ...rest } = this.pages(after);
    return { ...rest, events: [...pages].flat() };
  }

  /**
   * `snapshot` with its events read a page at a time as `pages` is iterated (a page opened over a long run is
   * sent up to 100,000 of them); the window is the one at this call.
   */
  pages(after?: number, pageSize = 256): Omit<RequestLogSnapshot, 'events'> & { pages: Iterable<RequestEvent[]> } {
    const { first, next } = this.#events;
    const from = after === undefined ? first : Math.max(first, Math.min(next, after + 1));
    const read = (i: number): RequestEvent => {
      const [m, raw, s, z, c, o, t, d, l] = JSON.parse(this.#events.read(i)) as HeldEvent;
      return { i, m, u: loggableUrl(raw), s, z, c, o, t, d, ...(l === undefined ? {} : { l }) };
    };
    const pages = function* (): Generator<RequestEvent[]> {
      for (let i = from; i < next; i += pageSize) yield Array.from({ length: Math.min(pageSize, next - i) }, (_, n) => read(i + n));
    };
    return { started: this.started, counts: { ...this.#counts }, dropped: first, pages: pages() };
  }

  /** Frees the scratch files (events logged afterwards are held in the heap). Idempotent. */
  close(): void {
    this.#events.close();
  }

  /** `handler`, with every request it answers logged (and counted in the metrics) once its response closes. */
  observe(handler: ExchangeHandler): ExchangeHandler {
    const observed: ExchangeHandler = { handle: (req, res, url) => this.#handle(handler, req, res, url) };
    const atOnce = handler.answerPlain?.bind(handler);
    if (atOnce !== undefined) {
      observed.answerPlain = (request, headEnd) => {
        const start = performance.now();
        const logged = (answer: AtOnceAnswer | undefined): AtOnceAnswer | undefined => {
          if (answer !== undefined) this.#add([request.method, request.url, answer.status, answer.bodyBytes, answer.contentType, 'hit', Math.round(start - this.#t0), Math.round((performance.now() - start) * 10) / 10]);
          return answer;
        };
        const answer = atOnce(request, headEnd);
        return answer instanceof Promise ? answer.then(logged) : logged(answer);
      };
    }
    return observed;
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
    // Fields given to `writeHead` (as the proxy gives them) never reach `getHeader`: noted on the way.
    let written: unknown;
    const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
    res.writeHead = ((...args: unknown[]) => {
      written = args.find((a) => typeof a === 'object' && a !== null);
      return writeHead(...args);
    });
    res.once('close', () => {
      const field = (name: string): string => headerString(fieldIn(written, name) ?? res.getHeader(name));
      const location = field('location');
      const status = res.headersSent ? res.statusCode : 0;
      const event: HeldEvent = [req.method ?? 'GET', url, status, bytes, field('content-type'), outcomeOf(res) ?? 'error', Math.round(start - this.#t0), Math.round((performance.now() - start) * 10) / 10];
      if (status >= 300 && status < 400 && location !== '') event.push(location);
      this.#add(event);
    });
    return handler.handle(req, res, url);
  }

  #add(event: HeldEvent): void {
    this.#events.push(JSON.stringify(event));
    this.#counts[event[5]]++;
    this.#metrics?.request(event[5]);
  }
}

/** A field's value in what `writeHead` was given: a flat list, a list of pairs, or an object. */
function fieldIn(headers: unknown, name: string): string | undefined {
  if (Array.isArray(headers)) {
    const flat: unknown[] = (headers as unknown[]).flat();
    for (let i = 0; i + 1 < flat.length; i += 2) if (String(flat[i]).toLowerCase() === name) return String(flat[i + 1]);
    return undefined;
  }
  if (headers === undefined) return undefined;
  for (const [n, v] of Object.entries(headers as Record<string, unknown>)) if (n.toLowerCase() === name) return headerString(v as string);
  return undefined;
}

function headerString(v: number | string | string[] | undefined): string {
  return v === undefined ? '' : Array.isArray(v) ? v.join(', ') : String(v);
}
