import { Counter, Histogram, Registry } from 'prom-client';
import type { BlockStore } from '../store/block-store.ts';

/** How a proxied request was answered (the `outcome` label). */
export type RequestOutcome = 'hit' | 'miss' | 'recorded' | 'error';

/** The counters of `OracleStats` that metrics mirror (read at scrape time: the stats stay the one count). */
export interface ScrapedStats {
  bytesServed: number;
  bytesRecorded: number;
  upstreamFetches: number;
  mutations: number;
  /** Record mode's checkpoints (`--sync`); absent where nothing records. */
  checkpoints?: number;
  checkpointSeconds?: number;
}

/** Block store operations counted (the `op` label). */
const STORE_OPS = ['get', 'put', 'has', 'pin', 'putMany'] as const;

/** Upstream latency buckets (seconds to the response head): loopback origins to slow mirrors. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * One oracle's metrics, in a Registry of its own (never prom-client's global one), so two oracles in one
 * process, and tests, never share a counter. Names are documented in docs/report.md.
 */
export class OracleMetrics {
  readonly registry = new Registry();
  readonly #requests: Counter<'outcome'>;
  readonly #byOutcome = {} as Record<RequestOutcome, { inc(n?: number): void }>;
  readonly #latency: Histogram;
  readonly #storeOps: Counter<'op'>;

  /** `stats`: the oracle's counters; `deviceRoundTrips`: the GIO requests a machine driver answered so far. */
  constructor(sources: { stats?: ScrapedStats; deviceRoundTrips?: () => number } = {}) {
    const { stats } = sources;
    const registers = [this.registry];
    this.#requests = new Counter({ name: 'fetch_oracle_requests_total', help: 'Proxied requests by outcome (hit, miss, recorded, error)', labelNames: ['outcome'], registers });
    // Label children made once: hashing a label set on every request costs more than the counting.
    for (const o of ['hit', 'miss', 'recorded', 'error'] as const) {
      this.#byOutcome[o] = this.#requests.labels({ outcome: o });
      this.#byOutcome[o].inc(0); // listed at 0 from the start
    }
    this.#latency = new Histogram({ name: 'fetch_oracle_upstream_latency_seconds', help: 'Upstream fetches: seconds until the response head', buckets: LATENCY_BUCKETS, registers });
    this.#storeOps = new Counter({ name: 'fetch_oracle_block_store_operations_total', help: 'Block store operations by kind', labelNames: ['op'], registers });
    for (const op of STORE_OPS) this.#storeOps.inc({ op }, 0);
    mirror(this.registry, 'fetch_oracle_device_round_trips_total', 'Cartesi Machine device (GIO) requests answered (serve-machine)', () => sources.deviceRoundTrips?.() ?? 0);
    if (stats !== undefined) {
      mirror(this.registry, 'fetch_oracle_bytes_served_total', 'Response body bytes sent to clients', () => stats.bytesServed);
      mirror(this.registry, 'fetch_oracle_bytes_fetched_total', 'Body bytes fetched from upstream origins', () => stats.bytesRecorded);
      mirror(this.registry, 'fetch_oracle_upstream_fetches_total', 'Requests sent upstream', () => stats.upstreamFetches);
      mirror(this.registry, 'fetch_oracle_upstream_mutations_total', 'Recorded answers that changed upstream (new versions kept)', () => stats.mutations);
      mirror(this.registry, 'fetch_oracle_checkpoints_total', 'Record checkpoints that put records on disk (--sync)', () => stats.checkpoints ?? 0);
      mirror(this.registry, 'fetch_oracle_checkpoint_seconds_total', 'Seconds record checkpoints took syncing, in all', () => stats.checkpointSeconds ?? 0);
    }
  }

  request(outcome: RequestOutcome): void {
    this.#byOutcome[outcome].inc();
  }

  upstreamLatency(seconds: number): void {
    this.#latency.observe(seconds);
  }

  /** The text exposition format and its content type (`GET /metrics`). */
  async scrape(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }

  /**
   * `store` with its get/put/has/pin/putMany counted. Methods are bound to the store itself (its private
   * fields need the real `this`); everything else, including optional ones such as a block reader's, passes.
   */
  countingStore(store: BlockStore): BlockStore {
    const ops = this.#storeOps;
    const counted = new Set<string | symbol>(STORE_OPS);
    // One wrapper per method, made on first use: the replay hot path reads blocks per request.
    const methods = new Map<string | symbol, unknown>();
    return new Proxy(store, {
      get(target, prop): unknown {
        const kept = methods.get(prop);
        if (kept !== undefined) return kept;
        const value: unknown = Reflect.get(target, prop, target);
        if (typeof value !== 'function') return value;
        const fn = value as (...args: unknown[]) => unknown;
        let wrapped: unknown;
        if (counted.has(prop)) {
          const child = ops.labels({ op: String(prop) });
          wrapped = (...args: unknown[]): unknown => {
            child.inc();
            return fn.apply(target, args);
          };
        } else wrapped = fn.bind(target);
        methods.set(prop, wrapped);
        return wrapped;
      },
    });
  }
}

/** A counter that reads its value from a stats field at scrape time (it only ever grows). */
function mirror(registry: Registry, name: string, help: string, read: () => number): void {
  let seen = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect(): void {
      const now = read();
      if (now > seen) this.inc(now - seen);
      seen = Math.max(seen, now);
    },
  });
}
