import { createHash, randomBytes } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline, Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { drained } from '../io/drained.ts';
import { asOracleError, BadRequestError } from '../errors.ts';
import type { OracleError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { BlockSource } from '../protocol/blocks.ts';
import { verifyingSource } from '../protocol/blocks.ts';
import { fromRawHeaders } from '../protocol/headers.ts';
import type { HeaderList } from '../protocol/headers.ts';
import type { ContentCoding, ResponsePlan } from '../protocol/replay.ts';
import { computeRequestKey } from '../protocol/request-key.ts';
import type { RequestKey, VariantRules } from '../protocol/request-key.ts';
import { readBody } from '../protocol/unixfs.ts';
import type { OracleStats } from '../oracle/stats.ts';

/**
 * Request bodies are hashed for the key before anything else happens. Up to SPOOL_THRESHOLD_BYTES they are
 * kept in memory; larger ones stream to a temporary file (memory stays flat) and stream upstream from it.
 * Beyond MAX_REQUEST_BODY_BYTES: 413.
 */
export const SPOOL_THRESHOLD_BYTES = 1024 * 1024;
export const MAX_REQUEST_BODY_BYTES = 8 * 1024 * 1024 * 1024;
/** Longest request URL accepted (clients and servers commonly stop at 8 KiB; we allow 4×). */
export const MAX_URL_BYTES = 32 * 1024;

/** One proxied request as both modes see it. */
export interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** Absolute URL as the client sent it (credentials included): what the upstream fetch uses. */
  readonly url: string;
  readonly headers: HeaderList;
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

/** What the proxy front hands every request to. */
export interface ExchangeHandler {
  handle(req: IncomingMessage, res: ServerResponse, url: string): Promise<void>;
}

async function readRequestBody(req: IncomingMessage, hash: Hash): Promise<RequestBody | undefined> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > MAX_REQUEST_BODY_BYTES) throw new BadRequestError(`Request body of ${declared} bytes exceeds the ${MAX_REQUEST_BODY_BYTES}-byte limit`, 413);
  const chunks: Buffer[] = [];
  let total = 0;
  let spool: { path: string; file: FileHandle } | undefined;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      total += chunk.byteLength;
      if (total > MAX_REQUEST_BODY_BYTES) throw new BadRequestError(`Request body exceeds the ${MAX_REQUEST_BODY_BYTES}-byte limit`, 413);
      hash.update(chunk);
      if (spool === undefined && total > SPOOL_THRESHOLD_BYTES) {
        const path = join(tmpdir(), `fetch-oracle-body-${process.pid}-${randomBytes(8).toString('hex')}`);
        spool = { path, file: await open(path, 'wx', 0o600) };
        for (const c of chunks.splice(0)) await spool.file.write(c);
      }
      if (spool === undefined) chunks.push(chunk);
      else await spool.file.write(chunk);
    }
  } catch (err) {
    if (spool !== undefined) {
      await spool.file.close();
      await rm(spool.path, { force: true });
    }
    throw err;
  }
  if (total === 0) return undefined;
  if (spool === undefined) {
    const bytes = Buffer.concat(chunks, total);
    return { size: total, open: () => bytes, dispose: () => Promise.resolve() };
  }
  await spool.file.close();
  const path = spool.path;
  return { size: total, open: () => createReadStream(path), dispose: () => rm(path, { force: true }) };
}

/** Reads the request, computes its key; throws BadRequestError for what cannot be a valid request. */
export async function readExchange(req: IncomingMessage, res: ServerResponse, url: string, rules?: VariantRules): Promise<Exchange> {
  if (Buffer.byteLength(url) > MAX_URL_BYTES) throw new BadRequestError(`URL of ${Buffer.byteLength(url)} bytes exceeds the ${MAX_URL_BYTES}-byte limit`, 414);
  const method = req.method ?? 'GET';
  const hash = createHash('sha256');
  const body = await readRequestBody(req, hash);
  const hasBody = method !== 'GET' && method !== 'HEAD';
  const bodyDigest = hasBody ? `sha256:${hash.digest('hex')}` : undefined;
  const key = computeRequestKey(bodyDigest === undefined ? { method, url, headers: req.headers } : { method, url, headers: req.headers, bodyDigest }, rules);
  return { req, res, url, headers: fromRawHeaders(req.rawHeaders), body, key };
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

export { drained };

/**
 * Streams a planned response: head, then the body read block by block from `source`, each block
 * verified against its CID. A failure after the head destroys the socket: the client sees a failed
 * transfer, never wrong bytes.
 */
export async function sendPlan(res: ServerResponse, plan: ResponsePlan, source: BlockSource, stats: OracleStats, logger: Logger): Promise<void> {
  res.writeHead(plan.status, plan.headers.flat());
  if (plan.body === null) {
    res.end();
    return;
  }
  const verified = verifyingSource(source);
  const body = plan.body;
  async function* bytes(): AsyncGenerator<Uint8Array> {
    for (const part of body.parts) {
      if ('text' in part) yield Buffer.from(part.text);
      else yield* readBody(body.cid, verified, { offset: part.offset, length: part.length });
    }
  }
  try {
    const stream = plan.decode === undefined ? bytes() : decoded(bytes(), plan.decode);
    for await (const chunk of stream) {
      if (res.destroyed) return;
      stats.bytesServed += chunk.byteLength;
      if (!res.write(chunk)) await drained(res);
    }
    res.end();
  } catch (err) {
    stats.errors++;
    logger.error('body of %s failed mid-stream: %s', plan.body.cid.toString(), (err as Error).message);
    res.destroy(err as Error);
  }
}

/** Undoes a content coding as a stream (bounded memory, backpressure through the async iteration). */
export function decoded(source: AsyncIterable<Uint8Array>, coding: ContentCoding): AsyncIterable<Uint8Array> {
  const decoder = coding === 'gzip' ? createGunzip() : coding === 'deflate' ? createInflate() : createBrotliDecompress();
  pipeline(Readable.from(source), decoder, () => {}); // an error in either ends the iteration with it
  return decoder;
}
