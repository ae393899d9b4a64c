import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { AdminServer } from '../admin/server.ts';
import type { Logger } from '../log.ts';
import { NOOP_LOGGER } from '../log.ts';
import type { WrittenNetlock } from '../netlock/file.ts';
import { ProxyServer } from '../proxy/proxy-server.ts';
import { isLoopbackHost, ProxyGate } from '../config/exposure.ts';
import type { OwnAddress } from '../config/exposure.ts';
import type { ListenAddress } from '../io/listen.ts';
import type { BlockStore } from '../store/block-store.ts';
import { createBlockStore, KUBO_FETCH_TIMEOUT_MS } from '../store/index.ts';
import { CertAuthority } from '../tls/cert-authority.ts';
import { validateOracleInit } from './config.ts';
import type { OracleInit } from './config.ts';
import type { OracleMode } from './mode.ts';
import type { UpstreamMutation } from './recorder.ts';
import { createStats } from './stats.ts';
import type { OracleStats } from './stats.ts';
import type { ReplayReport } from './open-replay.ts';
import type { LivePoll } from '../report/live.ts';
import type { OracleMetrics } from '../report/metrics.ts';
import type { RequestLog } from '../report/request-log.ts';

export type { OracleInit, RecordInit, ReplayInit } from './config.ts';
export type { ReplayReport } from './open-replay.ts';

/**
 * Opens the mode an init names: the one place that tells record from replay. Each mode's code (record: the
 * upstream client, importer and digests) is imported only when used, so a replay process never loads it.
 */
async function openMode(init: OracleInit, store: BlockStore, stats: OracleStats, logger: Logger, gate: ProxyGate, metrics: OracleMetrics | undefined): Promise<OracleMode> {
  if (init.mode === 'record') return (await import('./record-mode.ts')).RecordMode.open(init, store, stats, logger, gate, metrics === undefined ? undefined : (s) => metrics.upstreamLatency(s));
  return (await import('./replay-mode.ts')).ReplayMode.open(init, store, stats, logger);
}

/** Wires store, CA, proxy and admin API around one mode; `start()` / `close()` manage its life. */
export class Oracle {
  readonly init: OracleInit;
  readonly stats: OracleStats;
  readonly logger: Logger;
  readonly store: BlockStore;
  /** With an admin API only: this oracle's metrics (`GET /metrics`, a registry of its own) and every request
   * answered (the live page, `GET /`). Without one, nothing is counted or logged and prom-client and the page
   * are never loaded: the replay hot path of `run --replay` and `build --replay` pays nothing (measured ~15%
   * CPU per hit, ~13 MB of RSS for prom-client). */
  #metrics: OracleMetrics | undefined;
  #requests: RequestLog | undefined;
  #mode: OracleMode | undefined;
  #proxy: ProxyServer | undefined;
  #admin: AdminServer | undefined;
  #ca: CertAuthority | undefined;
  #closing: Promise<WrittenNetlock | undefined> | undefined;
  /** The proxy's and the admin API's TCP addresses as bound (kept: a closed server has none, and an upstream
   * connection made during shutdown still asks for them). */
  readonly #own: OwnAddress[] = [];

  constructor(init: OracleInit) {
    this.init = validateOracleInit(init);
    this.logger = init.logger ?? NOOP_LOGGER;
    this.stats = createStats(init.mode);
    // Replay reads blocks the local Kubo lacks from its peers (a netlock recorded on another machine); record
    // reads stay local, so that a missing block is repaired by a re-fetch at once.
    const fetchTimeoutMs = init.mode === 'replay' && init.ipfs !== undefined ? (init.ipfsFetchTimeoutMs ?? KUBO_FETCH_TIMEOUT_MS) : undefined;
    this.store = createBlockStore({ dataDir: init.dataDir, ...(init.ipfs === undefined ? {} : { ipfs: init.ipfs }), ...(fetchTimeoutMs === undefined ? {} : { fetchTimeoutMs }), logger: this.logger });
  }

  get caCertPath(): string {
    return join(this.init.dataDir, 'ca', 'ca-cert.pem');
  }

  /** Record mode: upstream mutations seen in this run. */
  get mutations(): readonly UpstreamMutation[] {
    return this.#mode?.mutations ?? [];
  }

  /** Replay mode: every miss so far, and every netlock entry no request used (`replay --report`). */
  async replayReport(): Promise<ReplayReport | undefined> {
    return this.#mode?.replayReport();
  }

  async start(): Promise<void> {
    const { init, logger } = this;
    this.#ca = await CertAuthority.loadOrCreate({ dir: join(init.dataDir, 'ca'), logger: logger.child('tls') });
    // The gate refuses requests without the proxy credentials, and targets that are this oracle's own ports.
    const gate = new ProxyGate({ ...(init.exposure?.proxyAuth === undefined ? {} : { proxyAuth: init.exposure.proxyAuth }), self: () => this.#ownAddresses() });
    let store = this.store;
    if (init.admin !== undefined) {
      const [{ OracleMetrics }, { RequestLog }] = await Promise.all([import('../report/metrics.ts'), import('../report/request-log.ts')]);
      this.#metrics = new OracleMetrics({ stats: this.stats });
      // A recording oracle writes its data directory anyway: its request log waits there, out of the heap.
      this.#requests = new RequestLog({ metrics: this.#metrics, ...(init.mode === 'record' ? { spillDir: init.dataDir } : {}) });
      store = this.#metrics.countingStore(store);
    }
    const mode = (this.#mode = await openMode(init, store, this.stats, logger, gate, this.#metrics));
    const handler = this.#requests === undefined ? mode.handler : this.#requests.observe(mode.handler);
    this.#proxy = new ProxyServer({ handler, certs: this.#ca, logger: logger.child('proxy'), gate, ...(init.limits === undefined ? {} : { limits: init.limits }) });
    await this.#proxy.listen(init.listen);
    if (!('path' in init.listen)) this.#own.push({ ...this.#proxy.address(), role: 'proxy' });
    if (!('path' in init.listen) && !isLoopbackHost(init.listen.host)) logger.warn('proxy listening off loopback on %s (--allow-remote): every request needs the proxy credentials', init.listen.host);
    if (init.admin !== undefined) {
      // The admin API (hono) and the CAR writer load only when asked for.
      const [{ AdminServer }, { exportCar }, { reportHtmlPieces }] = await Promise.all([import('../admin/server.ts'), import('../netlock/export-car.ts'), import('../report/html.ts')]);
      this.#admin = await AdminServer.start(init.admin, {
        stats: () => ({ ...this.stats }),
        recordsForUrl: (url) => mode.recordsForUrl(url),
        netlock: () => mode.netlockSoFar(),
        netlockCar: async () => {
          const root = await mode.netlockRoot();
          return { root: root.toString(), write: async (out, signal) => void (await exportCar(root, this.store, out, { signal })) };
        },
        caPem: () => this.#ca!.certPem,
        report: async (poll) => Readable.from((await this.#liveReport(mode, poll)).json, { objectMode: false }),
        reportPage: async () => {
          const { root, json } = await this.#liveReport(mode);
          return Readable.from(reportHtmlPieces(root, json), { objectMode: false });
        },
        metrics: () => this.#metrics!.scrape(),
        ...(init.adminToken === undefined ? {} : { token: init.adminToken }),
      });
      this.#own.push({ ...this.#admin.address(), role: 'admin' });
    }
  }

  proxyAddress(): ListenAddress {
    if (this.#proxy === undefined) throw new Error('Oracle not started');
    return this.#proxy.address();
  }

  adminAddress(): ListenAddress | undefined {
    return this.#admin?.address();
  }

  /** The live page's data as JSON text in pieces (written as they are read), and the root it shows. */
  async #liveReport(mode: OracleMode, poll?: LivePoll): Promise<{ root: string | undefined; json: Iterable<string> }> {
    const { liveReportJson } = await import('../report/live.ts');
    const view = await mode.reportView();
    return { root: view.netlock?.root, json: liveReportJson(this.init.mode, view, this.stats, this.#requests!, mode.mutations, poll) };
  }

  /** The proxy's and the admin API's TCP addresses, as bound: what the proxy never forwards to. */
  #ownAddresses(): OwnAddress[] {
    return this.#own;
  }

  /** Stops serving; in record mode writes the netlock of this run. Idempotent. */
  close(): Promise<WrittenNetlock | undefined> {
    this.#closing ??= (async () => {
      await this.#admin?.close();
      this.#requests?.close();
      await this.#proxy?.close();
      const file = await this.#mode?.close();
      await this.store.flush().catch(() => {});
      await this.store.close();
      return file;
    })();
    return this.#closing;
  }
}
