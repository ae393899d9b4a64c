import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline, Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { drained } from '../io/drained.ts';
import { startedBody } from '../io/started-body.ts';
import type { CID } from 'multiformats/cid';
import { AbortedError, asOracleError, BadRequestError, BlockCorruptError, BlockFetchTimeoutError } from '../errors.ts';
import type { OracleError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { BlockSource } from '../protocol/blocks.ts';
import { RAW_CODE, verifyBlockSync, verifyingSource } from '../protocol/blocks.ts';
import { fromRawHeaders } from '../protocol/headers.ts';
import type { HeaderList } from '../protocol/headers.ts';
import { statusHasBody } from '../protocol/replay.ts';
import type { BodyPart, ContentCoding, ResponsePlan } from '../protocol/replay.ts';
import { computeRequestKey } from '../protocol/request-key.ts';
import type { RequestKey, VariantRules } from '../protocol/request-key.ts';
import { readBody } from '../protocol/unixfs.ts';
import type { AnswerPlain } from './hit-front.ts';
import { BodyBuffers, LeafBuffers } from './leaf-buffers.ts';
import type { BlockReader } from './leaf-buffers.ts';

/** Largest request body accepted (413 beyond). Bodies are hashed for the key before anything else happens. */
export const MAX_REQUEST_BODY_BYTES = 8 * 1024 * 1024 * 1024;
/** Longest request URL accepted (clients and servers commonly stop at 8 KiB; we allow 4×). */
export const MAX_URL_BYTES = 32 * 1024;

/** One proxied request as both handlers see it. */
export interface Exchange {
  readonly req: IncomingMessage;
  /** Absolute URL as the client sent it (credentials included): what the upstream fetch uses. */
  readonly url: string;
  readonly headers: HeaderList;
  /** The body, when the reader kept it (record); replay keeps only its digest. */
  readonly body: RequestBody | undefined;
  readonly key: RequestKey;
}

/** A request body held in memory, or spooled to a file for large uploads. */
export interface RequestBody {
  readonly size: number;
  /** A fresh stream of the bytes (may be called more than once). */
  open(): Uint8Array | Readable;
  /** Removes a spool file. Idempotent. */
  dispose(): Promise<void>;
}

/** Reads (and hashes) a request body; returns it when kept. `request-body.ts` has the spooling one. */
export type RequestBodyReader = (req: IncomingMessage, hash: Hash) => Promise<RequestBody | undefined>;

/** What the proxy front hands every request to: the only way the proxy server reaches a mode. */
export interface ExchangeHandler {
  handle(req: IncomingMessage, res: ServerResponse, url: string): Promise<void>;
  /**
   * Answers a plain request (`request-head.ts`), at once or once looked up, or leaves it (undefined): `handle`
   * then gets it through Node's server. A handler that has it is given new connections first (`hit-front.ts`).
   */
  answerPlain?: AnswerPlain | undefined;
}

/** The counters a response writer keeps (the oracle's stats satisfy it). */
export interface ServeCounters {
  bytesServed: number;
  errors: number;
}

/** What each handler of the proxy front is given besides the one it asks (recorder or replayer). */
export interface HandlerInit {
  /** Where recorded bodies are read from; every block is verified against its CID. */
  source: BlockSource;
  stats: ServeCounters & { requests: number };
  logger: Logger;
}

/** The head of an answer. */
export interface ResponseHead {
  readonly status: number;
  readonly headers: ReadonlyArray<readonly [string, string]>;
}

/** Hashes the body for the key and keeps nothing (what replay needs). */
async function hashOnly(req: IncomingMessage, hash: Hash): Promise<undefined> {
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.byteLength;
    if (total > MAX_REQUEST_BODY_BYTES) throw new BadRequestError(`Request body exceeds the ${MAX_REQUEST_BODY_BYTES}-byte limit`, 413);
    hash.update(chunk);
  }
  return undefined;
}

export interface ReadExchangeOptions {
  variantRules?: VariantRules;
  /** Keeps the body (record); by default it is only hashed. */
  readBody?: RequestBodyReader;
}

/** Reads the request, computes its key; throws BadRequestError for what cannot be a valid request. */
export async function readExchange(req: IncomingMessage, url: string, options: ReadExchangeOptions = {}): Promise<Exchange> {
  if (Buffer.byteLength(url) > MAX_URL_BYTES) throw new BadRequestError(`URL of ${Buffer.byteLength(url)} bytes exceeds the ${MAX_URL_BYTES}-byte limit`, 414);
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > MAX_REQUEST_BODY_BYTES) throw new BadRequestError(`Request body of ${declared} bytes exceeds the ${MAX_REQUEST_BODY_BYTES}-byte limit`, 413);
  const method = req.method ?? 'GET';
  const hasBody = method !== 'GET' && method !== 'HEAD';
  // A GET's or HEAD's body (rare) is not part of its key: replay leaves it unread (Node discards what is
  // left once the answer is sent) instead of iterating the request stream on every hit. One without a
  // Content-Length or Transfer-Encoding has none at all (RFC 9112 §6.3): nothing to read in any mode.
  const framed = req.headers['transfer-encoding'] !== undefined || declared > 0;
  const hash = hasBody || (options.readBody !== undefined && framed) ? createHash('sha256') : undefined;
  const body = hash === undefined ? undefined : await (options.readBody ?? hashOnly)(req, hash);
  const bodyDigest = hasBody && hash !== undefined ? `sha256:${hash.digest('hex')}` : undefined;
  const input = bodyDigest === undefined ? { method, url, headers: req.headers } : { method, url, headers: req.headers, bodyDigest };
  const key = computeRequestKey(input, options.variantRules);
  return { req, url, headers: fromRawHeaders(req.rawHeaders), body, key };
}

/** Sends an error answer the client can read: status, `x-oracle-error` code header, text body. */
export function sendError(res: ServerResponse, status: number, err: OracleError | Error, extraHeaders: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy(err);
    return;
  }
  const code = asOracleError(err).code;
  const text = err.message.endsWith('\n') ? err.message : `${err.message}\n`;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'x-oracle-error': code,
    ...extraHeaders,
  });
  res.end(text);
}

/**
 * The body with its first chunk already read: a body that fails that early (a corrupt single-block body,
 * the first block of a larger one, a full disk while a small answer is recorded) throws here, while the
 * client can still be given an error answer instead of a head and a dropped connection. Null stays null.
 */
export async function startBody(body: AsyncIterable<Uint8Array> | null): Promise<AsyncIterable<Uint8Array> | null> {
  return body === null ? null : startedBody(body);
}

/**
 * Writes an answer: the head, then the body with backpressure. The one place a client socket is written
 * (besides `sendError`). The body's first chunk is read before the head is written (`startBody`), so a
 * failure that early throws with no head sent: the caller answers it with an error (`sendError`). A body
 * that fails after the head destroys the socket: the client sees a failed transfer, never a complete wrong
 * or unrecorded one.
 */
export async function sendResponse(res: ServerResponse, head: ResponseHead, body: AsyncIterable<Uint8Array> | null, counters: ServeCounters, written?: (chunk: Uint8Array) => void): Promise<void> {
  const started = await startBody(body);
  res.writeHead(head.status, head.headers.flat());
  if (started === null) {
    res.end();
    return;
  }
  for await (const chunk of started) {
    if (res.destroyed) return;
    counters.bytesServed += chunk.byteLength;
    if (!(written === undefined ? res.write(chunk) : res.write(chunk, () => written(chunk)))) await drained(res);
  }
  if (!res.destroyed) res.end();
}

/** The bytes a plan sends: its parts read block by block from `source`, each block verified against its CID. */
export function planBody(plan: ResponsePlan, source: BlockSource): AsyncIterable<Uint8Array> | null {
  if (plan.body === null) return null;
  const verified = verifyingSource(source);
  const body = plan.body;
  if (body.cid.code === RAW_CODE) {
    const oneBlock = new OneBlockParts(body.cid, body.parts, verified);
    return plan.decode === undefined ? oneBlock : decoded(oneBlock, plan.decode);
  }
  async function* bytes(): AsyncGenerator<Uint8Array> {
    for (const part of body.parts) {
      if ('text' in part) yield Buffer.from(part.text);
      else yield* readBody(body.cid, verified, { offset: part.offset, length: part.length });
    }
  }
  return plan.decode === undefined ? bytes() : decoded(bytes(), plan.decode);
}

/**
 * Streams a planned response from `source`. A body that fails before the head is answered 502 with
 * `x-oracle-error` (its code, e.g. ORACLE_ERR_BLOCK_CORRUPT); one that fails mid-stream is logged and ends
 * the transfer. Resolves with that failure (already answered), or undefined when the answer went out whole.
 */
export async function sendPlan(res: ServerResponse, plan: ResponsePlan, source: BlockSource, counters: ServeCounters, logger: Logger, reader?: BlockReader): Promise<Error | undefined> {
  const body = plan.body;
  if (body === null || plan.decode !== undefined || (body.cid.code !== RAW_CODE && reader === undefined)) return sendPlanBody(res, plan, planBody(plan, source), counters, logger);
  if (body.cid.code !== RAW_CODE) {
    // A DAG read straight from the store into buffers this response reuses; every block still verified.
    const buffers = new LeafBuffers();
    // Every permit its leaves hold comes back when the answer ends, however it ends (a client gone already too).
    if (res.closed) buffers.close();
    else res.once('close', () => buffers.close());
    return forgetCorrupt(reader, await sendPlanBody(res, plan, planBody(plan, buffers.sourceOver(reader!)), counters, logger, (chunk) => buffers.give(chunk)));
  }
  // A one-block body (every body up to 1 MiB): read and verified whole before the head (at once from the
  // store when it can), then head and bytes go out in one write, without the streaming machinery a DAG needs.
  let chunks: Uint8Array[];
  let block: Uint8Array | undefined;
  try {
    if (reader === undefined) block = await verifyingSource(source).get(body.cid);
    else {
      // Read into memory lent to this answer (no garbage per hit), given back once the socket took it all.
      block = reader.readKept(body.cid, BodyBuffers.take) ?? (await reader.readBlock(body.cid, BodyBuffers.take));
      verifyBlockSync(body.cid, block);
    }
    chunks = oneBlockBody(body.cid, body.parts, block);
  } catch (err) {
    return forgetCorrupt(reader, await sendPlanBody(res, plan, failing(err as Error), counters, logger));
  }
  if (res.destroyed) return undefined; // the client left meanwhile
  res.writeHead(plan.status, flatHeaders(plan));
  for (const c of chunks) counters.bytesServed += c.byteLength;
  const lent = reader === undefined ? undefined : block;
  // 'finish' comes only after every write succeeded; a failed answer drops its buffer instead.
  const giveBack = lent === undefined ? undefined : (err?: Error | null) => {
    if (err == null) BodyBuffers.give(lent);
  };
  if (chunks.length === 1) res.end(chunks[0], giveBack);
  else {
    for (const c of chunks) res.write(c);
    res.end(giveBack);
  }
  return undefined;
}

/** A block that failed its hash is read afresh next time (the store may hold its file open). */
function forgetCorrupt(reader: BlockReader | undefined, err: Error | undefined): Error | undefined {
  if (reader !== undefined && err instanceof BlockCorruptError) reader.forget(err.cid);
  return err;
}

/**
 * What is derived from a plan once, kept on the plan itself (symbol-keyed fields), so that it lives exactly as
 * long as the plan. In WeakMaps by plan, each first hit's plan left an entry that only a full collection
 * clears (`ReplayMemo`'s plans say what that cost; issue #15, session 31).
 */
const FLAT_HEADERS = Symbol('fetch-oracle.flatHeaders');
const PLAIN_HEAD = Symbol('fetch-oracle.plainHead');
type DerivedFromPlan = ResponsePlan & { [FLAT_HEADERS]?: string[]; [PLAIN_HEAD]?: PlainHead | null };

/** A plan's head as `writeHead` takes it, flattened once per plan (the replay handler reuses plans). */
function flatHeaders(plan: ResponsePlan): string[] {
  const derived = plan as DerivedFromPlan;
  const kept = derived[FLAT_HEADERS];
  if (kept !== undefined) return kept;
  const flat = plan.headers.flat();
  if (Object.isExtensible(plan)) derived[FLAT_HEADERS] = flat;
  return flat;
}

/** Fields whose presence changes how Node's server frames or ends an answer: such a head is Node's to write. */
const FRAMING_FIELDS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'trailer', 'upgrade']);
/** A plan's head as Node's server writes it, ready for answers given at once. */
export interface PlainHead {
  readonly bytes: Buffer;
  /** Its content-type (the request log notes it). */
  readonly contentType: string;
}

/**
 * A plan's head as the bytes Node's server writes for it (`writeHead` with the plan's fields, then `headEnd`:
 * the connection's own fields and the empty line), for an answer given at once (`hit-front.ts`); null when
 * Node's server would add framing of its own (a chunked body, a date) or the plan's body must be decoded.
 * Made once per plan (the replay handler reuses plans; one server's `headEnd` never changes).
 */
export function plainHead(plan: ResponsePlan, method: string, headEnd: Buffer): PlainHead | null {
  const derived = plan as DerivedFromPlan;
  let head = derived[PLAIN_HEAD];
  if (head !== undefined) return head;
  const names = new Set(plan.headers.map(([n]) => n.toLowerCase()));
  const framed = method === 'HEAD' || !statusHasBody(plan.status) || names.has('content-length');
  const plain = plan.decode === undefined && plan.status >= 200 && framed && names.has('date') && ![...FRAMING_FIELDS].some((n) => names.has(n));
  head = plain
    ? {
        bytes: Buffer.concat([Buffer.from(`HTTP/1.1 ${plan.status} ${STATUS_CODES[plan.status] ?? 'unknown'}\r\n${plan.headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}`, 'latin1'), headEnd]),
        contentType: plan.headers.find(([n]) => n.toLowerCase() === 'content-type')?.[1] ?? '',
      }
    : null;
  if (Object.isExtensible(plan)) derived[PLAIN_HEAD] = head;
  return head;
}

/**
 * A one-block body's parts, its block read (and verified, by `source`) at the first `next`. An iterator
 * object, not a generator: V8 (Node 20) keeps what a generator's frame refers to alive through young
 * collections, so every answer sent through one was promoted to the old generation (issue #15, session 18).
 * A body of many blocks is large enough that its walk's generators cost nothing in comparison.
 */
class OneBlockParts implements AsyncIterableIterator<Uint8Array> {
  readonly #cid: CID;
  readonly #parts: readonly BodyPart[];
  readonly #source: BlockSource;
  #chunks: Uint8Array[] | undefined;
  #next = 0;
  #finished = false;

  constructor(cid: CID, parts: readonly BodyPart[], source: BlockSource) {
    this.#cid = cid;
    this.#parts = parts;
    this.#source = source;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    if (!this.#finished) {
      try {
        this.#chunks ??= oneBlockBody(this.#cid, this.#parts, await this.#source.get(this.#cid));
      } catch (err) {
        this.#finished = true; // as a generator that threw: done from then on
        throw err;
      }
      if (this.#next < this.#chunks.length) return { done: false, value: this.#chunks[this.#next++]! };
    }
    return this.return();
  }

  return(): Promise<IteratorResult<Uint8Array>> {
    this.#finished = true;
    this.#chunks = undefined;
    return Promise.resolve({ done: true, value: undefined });
  }
}

/** The parts of a plan over a raw block (already verified); a part beyond the block is a corrupt DAG. */
function oneBlockBody(cid: CID, parts: readonly BodyPart[], block: Uint8Array): Uint8Array[] {
  return parts.map((part) => {
    if ('text' in part) return Buffer.from(part.text);
    if (part.offset + part.length > block.byteLength) {
      throw new BlockCorruptError(cid.toString(), `Block ${cid} holds ${block.byteLength} bytes; the record promises at least ${part.offset + part.length}`);
    }
    return block.subarray(part.offset, part.offset + part.length);
  });
}

/** A body whose first read fails with `err` (answered before the head, as any early failure). */
function failing(err: Error): AsyncIterable<Uint8Array> {
  return { [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(err) }) };
}

/** `sendPlan` with the plan's body given (e.g. already started with `startBody`). */
export async function sendPlanBody(res: ServerResponse, plan: ResponsePlan, body: AsyncIterable<Uint8Array> | null, counters: ServeCounters, logger: Logger, written?: (chunk: Uint8Array) => void): Promise<Error | undefined> {
  try {
    await sendResponse(res, plan, body, counters, written);
    return undefined;
  } catch (err) {
    // The client left and the body's reads were stopped for it (`LeafBuffers.close`): nothing failed.
    if (err instanceof AbortedError && res.closed) return err;
    counters.errors++;
    const early = !res.headersSent;
    logger.error('body of %s failed %s: %s', plan.body?.cid.toString() ?? '-', early ? 'before the head (answered 502)' : 'mid-stream', (err as Error).message);
    if (early) sendError(res, err instanceof BlockFetchTimeoutError ? 504 : 502, err as Error);
    else res.destroy(err as Error);
    return err as Error;
  }
}

/** Undoes a content coding as a stream (bounded memory, backpressure through the async iteration). */
export function decoded(source: AsyncIterable<Uint8Array>, coding: ContentCoding): AsyncIterable<Uint8Array> {
  const decoder = coding === 'gzip' ? createGunzip() : coding === 'deflate' ? createInflate() : createBrotliDecompress();
  pipeline(Readable.from(source), decoder, () => {}); // an error in either ends the iteration with it
  return decoder;
}

/** How a handler answered a request, for the request log and metrics (`src/report/`). */
export type ExchangeOutcome = 'hit' | 'miss' | 'recorded' | 'error';
/**
 * Where a response carries its outcome: a symbol-keyed field, not a WeakMap. A WeakMap entry per answer is
 * only cleared by a full collection, so its table grew by 15,000 entries a second under replay load and
 * was a reason V8 ran one every half second (issue #15).
 */
const OUTCOME = Symbol('fetch-oracle.outcome');
type Marked = ServerResponse & { [OUTCOME]?: ExchangeOutcome };

/** Notes how `res` was answered (the last mark wins: a hit whose body then fails is an error). */
export function markOutcome(res: ServerResponse, outcome: ExchangeOutcome): void {
  (res as Marked)[OUTCOME] = outcome;
}

/** How `res` was answered, when its handler said. */
export function outcomeOf(res: ServerResponse): ExchangeOutcome | undefined {
  return (res as Marked)[OUTCOME];
}
