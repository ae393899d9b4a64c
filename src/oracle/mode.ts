import type { Readable } from 'node:stream';
import type { CID } from 'multiformats/cid';
import type { FetchRecord } from '../protocol/record.ts';
import { toHex } from '../protocol/signature.ts';
import type { WrittenNetlock } from '../netlock/file.ts';
import type { ExchangeHandler } from '../proxy/exchange.ts';
import type { ReplayReport } from './open-replay.ts';
import type { UpstreamMutation } from './recorder.ts';
import type { LiveView } from '../report/live.ts';

/** What the Oracle asks of its mode (record or replay): it never branches on which one it has. */
export interface OracleMode {
  /** What the proxy front serves. */
  readonly handler: ExchangeHandler;
  /** Upstream mutations seen in this run (replay has none). */
  readonly mutations: readonly UpstreamMutation[];
  /** Every record this mode holds for a URL (`GET /v1/records?url=`). */
  recordsForUrl(url: string): Promise<object[]>;
  /** The netlock as it stands, as its readable file streamed, or its root alone: this run's so far (record), the one served (replay). */
  netlockSoFar(): Promise<Readable | object>;
  /** The root of that netlock, its blocks in the store (for a CAR export). */
  netlockRoot(): Promise<CID>;
  /** The live report page's view of this mode: its netlock so far and its misses. */
  reportView(): Promise<LiveView>;
  /** Replay: misses and unused entries; record: none. */
  replayReport(): Promise<ReplayReport | undefined>;
  /** Stops the mode (the proxy has stopped); record mode writes its netlock. Idempotent. */
  close(): Promise<WrittenNetlock | undefined>;
}

/** A record as the admin API lists it. */
export function describeRecord(key: string, cid: string, r: FetchRecord): object {
  return {
    key,
    record: cid,
    request: r.request,
    response: {
      status: r.response.status,
      headers: r.response.headers,
      body: r.response.body?.toString() ?? null,
      size: r.response.size,
      sha256: toHex(r.response.sha256),
      sha512: toHex(r.response.sha512),
    },
    fetchedAt: r.fetchedAt,
    oracle: toHex(r.oracle),
  };
}
