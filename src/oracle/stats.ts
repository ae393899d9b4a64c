/** Counters behind `GET /stats`. */
export interface OracleStats {
  mode: 'record' | 'replay';
  requests: number;
  hits: number;
  misses: number;
  upstreamFetches: number;
  coalesced: number;
  mutations: number;
  errors: number;
  bytesServed: number;
  bytesRecorded: number;
  /** Requests the proxy's front answered without Node's HTTP server (replay hits, `src/proxy/hit-front.ts`). */
  answeredAtOnce: number;
  /** Record: checkpoints that put records on disk (`--sync`), and the seconds they took in all. */
  checkpoints: number;
  checkpointSeconds: number;
}

export function createStats(mode: 'record' | 'replay'): OracleStats {
  return { mode, requests: 0, hits: 0, misses: 0, upstreamFetches: 0, coalesced: 0, mutations: 0, errors: 0, bytesServed: 0, bytesRecorded: 0, answeredAtOnce: 0, checkpoints: 0, checkpointSeconds: 0 };
}
