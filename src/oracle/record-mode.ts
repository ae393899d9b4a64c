import type { IncomingMessage, ServerResponse } from 'node:http';
import { BadRequestError, BlockCorruptError, BlockMissingError, OracleError, StoreError, TruncatedBodyError, UpstreamError, UpstreamTimeoutError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { verifyingSource } from '../protocol/blocks.ts';
import { recordableResponseHeaders } from '../protocol/headers.ts';
import { decodeRecord, encodeRecord } from '../protocol/record.ts';
import type { FetchRecord } from '../protocol/record.ts';
import { planResponse } from '../protocol/replay.ts';
import { computeRequestKey, withMethod } from '../protocol/request-key.ts';
import type { HeaderList } from '../protocol/headers.ts';
import type { VariantRules } from '../protocol/request-key.ts';
import { importBody } from '../protocol/unixfs.ts';
import type { FsRecordIndex } from '../records/record-index.ts';
import type { DecodedEntry } from '../netlock/file.ts';
import type { Signer } from '../signing/local-signer.ts';
import type { BlockStore } from '../store/block-store.ts';
import type { Fetcher } from '../upstream/fetcher.ts';
import type { Exchange, ExchangeHandler } from '../proxy/exchange.ts';
import { drained, readExchange, sendError, sendPlan } from '../proxy/exchange.ts';
import type { DigestWorker } from './digest-worker.ts';
import type { RunSet } from './run-set.ts';
import type { OracleStats } from './stats.ts';

/** Request headers that would make the origin send less than the whole resource: never sent upstream. */
const PARTIAL_REQUEST_HEADERS = new Set(['range', 'if-range', 'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since']);

export interface RecordModeInit {
  store: BlockStore;
  index: FsRecordIndex;
  signer: Signer;
  fetcher: Fetcher;
  run: RunSet;
  digests: DigestWorker;
  /** Extra per-host variant headers (`--variant-header HOST=NAME`); written into the netlock root. */
  variantRules?: VariantRules;
  /** Fetch every recorded request again once per run, keeping changed answers as new versions. @default false */
  refresh?: boolean;
  /**
   * Record a request that got no answer at all (refused, DNS, TLS, reset) as the 502 the build saw. Off in
   * enclave mode: there the parent relays every connection, so such a failure may be the parent's doing and
   * must not become a signed statement about the origin; the client still gets the 502. @default true
   */
  recordUpstreamFailures?: boolean;
  stats: OracleStats;
  logger: Logger;
}

export interface UpstreamMutation {
  method: string;
  url: string;
  oldRecord: string;
  newRecord: string;
  oldStatus: number;
  newStatus: number;
  oldBody: string | null;
  newBody: string | null;
}

/** What the upstream side of the record path needs of a request (a proxied Exchange, or a seeded request). */
type UpstreamExchange = Pick<Exchange, 'url' | 'headers' | 'body' | 'key'>;

/** A request recorded without a proxy client (`fetch-oracle seed`). */
export interface DirectRequest {
  method: string;
  /** Absolute URL as the client will ask for it (no userinfo: credentials go in `headers`). */
  url: string;
  /** Request headers sent upstream; only the variant headers (`accept`) enter the key. */
  headers: HeaderList;
}

export interface DirectRequestOptions {
  /**
   * Runs on the record that would answer the request, before it is committed or added to this run (a
   * lockfile's digest, an expected status); throwing refuses it, and a fresh record is then not recorded.
   */
  check?: (record: FetchRecord) => Promise<void>;
  signal?: AbortSignal;
}

interface InFlight {
  done: Promise<DecodedEntry>;
  waiters: number;
}

/**
 * Record mode: a recorded request is answered from its record without contacting the origin; a new one
 * is fetched once (concurrent identical misses share that fetch), streamed to the client while it is
 * imported, and recorded only if the whole body arrived.
 */
export class RecordMode implements ExchangeHandler {
  readonly #init: RecordModeInit;
  readonly #inFlight = new Map<string, InFlight>();
  readonly #refreshed = new Set<string>();
  /** Upstream mutations seen in this run (record --refresh, or a retried failure that now differs). */
  readonly mutations: UpstreamMutation[] = [];

  constructor(init: RecordModeInit) {
    this.#init = init;
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    const { stats, logger } = this.#init;
    stats.requests++;
    let ex: Exchange;
    try {
      ex = await readExchange(req, res, url, this.#init.variantRules);
    } catch (err) {
      stats.errors++;
      sendError(res, err instanceof BadRequestError ? err.status : 400, err as Error);
      return;
    }
    try {
      const running = this.#inFlight.get(ex.key.id);
      if (running !== undefined) {
        stats.coalesced++;
        running.waiters++;
        const entry = await running.done.finally(() => running.waiters--);
        await this.#serveEntry(ex, entry);
        return;
      }
      const exact = await this.#loadKnown(ex.key.id);
      if (exact !== undefined && !this.#shouldRefetch(exact)) {
        stats.hits++;
        await this.#serveEntry(ex, exact);
        return;
      }
      // HEAD is answered from a recorded GET of the same URL and variant when there is one.
      const get = exact === undefined && ex.key.method === 'HEAD' ? await this.#loadKnown(withMethod(ex.key, 'GET').id) : undefined;
      if (get !== undefined) {
        stats.hits++;
        await this.#serveEntry(ex, get);
        return;
      }
      stats.misses++;
      await this.#fetchAndRecord(ex, exact);
    } catch (err) {
      stats.errors++;
      const status = err instanceof UpstreamTimeoutError ? 504 : err instanceof UpstreamError || err instanceof TruncatedBodyError ? 502 : err instanceof OracleError ? 502 : 500;
      logger.error('%s %s: %s', ex.key.method, ex.key.url, (err as Error).message);
      sendError(res, status, err as Error);
    } finally {
      await ex.body?.dispose();
    }
  }

  /**
   * The record path without a proxy client (`fetch-oracle seed`): the same key, coalescing, upstream fetch,
   * import, digests, signature, index and journal as a proxied request, so a seeded record is the one the
   * proxy writes for that request. A recorded answer is reused without fetching (`fetched: false`).
   * `options.check` sees the record before it is committed or added to this run; throwing refuses it.
   * Unlike the proxy, a request that gets no answer throws rather than recording a 502: a seed promises a body.
   */
  async recordRequest(request: DirectRequest, options: DirectRequestOptions = {}): Promise<{ entry: DecodedEntry; fetched: boolean }> {
    const { stats, run } = this.#init;
    stats.requests++;
    const headers = request.headers.map(([n, v]): [string, string] => [n.toLowerCase(), v]);
    const bag: Record<string, string> = {};
    for (const [n, v] of headers) bag[n] = bag[n] === undefined ? v : `${bag[n]}, ${v}`;
    const key = computeRequestKey({ method: request.method, url: request.url, headers: bag }, this.#init.variantRules);
    const ex: UpstreamExchange = { url: request.url, headers, body: undefined, key };
    const running = this.#inFlight.get(key.id);
    const reuse = async (entry: DecodedEntry): Promise<{ entry: DecodedEntry; fetched: boolean }> => {
      await options.check?.(entry.record);
      await run.add(entry);
      return { entry, fetched: false };
    };
    if (running !== undefined) {
      stats.coalesced++;
      running.waiters++;
      return reuse(await running.done.finally(() => running.waiters--));
    }
    const known = await this.#loadKnown(key.id);
    if (known !== undefined && !this.#shouldRefetch(known)) {
      stats.hits++;
      return reuse(known);
    }
    stats.misses++;
    let resolve!: (e: DecodedEntry) => void;
    let reject!: (e: unknown) => void;
    const flight: InFlight = { done: new Promise<DecodedEntry>((res, rej) => ((resolve = res), (reject = rej))), waiters: 0 };
    flight.done.catch(() => {});
    this.#inFlight.set(key.id, flight);
    try {
      const { record } = await this.#record(ex, undefined, flight, options.signal);
      await options.check?.(record);
      const entry = await this.#commit(ex, record, known);
      await run.add(entry);
      resolve(entry);
      return { entry, fetched: true };
    } catch (err) {
      reject(err);
      throw err;
    } finally {
      this.#inFlight.delete(key.id);
    }
  }

  /** The recorded entry for a key, or undefined; a record whose blocks are corrupt is set aside and re-fetched. */
  async #loadKnown(keyId: string): Promise<DecodedEntry | undefined> {
    const signed = this.#init.index.get(keyId);
    if (signed === undefined) return undefined;
    try {
      const record = decodeRecord(await verifyingSource(this.#init.store).get(signed.record));
      return { key: keyId, signed, record };
    } catch (err) {
      if (err instanceof StoreError) throw err; // the store is down: a 502 naming it, not a silent re-fetch
      if (err instanceof BlockCorruptError) await this.#init.store.quarantine(signed.record);
      if (err instanceof BlockCorruptError || err instanceof BlockMissingError || err instanceof OracleError) {
        this.#init.logger.warn('record %s is unusable (%s); fetching again', signed.record.toString(), err.message);
        return undefined;
      }
      throw err;
    }
  }

  /**
   * Whether a recorded answer is fetched again in record mode: with `refresh`, once per run; and always
   * when it is a server or network failure (5xx), which is likely transient. Replay serves them as recorded.
   */
  #shouldRefetch(entry: DecodedEntry): boolean {
    if (entry.record.response.status >= 500) return true;
    if (this.#init.refresh !== true || this.#refreshed.has(entry.key)) return false;
    this.#refreshed.add(entry.key);
    return true;
  }

  async #serveEntry(ex: Exchange, entry: DecodedEntry): Promise<void> {
    // A request body only keys a recorded answer; a spool file is gone before the client has its answer.
    await ex.body?.dispose();
    await this.#init.run.add(entry);
    const plan = planResponse(entry.record, { method: ex.key.method, headers: ex.req.headers });
    try {
      await sendPlan(ex.res, plan, this.#init.store, this.#init.stats, this.#init.logger);
    } catch (err) {
      if (err instanceof BlockCorruptError) await this.#init.store.quarantine(entry.signed.record);
      throw err;
    }
  }

  async #fetchAndRecord(ex: Exchange, previous: DecodedEntry | undefined): Promise<void> {
    // A ranged or conditional first request still records the whole body once, then is answered from it.
    const partial = ex.headers.some(([n]) => PARTIAL_REQUEST_HEADERS.has(n));
    let resolve!: (e: DecodedEntry) => void;
    let reject!: (e: unknown) => void;
    const flight: InFlight = { done: new Promise<DecodedEntry>((res, rej) => ((resolve = res), (reject = rej))), waiters: 0 };
    flight.done.catch(() => {});
    this.#inFlight.set(ex.key.id, flight);
    try {
      let outcome: { record: FetchRecord; release: () => Promise<void> };
      try {
        outcome = await this.#record(ex, partial ? undefined : ex.res, flight);
      } catch (err) {
        if (!(err instanceof UpstreamError)) throw err;
        // No answer at all (DNS, refused, TLS, timeout). A recorded answer stays in force; otherwise the
        // failure is recorded as the build saw it, so a probing build behaves the same offline.
        if (previous !== undefined) {
          this.#init.logger.warn('%s; keeping the recorded answer %s', err.message, previous.signed.record.toString());
          resolve(previous);
          await this.#serveEntry(ex, previous);
          return;
        }
        if (this.#init.recordUpstreamFailures === false || err instanceof UpstreamTimeoutError) throw err; // a 502 (504) to the client, nothing recorded
        const failure = await this.#failureRecord(ex, err);
        const entry = await this.#commit(ex, failure, undefined);
        resolve(entry);
        await this.#serveEntry(ex, entry);
        return;
      }
      await ex.body?.dispose(); // the upstream has the whole request body by now
      const entry = await this.#commit(ex, outcome.record, previous);
      const release = outcome.release;
      resolve(entry);
      if (partial) {
        await this.#serveEntry(ex, entry);
      } else {
        // Journalled before the client gets its last bytes: a client that saw a complete answer can
        // rely on it being in the netlock, even if the oracle is killed right after.
        await this.#init.run.add(entry);
        await release();
      }
    } catch (err) {
      reject(err);
      throw err;
    } finally {
      this.#inFlight.delete(ex.key.id);
      await ex.body?.dispose();
    }
  }

  /**
   * Fetches upstream and imports the body; when `client` is given, streams the response to it as it
   * arrives (ending it is left to the caller, after the record is persisted).
   */
  async #record(ex: UpstreamExchange, client: ServerResponse | undefined, flight: InFlight, signal?: AbortSignal): Promise<{ record: FetchRecord; release: () => Promise<void> }> {
    const { fetcher, store, signer, stats } = this.#init;
    const abort = new AbortController();
    // A caller without a client (fetch-oracle seed) stops the fetch through its own signal.
    if (signal !== undefined) {
      if (signal.aborted) abort.abort();
      else signal.addEventListener('abort', () => abort.abort(), { once: true });
    }
    let received = 0;
    let declaredBytes: number | undefined;
    const onClientGone = (): void => {
      // A client that left before it had the whole body, with nobody else waiting for this fetch: stop it
      // (nothing partial is recorded). One that had every declared byte leaves the recording to finish.
      const complete = declaredBytes !== undefined && received >= declaredBytes;
      if (client !== undefined && !client.writableFinished && !complete && flight.waiters === 0) abort.abort();
    };
    client?.on('close', onClientGone);
    // A store that cannot take blocks refuses the request before anything is fetched (502 naming the store).
    await store.check();
    stats.upstreamFetches++;
    const upstream = await fetcher.fetch({
      method: ex.key.method,
      url: ex.url,
      headers: ex.headers.filter(([n]) => !PARTIAL_REQUEST_HEADERS.has(n)),
      ...(ex.body === undefined ? {} : { body: ex.body.open(), bodySize: ex.body.size }),
      signal: abort.signal,
    });
    const fetchedAt = new Date().toISOString();
    const headers = recordableResponseHeaders(upstream.headers);
    const declared = upstream.headers.find(([n]) => n === 'content-length')?.[1];
    if (declared !== undefined) declaredBytes = Number(declared);
    const noBody = ex.key.method === 'HEAD' || upstream.status === 204 || upstream.status === 304 || (upstream.status >= 100 && upstream.status < 200);
    const draft: FetchRecord = {
      v: 1,
      request: { method: ex.key.method, url: ex.key.url, headers: ex.key.variant, ...(ex.key.bodyDigest === undefined ? {} : { bodyDigest: ex.key.bodyDigest }) },
      response: { status: upstream.status, headers, body: null, size: Number(declared ?? 0), sha256: new Uint8Array(32), sha512: new Uint8Array(64) },
      fetchedAt,
      oracle: signer.publicKey,
      ...(signer.attestation === undefined ? {} : { attestation: signer.attestation }),
    };
    if (client !== undefined) {
      // The head the client gets now is the head every replay gives (same plan function), except that a
      // `location` keeps its credential parameters: this client must be able to follow it for real.
      const rawLocation = upstream.headers.find(([n]) => n === 'location')?.[1];
      const plan = planResponse(noBody ? draft : { ...draft, request: { ...draft.request, method: 'GET' } }, { method: ex.key.method, headers: {} });
      const located = rawLocation === undefined ? plan.headers : plan.headers.map(([n, v]): [string, string] => [n, n === 'location' ? rawLocation : v]);
      const head = declared === undefined && !noBody ? located.filter(([n]) => n !== 'content-length') : located;
      client.writeHead(upstream.status, head.flat());
    }
    const digest = this.#init.digests.begin(declared === undefined ? {} : { sizeHint: Number(declared) });
    // The client gets each chunk as it arrives, except the newest one, held back until the record is
    // persisted: a client never sees a complete body that was not recorded.
    let held: Uint8Array | undefined;
    const toClient = async (bytes: Uint8Array): Promise<void> => {
      if (client === undefined || client.destroyed) return;
      stats.bytesServed += bytes.byteLength;
      if (!client.write(bytes)) await drained(client);
    };
    const tee = async function* (): AsyncGenerator<Uint8Array> {
      for await (const chunk of upstream.body) {
        const bytes = chunk as Uint8Array;
        received += bytes.byteLength;
        await digest.update(bytes);
        if (held !== undefined) await toClient(held);
        held = bytes;
        yield bytes;
      }
    };
    let body: FetchRecord['response']['body'] = null;
    try {
      if (noBody) {
        upstream.body.destroy();
      } else {
        // The digest workers hash the leaves (their CIDs) and the whole body; this thread pipes and stores.
        body = (await importBody(tee(), store, { signal: abort.signal })).cid;
      }
    } catch (err) {
      upstream.body.destroy();
      digest.abandon();
      if (err instanceof StoreError) throw err;
      if (abort.signal.aborted) throw new TruncatedBodyError(`Client went away during ${ex.key.method} ${ex.key.url}; nothing recorded`);
      throw new TruncatedBodyError(`Upstream body of ${ex.key.method} ${ex.key.url} failed after ${received} bytes; nothing recorded: ${(err as Error).message}`, { cause: err });
    } finally {
      client?.off('close', onClientGone);
    }
    if (!noBody && declared !== undefined && Number(declared) !== received) {
      digest.abandon();
      throw new TruncatedBodyError(`Upstream sent ${received} of ${declared} bytes for ${ex.key.method} ${ex.key.url}; nothing recorded`);
    }
    const record: FetchRecord = {
      ...draft,
      response: { ...draft.response, body, size: noBody ? Number(declared ?? 0) : received, ...(await digest.digest()) },
    };
    stats.bytesRecorded += received;
    const release = async (): Promise<void> => {
      if (held !== undefined) await toClient(held);
      if (client !== undefined && !client.writableEnded && !client.destroyed) client.end();
    };
    return { record, release };
  }

  /**
   * Makes `record` the answer for its key: stored, signed, indexed. When it re-fetched a recorded answer
   * with the same status and body, the old record stays (a netlock does not churn); different bytes are
   * upstream mutation: the new version is kept beside the old one, reported, and becomes current.
   */
  async #commit(ex: UpstreamExchange, record: FetchRecord, previous: DecodedEntry | undefined): Promise<DecodedEntry> {
    const { store, signer, index, stats, logger } = this.#init;
    const oldBody = previous?.record.response.body?.toString() ?? null;
    const newBody = record.response.body?.toString() ?? null;
    if (previous !== undefined && previous.record.response.status === record.response.status && oldBody === newBody) return previous;
    const block = await encodeRecord(record);
    await store.put(block.cid, block.bytes);
    // Pinned (record + body DAG, recursively) before it is signed and indexed: nothing is recorded that the
    // store could garbage-collect or has not fully taken.
    await store.pin(block.cid, { recursive: true });
    const signed = await signer.sign(block.cid);
    await index.put(ex.key.id, signed);
    if (previous !== undefined) {
      stats.mutations++;
      this.mutations.push({ method: ex.key.method, url: ex.key.url, oldRecord: previous.signed.record.toString(), newRecord: block.cid.toString(), oldStatus: previous.record.response.status, newStatus: record.response.status, oldBody, newBody });
      logger.warn('upstream mutation: %s %s changed: %d %s -> %d %s (both versions kept; this run uses the new one)', ex.key.method, ex.key.url, previous.record.response.status, oldBody ?? '-', record.response.status, newBody ?? '-');
    }
    logger.info('recorded %s %s -> %d %s (%d bytes)', ex.key.method, ex.key.url, record.response.status, newBody ?? '-', record.response.size);
    return { key: ex.key.id, signed, record };
  }

  /** The record of a request that got no answer at all: a 502 naming the failure, as this proxy sent it. */
  async #failureRecord(ex: UpstreamExchange, err: UpstreamError): Promise<FetchRecord> {
    const text = `${err.message}\n`;
    const bytes = new TextEncoder().encode(text);
    const digest = this.#init.digests.begin();
    await digest.update(bytes);
    const body = await importBody([bytes], this.#init.store);
    return {
      v: 1,
      request: { method: ex.key.method, url: ex.key.url, headers: ex.key.variant, ...(ex.key.bodyDigest === undefined ? {} : { bodyDigest: ex.key.bodyDigest }) },
      response: {
        status: 502,
        headers: [['content-type', 'text/plain; charset=utf-8'], ['x-oracle-error', err.code], ['x-fetch-oracle-upstream-failure', err.reason]],
        body: body.cid,
        size: bytes.byteLength,
        ...(await digest.digest()),
      },
      fetchedAt: new Date().toISOString(),
      oracle: this.#init.signer.publicKey,
      ...(this.#init.signer.attestation === undefined ? {} : { attestation: this.#init.signer.attestation }),
    };
  }
}
