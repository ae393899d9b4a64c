import { CID } from 'multiformats/cid';
import { AbortedError, BlockCorruptError, BlockMissingError, OracleError, StoreError, TruncatedBodyError, UpstreamError, UpstreamTimeoutError } from '../errors.ts';
import { AbortSwitch } from '../io/abort-switch.ts';
import { Handover } from '../io/handover.ts';
import { untilTurnEnd } from '../io/turn-end.ts';
import { bodyBytesReceived } from '../io/young-gc.ts';
import type { Logger } from '../log.ts';
import { cidText, rawBodySha256, verifyingSource } from '../protocol/blocks.ts';
import { recordableResponseHeaders } from '../protocol/headers.ts';
import type { HeaderList } from '../protocol/headers.ts';
import { decodeRecord, encodeRecord } from '../protocol/record.ts';
import type { FetchRecord } from '../protocol/record.ts';
import { liveResponseHead, statusHasBody } from '../protocol/replay.ts';
import { computeRequestKey } from '../protocol/request-key.ts';
import type { RequestKey, VariantRules } from '../protocol/request-key.ts';
import { resolve } from '../protocol/resolve.ts';
import { BodyImporter, CHUNK_BYTES, importBody } from '../protocol/unixfs.ts';
import type { ResponseHead } from '../proxy/exchange.ts';
import type { ExchangeRecorder, RecordOptions, RecorderAnswer, RecorderRequest } from '../proxy/record-handler.ts';
import type { RecordIndex } from '../records/record-index.ts';
import type { DecodedEntry } from '../netlock/file.ts';
import type { Signer } from '../signing/signer.ts';
import type { BlockStore } from '../store/block-store.ts';
import type { Fetcher } from '../upstream/fetcher.ts';
import type { Checkpoints } from './checkpoints.ts';
import type { DigestWorker } from './digest-worker.ts';
import { LiveTee } from './live-tee.ts';
import type { RunSet } from './run-set.ts';
import type { OracleStats } from './stats.ts';

/** Request headers that would make the origin send less than the whole resource: never sent upstream. */
const PARTIAL_REQUEST_HEADERS = new Set(['range', 'if-range', 'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since']);

export interface RecorderInit {
  store: BlockStore;
  index: RecordIndex;
  signer: Signer;
  fetcher: Fetcher;
  run: RunSet;
  digests: DigestWorker;
  /** When what a record wrote is put on disk (`--sync`). */
  checkpoints: Checkpoints;
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
  /** Told the seconds each upstream fetch took to its response head (the latency metric). */
  observeUpstream?: (seconds: number) => void;
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

/** A request recorded without a proxy client (`fetch-oracle seed`). */
export interface DirectRequest {
  method: string;
  /** Absolute URL as the client will ask for it (no userinfo: credentials go in `headers`). */
  url: string;
  /** Request headers sent upstream; only the variant headers (`accept`) enter the key. */
  headers: HeaderList;
}

export type DirectRequestOptions = Pick<RecordOptions, 'check' | 'signal' | 'answerFailures'>;

/** One fetch in progress: every identical request waits for it instead of fetching again. */
interface InFlight {
  readonly done: Promise<DecodedEntry>;
  waiters: number;
  resolve(entry: DecodedEntry): void;
  reject(err: unknown): void;
}

/** A fetched and imported answer, not yet committed; `release` hands the held-back last chunk on. */
interface Fetched {
  readonly record: FetchRecord;
  release(): Promise<void>;
}

/**
 * The record path without sockets: a recorded request is answered from its record without contacting the
 * origin; a new one is fetched once (concurrent identical misses share that fetch), imported as it arrives,
 * digested, stored, pinned, signed, indexed and journalled. The proxy streams its answers to clients
 * (`RecordHandler`); `seed` asks it directly.
 */
export class Recorder implements ExchangeRecorder {
  readonly #init: RecorderInit;
  readonly #inFlight = new Map<string, InFlight>();
  readonly #refreshed = new Set<string>();
  /** Keys whose recorded body failed verification while served: fetched again at their next request. */
  readonly #damaged = new Set<string>();
  /** Upstream mutations seen in this run (record --refresh, or a retried failure that now differs). */
  readonly mutations: UpstreamMutation[] = [];

  constructor(init: RecorderInit) {
    this.#init = init;
  }

  get variantRules(): VariantRules | undefined {
    return this.#init.variantRules;
  }

  /** Answers `request`: from its record (a hit, a HEAD's recorded GET, a shared fetch) or by fetching it. */
  async record(request: RecorderRequest, options: RecordOptions = {}): Promise<RecorderAnswer> {
    const { stats } = this.#init;
    const running = this.#inFlight.get(request.key.id);
    if (running !== undefined) {
      stats.coalesced++;
      running.waiters++;
      return this.#reuse(request, await running.done.finally(() => running.waiters--), options);
    }
    const found = await resolve(request.key, (k) => this.#loadKnown(k.id));
    if (found !== undefined && (found.fallback || !this.#shouldRefetch(found.entry))) {
      stats.hits++;
      return this.#reuse(request, found.entry, options);
    }
    stats.misses++;
    return this.#fetch(request, found?.entry, options);
  }

  /**
   * `record` for a request without a proxy client (`fetch-oracle seed`): the same key, coalescing, upstream
   * fetch, import, digests, signature, index and journal, so a seeded record is the one the proxy writes.
   * A recorded answer is reused without fetching (`fetched: false`). A request that gets no answer throws,
   * unless `answerFailures` (recording from inside the machine): then it is the recorded 502 the proxy gives.
   */
  async recordDirect(request: DirectRequest, options: DirectRequestOptions = {}): Promise<{ entry: DecodedEntry; fetched: boolean }> {
    this.#init.stats.requests++;
    const headers = request.headers.map(([n, v]): [string, string] => [n.toLowerCase(), v]);
    const bag: Record<string, string> = {};
    for (const [n, v] of headers) bag[n] = bag[n] === undefined ? v : `${bag[n]}, ${v}`;
    const key = computeRequestKey({ method: request.method, url: request.url, headers: bag }, this.#init.variantRules);
    const answer = await this.record({ url: request.url, headers, body: undefined, key }, options);
    if (answer.kind !== 'stored') throw new Error('Recorder.recordDirect got a live answer'); // not asked for one
    return { entry: answer.entry, fetched: answer.fetched };
  }

  async #reuse(request: RecorderRequest, entry: DecodedEntry, options: RecordOptions): Promise<RecorderAnswer> {
    await request.body?.dispose(); // a request body only keys a recorded answer
    await options.check?.(entry.record);
    await this.#addToRun(entry);
    return { kind: 'stored', entry, fetched: false };
  }

  /** Adds an entry to the run; a journal line written for it goes on disk as `--sync` says. */
  async #addToRun(entry: DecodedEntry): Promise<void> {
    if (await this.#init.run.add(entry)) await this.#init.checkpoints.recorded();
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
   * A recorded body failed verification while it was served: a corrupt block is quarantined (never served
   * again), and the key is fetched again at its next request. The same bytes give the same CIDs, so that
   * fetch puts the missing block back and keeps the record (the store is repaired); other bytes are upstream
   * mutation, as with `--refresh`.
   */
  async bodyFailed(entry: DecodedEntry, err: BlockCorruptError | BlockMissingError): Promise<void> {
    const { store, logger } = this.#init;
    if (err instanceof BlockCorruptError) await store.quarantine(CID.parse(err.cid)).catch(() => {});
    this.#damaged.add(entry.key);
    logger.warn('body %s of %s %s failed verification (%s)%s; the next request for it fetches it again', entry.record.response.body?.toString() ?? '-', entry.record.request.method, entry.record.request.url, err.message, err instanceof BlockCorruptError ? `: block ${err.cid} quarantined` : '');
  }

  /**
   * Whether a recorded answer is fetched again in record mode: when its body failed verification; with `refresh`, once per run; and always
   * when it is a server or network failure (5xx), which is likely transient. Replay serves them as recorded.
   */
  #shouldRefetch(entry: DecodedEntry): boolean {
    if (this.#damaged.delete(entry.key)) return true;
    if (entry.record.response.status >= 500) return true;
    if (this.#init.refresh !== true || this.#refreshed.has(entry.key)) return false;
    this.#refreshed.add(entry.key);
    return true;
  }

  #startFlight(keyId: string): InFlight {
    let resolve!: (e: DecodedEntry) => void;
    let reject!: (e: unknown) => void;
    const done = new Promise<DecodedEntry>((res, rej) => ((resolve = res), (reject = rej)));
    done.catch(() => {}); // observed by whoever waits; an unwaited failure is reported by its own caller
    const flight: InFlight = { done, waiters: 0, resolve, reject };
    this.#inFlight.set(keyId, flight);
    return flight;
  }

  async #fetch(request: RecorderRequest, previous: DecodedEntry | undefined, options: RecordOptions): Promise<RecorderAnswer> {
    // A ranged or conditional first request still records the whole body once, then is answered from it.
    const partial = request.headers.some(([n]) => PARTIAL_REQUEST_HEADERS.has(n));
    const live = options.live === true && !partial ? new Handover() : undefined;
    let onHead!: (head: ResponseHead) => void;
    const head = new Promise<ResponseHead>((res) => (onHead = res));
    const recording = this.#recordFresh(request, previous, options, live, onHead);
    recording.catch(() => {}); // awaited below, or through the live answer's `done`
    const first = live === undefined ? await recording : await Promise.race([head, recording]);
    if ('entry' in first) return { kind: 'stored', entry: first.entry, fetched: first.fetched };
    const done = recording.then((r) => r.entry);
    done.catch(() => {}); // the reader sees a failure through the body; awaiting `done` is optional
    return { kind: 'live', head: first, body: live!, done, leave: () => live!.leave() };
  }

  /** Fetches, imports and commits one answer; with `live`, hands the body on as it is imported. */
  async #recordFresh(request: RecorderRequest, previous: DecodedEntry | undefined, options: RecordOptions, live: Handover | undefined, onHead: (head: ResponseHead) => void): Promise<{ entry: DecodedEntry; fetched: boolean }> {
    const flight = this.#startFlight(request.key.id);
    try {
      let fetched: Fetched;
      try {
        fetched = await this.#fetchAndImport(request, flight, options, live, onHead);
      } catch (err) {
        if (!(err instanceof UpstreamError) || options.answerFailures !== true) throw err;
        const entry = await this.#answerFailure(request.key, err, previous);
        flight.resolve(entry);
        await this.#addToRun(entry);
        return { entry, fetched: false };
      }
      await request.body?.dispose(); // the upstream has the whole request body by now
      await options.check?.(fetched.record);
      // Journalled in the run by `#commit` before the client gets its last bytes: a client that saw a complete
      // answer can rely on it being in the netlock, even if the oracle is killed right after.
      const entry = await this.#commit(request.key, fetched.record, previous);
      flight.resolve(entry);
      await fetched.release();
      return { entry, fetched: true };
    } catch (thrown) {
      const err = asStoreFailure(thrown, request.key);
      flight.reject(err);
      live?.fail(err);
      throw err;
    } finally {
      this.#inFlight.delete(request.key.id);
    }
  }

  /**
   * Fetches upstream and imports the body. With `live`, every chunk but the newest is handed on as it
   * arrives; the newest is held back until `release` (after the record is persisted).
   */
  async #fetchAndImport(request: RecorderRequest, flight: InFlight, options: RecordOptions, live: Handover | undefined, onHead: (head: ResponseHead) => void): Promise<Fetched> {
    const { fetcher, store, stats, digests } = this.#init;
    const { key } = request;
    const abort = new AbortSwitch();
    // A caller without a client (fetch-oracle seed) stops the fetch through its own signal.
    const callerStopped = (): void => abort.abort();
    if (options.signal !== undefined) {
      if (options.signal.aborted) abort.abort();
      else options.signal.addEventListener('abort', callerStopped, { once: true });
    }
    let received = 0;
    let declaredBytes: number | undefined;
    const onClientGone = (): void => {
      // A client that left before it had the whole body, with nobody else waiting for this fetch: stop it
      // (nothing partial is recorded). One that had every declared byte leaves the recording to finish.
      const complete = declaredBytes !== undefined && received >= declaredBytes;
      if (!complete && flight.waiters === 0) abort.abort();
    };
    options.clientGone?.once('abort', onClientGone);
    try {
      // A store that cannot take blocks refuses the request before anything is fetched (502 naming the store).
      await store.check();
      stats.upstreamFetches++;
      const asked = performance.now();
      const upstream = await fetcher.fetch({
        method: key.method,
        url: request.url,
        headers: request.headers.filter(([n]) => !PARTIAL_REQUEST_HEADERS.has(n)),
        ...(request.body === undefined ? {} : { body: request.body.open(), bodySize: request.body.size }),
        signal: abort,
      });
      this.#init.observeUpstream?.((performance.now() - asked) / 1000);
      const fetchedAt = new Date().toISOString();
      const declared = upstream.headers.find(([n]) => n === 'content-length')?.[1];
      if (declared !== undefined) declaredBytes = Number(declared);
      const noBody = key.method === 'HEAD' || !statusHasBody(upstream.status);
      // A body declared to fit one chunk is one raw leaf: its CID's digest is its SHA-256 (rawBodySha256).
      const sizeHint = noBody ? 0 : declaredBytes;
      const digest = digests.begin(sizeHint === undefined ? {} : { sizeHint, sha256Given: !noBody && sizeHint <= CHUNK_BYTES });
      const recordable = recordableResponseHeaders(upstream.headers);
      const liveHead = liveResponseHead(upstream, key.method, fetchedAt, recordable);
      const tee = new LiveTee(live, () => onHead(liveHead));
      const sink = tee.sink(store);
      let body: FetchRecord['response']['body'] = null;
      try {
        if (noBody) upstream.body.destroy();
        else {
          // The digest job hashes the whole body (on the worker, unless it was declared to fit one batch);
          // this thread pipes, hashes the leaves (their CIDs) and stores. A loop, not a generator feeding
          // importBody (`BodyImporter` says why). An abort stops the loop (undici ends the body too); leaf
          // writes under way finish, unreferenced.
          const importer = new BodyImporter(sink, sizeHint === undefined ? {} : { sizeHint });
          for await (const chunk of upstream.body) {
            if (abort.aborted) throw new AbortedError();
            received += chunk.byteLength;
            bodyBytesReceived(received, chunk.byteLength);
            await digest.update(chunk);
            await tee.pass(chunk);
            await importer.write(chunk);
          }
          body = (await importer.end()).cid;
        }
      } catch (err) {
        upstream.body.destroy();
        digest.abandon();
        if (err instanceof StoreError) throw err;
        if (abort.aborted) throw new TruncatedBodyError(`Client went away during ${key.method} ${key.url}; nothing recorded`);
        throw new TruncatedBodyError(`Upstream body of ${key.method} ${key.url} failed after ${received} bytes; nothing recorded: ${(err as Error).message}`, { cause: err });
      }
      if (!noBody && declaredBytes !== undefined && declaredBytes !== received) {
        digest.abandon();
        throw new TruncatedBodyError(`Upstream sent ${received} of ${declared} bytes for ${key.method} ${key.url}; nothing recorded`);
      }
      const size = noBody ? Number(declared ?? 0) : received;
      // A body of one raw leaf was hashed whole for its CID already: that digest is its SHA-256.
      const record = this.#buildRecord(key, fetchedAt, { status: upstream.status, headers: recordable, body, size, ...(await digest.digest({ sha256: rawBodySha256(body) })) });
      stats.bytesRecorded += received;
      return { record, release: () => tee.release() };
    } finally {
      options.clientGone?.removeListener('abort', onClientGone);
      options.signal?.removeEventListener('abort', callerStopped);
    }
  }

  /** The one place a record is put together: the request it answers, the response, who signs it. */
  #buildRecord(key: RequestKey, fetchedAt: string, response: FetchRecord['response']): FetchRecord {
    const { signer } = this.#init;
    return {
      v: 1,
      request: { method: key.method, url: key.url, headers: key.variant, ...(key.bodyDigest === undefined ? {} : { bodyDigest: key.bodyDigest }) },
      response,
      fetchedAt,
      oracle: signer.publicKey,
      ...(signer.attestation === undefined ? {} : { attestation: signer.attestation }),
    };
  }

  /**
   * A request that got no answer at all (DNS, refused, TLS, timeout). A recorded answer stays in force;
   * otherwise the failure is recorded as the build saw it, so a probing build behaves the same offline.
   */
  async #answerFailure(key: RequestKey, err: UpstreamError, previous: DecodedEntry | undefined): Promise<DecodedEntry> {
    if (previous !== undefined) {
      this.#init.logger.warn('%s; keeping the recorded answer %s', err.message, previous.signed.record.toString());
      return previous;
    }
    // A timeout says nothing lasting about the origin (it may be slow now): answered, never recorded.
    if (this.#init.recordUpstreamFailures === false || err instanceof UpstreamTimeoutError) throw err; // a 502 (504) to the client, nothing recorded
    const bytes = new TextEncoder().encode(`${err.message}\n`);
    const digest = this.#init.digests.begin();
    await digest.update(bytes);
    const body = await importBody([bytes], this.#init.store);
    const headers: HeaderList = [['content-type', 'text/plain; charset=utf-8'], ['x-oracle-error', err.code], ['x-fetch-oracle-upstream-failure', err.reason]];
    const record = this.#buildRecord(key, new Date().toISOString(), { status: 502, headers, body: body.cid, size: bytes.byteLength, ...(await digest.digest()) });
    return this.#commit(key, record, undefined);
  }

  /**
   * Makes `record` the answer for its key: stored, signed, indexed and journalled in the run. When it re-fetched a recorded answer
   * with the same status and body, the old record stays (a netlock does not churn); different bytes are
   * upstream mutation: the new version is kept beside the old one, reported, and becomes current.
   */
  async #commit(key: RequestKey, record: FetchRecord, previous: DecodedEntry | undefined): Promise<DecodedEntry> {
    const { store, signer, index, stats, logger } = this.#init;
    // The records whose bodies ended in this turn of the event loop are committed together at its end, stage by
    // stage (`untilTurnEnd`), not each inside the socket read that ended its body (issue #15). 4 KiB records at
    // 16 and 64 connections: ~215 us of CPU each instead of ~300, +53% and +61% a second in
    // bench/record-miss.sh; one connection unchanged. The threads reading the answers and the upstream requests
    // were woken ~3.6x less often a record (perf). A `setImmediate` per commit gained less than half as much.
    await untilTurnEnd();
    const oldBody = bodyText(previous?.record);
    const newBody = bodyText(record);
    if (previous !== undefined && previous.record.response.status === record.response.status && oldBody === newBody) {
      await this.#addToRun(previous);
      return previous;
    }
    this.#init.checkpoints.throwIfFailed();
    const block = await encodeRecord(record);
    await store.put(block.cid, block.bytes);
    // Pinned (record + body DAG, recursively) before it is signed and indexed: nothing is recorded that the
    // store could garbage-collect or has not fully taken.
    await store.pin(block.cid, { recursive: true });
    const signed = await signer.sign(block.cid);
    const entry: DecodedEntry = { key: key.id, signed, record };
    // The index line and the run's journal line name only blocks stored above; both are on disk after the
    // checkpoint that puts those blocks there (before the answer ends with `--sync each`).
    await Promise.all([index.put(key.id, signed), this.#init.run.add(entry)]);
    await this.#init.checkpoints.recorded();
    if (previous !== undefined) {
      stats.mutations++;
      this.mutations.push({ method: key.method, url: key.url, oldRecord: cidText(previous.signed.record), newRecord: cidText(block.cid), oldStatus: previous.record.response.status, newStatus: record.response.status, oldBody, newBody });
      logger.warn('upstream mutation: %s %s changed: %d %s -> %d %s (both versions kept; this run uses the new one)', key.method, key.url, previous.record.response.status, oldBody ?? '-', record.response.status, newBody ?? '-');
    }
    logger.info('recorded %s %s -> %d %s (%d bytes)', key.method, key.url, record.response.status, newBody ?? '-', record.response.size);
    return entry;
  }
}

/** A record's body CID as text, or null for a response without one (or no record). */
function bodyText(record: FetchRecord | undefined): string | null {
  const body = record?.response.body;
  return body === undefined || body === null ? null : cidText(body);
}

/**
 * A file system failure while recording (the record index or the journal on a full disk) as the StoreError
 * it is, so the client is answered 502 ORACLE_ERR_STORE rather than 500; anything else as it was.
 */
function asStoreFailure(err: unknown, key: RequestKey): unknown {
  if (err instanceof OracleError || !(err instanceof Error)) return err;
  const sys = err as NodeJS.ErrnoException;
  if (typeof sys.code !== 'string' || typeof sys.syscall !== 'string') return err;
  return new StoreError(`Cannot record ${key.method} ${key.url} in the data directory: ${err.message}`, { cause: err });
}
