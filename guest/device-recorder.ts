import { BadRequestError, InvalidRecordError } from '../src/errors.ts';
import type { Logger } from '../src/log.ts';
import { bodyRefusal, decodeRecordReply, encodeRecordRequest, GIO_DOMAIN_RECORD, RECORDABLE_METHODS } from '../src/machine/gio-record-wire.ts';
import { createStats } from '../src/oracle/stats.ts';
import type { OracleStats } from '../src/oracle/stats.ts';
import type { AbortOptions, BlockSource } from '../src/protocol/blocks.ts';
import { verifyingSource } from '../src/protocol/blocks.ts';
import { PROXY_OWNED_REQUEST_HEADERS, withoutHopByHop } from '../src/protocol/headers.ts';
import type { HeaderList } from '../src/protocol/headers.ts';
import { loggableUrl, withMethod } from '../src/protocol/request-key.ts';
import type { RequestKey, VariantRules } from '../src/protocol/request-key.ts';
import { loadVerifiedRecord } from '../src/protocol/verify-record.ts';
import { ReplayHandler } from '../src/proxy/replay-handler.ts';
import type { ReplayAnswer, ReplayDecider, ReplayRequest } from '../src/proxy/replay-handler.ts';

/** One GIO request to any domain (`DeviceBlockSource.request`). */
export interface GioChannel {
  request(domain: number, id: Uint8Array, options?: AbortOptions): Promise<Uint8Array>;
}

export interface DeviceRecorderInit {
  /** The device: 0x26 requests go through it. */
  device: GioChannel;
  /** Blocks by CID over 0x25 (records and bodies); verified on every read. */
  source: BlockSource;
  /** The host's key (RunConfig `trust`): records it signs are accepted, others refused. */
  trusted: readonly Uint8Array[];
  /** The host record path's extra variant rules: none for `machine run --record`. */
  variantRules?: VariantRules;
  stats: OracleStats;
  logger: Logger;
}

/**
 * The guest's record mode (`machine run --record`): the replay proxy front over a decider that, for each
 * request, asks the host to record it through GIO 0x26 (`{"v":1,"method","url","headers"}`, the request as
 * the client sent it: the key alone lacks credentials and non-variant headers an origin may need), then
 * reads the record it names by CID over 0x25 and checks it exactly as replay does: block hash, signature by
 * a trusted key, and that it answers this request's key (or, for a HEAD, the same URL's GET).
 *
 * Only GET and HEAD are recorded this way: a request body does not travel over 0x26 yet (501).
 */
export class DeviceRecorder implements ReplayDecider {
  /** The host repeats each request upstream: it needs the client's URL and headers, not just the key. */
  readonly needsRequest = true;
  readonly #init: DeviceRecorderInit;
  readonly #source: BlockSource;
  /** Keys the host recorded or reused for this run (the entries its netlock will have). */
  readonly recorded = new Set<string>();

  constructor(init: DeviceRecorderInit) {
    this.#init = init;
    this.#source = verifyingSource(init.source);
  }

  variantRules(): Promise<VariantRules | undefined> {
    return Promise.resolve(this.#init.variantRules);
  }

  async answer(key: RequestKey, request?: ReplayRequest): Promise<ReplayAnswer> {
    const { device, trusted, stats, logger } = this.#init;
    if (!RECORDABLE_METHODS.has(key.method) || key.bodyDigest !== undefined) throw new BadRequestError(bodyRefusal(key.method), 501);
    const id = encodeRecordRequest({
      method: key.method,
      url: request?.url ?? key.url,
      headers: request === undefined ? Object.entries(key.variant) : forwardable(request.headers),
    });
    const reply = decodeRecordReply(await device.request(GIO_DOMAIN_RECORD, id));
    const filed = filedKey(key, reply.key);
    if (filed === undefined) {
      throw new InvalidRecordError(`The host recorded ${key.method} ${loggableUrl(key.url)} under another request key (${JSON.stringify(reply.key.split('\n').slice(0, 2).join(' '))}): do the host and the guest use the same variant rules?`);
    }
    const record = await loadVerifiedRecord(reply.signed, filed, this.#source, trusted);
    this.recorded.add(filed.id);
    if (reply.fetched) {
      stats.misses++;
      stats.upstreamFetches++;
    } else {
      stats.hits++;
    }
    logger.debug('recorded %s %s -> %d (%s)', key.method, loggableUrl(key.url), record.response.status, reply.fetched ? 'fetched' : 'recorded before');
    return { kind: 'hit', record };
  }
}

/** The key the host may file an answer under: this request's, or for a HEAD its GET's (design §5). */
function filedKey(key: RequestKey, id: string): RequestKey | undefined {
  if (id === key.id) return key;
  if (key.method !== 'HEAD') return undefined;
  const get = withMethod(key, 'GET');
  return id === get.id ? get : undefined;
}

/** The client's headers minus what the proxy owns (hop-by-hop, host, framing) and proxy credentials. */
function forwardable(headers: HeaderList): Array<[string, string]> {
  return withoutHopByHop(headers).filter(([n]) => !PROXY_OWNED_REQUEST_HEADERS.has(n) && !n.startsWith('proxy-'));
}

export interface OpenDeviceRecordInit extends Omit<DeviceRecorderInit, 'stats'> {
  /** @default fresh record counters */
  stats?: OracleStats;
}

export interface OpenedDeviceRecord {
  /** What the proxy front serves (the replay handler over the recording decider). */
  readonly handler: ReplayHandler;
  readonly recorder: DeviceRecorder;
  readonly stats: OracleStats;
}

/** The guest's record mode, as `openReplay` is its replay mode: hand `handler` to the ProxyServer. */
export function openDeviceRecord(init: OpenDeviceRecordInit): OpenedDeviceRecord {
  const stats = init.stats ?? createStats('record');
  const source = verifyingSource(init.source);
  const recorder = new DeviceRecorder({ ...init, source, stats, logger: init.logger.child('record') });
  const handler = new ReplayHandler({ replayer: recorder, source, stats, logger: init.logger.child('record') });
  return { handler, recorder, stats };
}
