import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { AdminServer } from '../admin/server.ts';
import { InvalidConfigError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { NOOP_LOGGER } from '../log.ts';
import { verifyingSource } from '../protocol/blocks.ts';
import { NetlockReader } from '../netlock/dag.ts';
import { decodeRecord } from '../protocol/record.ts';
import { normaliseUrl, parseKeyId } from '../protocol/request-key.ts';
import type { VariantRules } from '../protocol/request-key.ts';
import { toHex } from '../protocol/signature.ts';
import { ProxyServer } from '../proxy/proxy-server.ts';
import type { ListenAddress } from '../proxy/proxy-server.ts';
import { exportCar } from '../netlock/car.ts';
import { buildNetlockFile, readNetlockRoot } from '../netlock/file.ts';
import type { NetlockFile } from '../netlock/file.ts';
import { LocalSigner } from '../signing/local-signer.ts';
import type { Signer } from '../signing/local-signer.ts';
import { createBlockStore } from '../store/index.ts';
import type { BlockStore } from '../store/block-store.ts';
import { CID } from 'multiformats/cid';
import { MemoryBlockStore } from '../store/memory-block-store.ts';
import { CertAuthority } from '../tls/cert-authority.ts';
import type { ProxyAddress } from '../upstream/connect-tunnel.ts';
import type { UpstreamMutation } from './record-mode.ts';
import { describeRefused } from '../records/journal-check.ts';
import { removeStaleTempFiles } from '../store/stale-temp.ts';
import { RecordPath } from './record-path.ts';
import { ReplayMode } from './replay-mode.ts';
import { createStats } from './stats.ts';
import type { OracleStats } from './stats.ts';

export interface ReplayReport {
  netlock: string;
  entries: number;
  used: number;
  misses: ReplayMode['misses'];
  unused: Array<{ method: string; url: string; accept: string }>;
  stats: OracleStats;
}

export interface OracleInit {
  mode: 'record' | 'replay';
  /** Data directory: blocks, record index, oracle key, CA. */
  dataDir: string;
  /** Proxy address: `{host, port}` (port 0 picks one) or a unix socket `{path}`. */
  listen: ListenAddress | { path: string };
  /** Record mode: where the netlock of this run is written on close. Replay mode: the netlock to serve (required). */
  netlockPath?: string;
  /** Kubo RPC API URL: every block also goes to Kubo (the data directory stays as its cache) and each record's
   * DAG and the netlock root are pinned there. @default none (embedded store only) */
  ipfs?: string;
  /** Admin API address. @default none */
  admin?: ListenAddress;
  /** Bearer token for the admin API (required off loopback). */
  adminToken?: string;
  /** Replay mode: oracle public keys whose records are accepted. @default the data directory's own key */
  trust?: readonly Uint8Array[];
  /** Record mode: extra variant headers per host, e.g. `{ 'registry.example': ['x-api-version'] }`. */
  variantRules?: VariantRules;
  /** Record mode: fetch every recorded request again once per run; changed answers become new versions. @default false */
  refresh?: boolean;
  /** Record mode: extra CA certificates (PEM) the upstream client trusts. */
  upstreamCaPem?: readonly string[];
  /**
   * Record mode: sign with this key instead of the data directory's key file (enclave mode: a key born in
   * the enclave, held only in memory, whose records carry its attestation CID). @default LocalSigner of dataDir
   */
  signer?: Signer;
  /** Record mode: reach origins through this HTTP CONNECT proxy; TLS still ends here. @default direct */
  upstreamProxy?: ProxyAddress;
  /** Record mode: record answer-less upstream failures as 502 records (off in enclave mode). @default true */
  recordUpstreamFailures?: boolean;
  logger?: Logger;
}

/** Wires store, index, signer, fetcher, proxy and admin API for one mode; `start()` / `close()` manage its life. */
export class Oracle {
  readonly init: OracleInit;
  readonly stats: OracleStats;
  readonly logger: Logger;
  readonly store: BlockStore;
  #proxy: ProxyServer | undefined;
  #admin: AdminServer | undefined;
  #recordPath: RecordPath | undefined;
  #replay: ReplayMode | undefined;
  #ca: CertAuthority | undefined;
  #closing: Promise<NetlockFile | undefined> | undefined;

  constructor(init: OracleInit) {
    if (init.mode === 'replay' && init.netlockPath === undefined) throw new InvalidConfigError('Replay mode needs a netlock (--netlock FILE)');
    this.init = init;
    this.logger = init.logger ?? NOOP_LOGGER;
    this.stats = createStats(init.mode);
    this.store = createBlockStore({ dataDir: init.dataDir, ...(init.ipfs === undefined ? {} : { ipfs: init.ipfs }), logger: this.logger });
  }

  get caCertPath(): string {
    return join(this.init.dataDir, 'ca', 'ca-cert.pem');
  }

  /** Record mode: upstream mutations seen in this run. */
  get mutations(): readonly UpstreamMutation[] {
    return this.#recordPath?.mode.mutations ?? [];
  }

  /** Replay mode: every miss so far, and every netlock entry no request used (`replay --report`). */
  async replayReport(): Promise<ReplayReport | undefined> {
    if (this.#replay === undefined) return undefined;
    const reader = new NetlockReader((await readNetlockRoot(this.init.netlockPath!)).root, verifyingSource(this.store));
    const unused: ReplayReport['unused'] = [];
    let entries = 0;
    for await (const e of reader.entries()) {
      entries++;
      if (this.#replay.used.has(e.key)) continue;
      const k = parseKeyId(e.key);
      unused.push({ method: k.method, url: k.url, accept: k.variant['accept'] ?? '' });
    }
    return { netlock: reader.root.toString(), entries, used: this.#replay.used.size, misses: this.#replay.misses, unused, stats: { ...this.stats } };
  }

  async start(): Promise<void> {
    const { init, logger } = this;
    this.#ca = await CertAuthority.loadOrCreate({ dir: join(init.dataDir, 'ca'), logger: logger.child('tls') });
    await removeStaleTempFiles(init.dataDir, logger, init.mode === 'record' ? init.netlockPath : undefined);
    let handler;
    if (init.mode === 'record') {
      const path = (this.#recordPath = await RecordPath.open({
        store: this.store,
        dataDir: init.dataDir,
        ...(init.netlockPath === undefined ? {} : { netlockPath: init.netlockPath }),
        ...(init.signer === undefined ? {} : { signer: init.signer }),
        ...(init.upstreamCaPem === undefined ? {} : { upstreamCaPem: init.upstreamCaPem }),
        ...(init.upstreamProxy === undefined ? {} : { upstreamProxy: init.upstreamProxy }),
        ...(init.refresh === undefined ? {} : { refresh: init.refresh }),
        ...(init.recordUpstreamFailures === undefined ? {} : { recordUpstreamFailures: init.recordUpstreamFailures }),
        ...(init.variantRules === undefined ? {} : { variantRules: init.variantRules }),
        stats: this.stats,
        logger,
      }));
      const { entries, bad } = path.leftover;
      if (entries.length > 0) {
        const own = init.signer?.publicKey ?? (await LocalSigner.publicKeyIn(init.dataDir));
        const refused = await path.run.restore(entries, this.store, own === undefined ? undefined : [own]);
        if (refused.length > 0) logger.warn('%s', describeRefused(refused, path.journalPath));
        logger.warn('recovered %d request(s) from %s, left by a run that did not finish', entries.length - refused.length, path.journalPath);
      }
      if (bad.length > 0) logger.warn('skipped %d torn line(s) of %s', bad.length, path.journalPath);
      handler = path.mode;
    } else {
      const { root } = await readNetlockRoot(init.netlockPath!);
      // Every block is verified as it is read (measured: hashing leaves on a worker made replay slower).
      const verified = verifyingSource(this.store);
      const netlock = new NetlockReader(root, verified);
      const rootValue = await netlock.rootValue();
      const own = await LocalSigner.publicKeyIn(init.dataDir);
      const trusted = init.trust ?? (own === undefined ? [] : [own]);
      const untrusted = rootValue.oracles.filter((k) => !trusted.some((t) => toHex(t) === toHex(k)));
      if (untrusted.length > 0) {
        logger.warn('netlock %s has records signed by untrusted key(s) %s; they will be refused (use --trust)', root.toString(), untrusted.map(toHex).join(', '));
      }
      this.#replay = new ReplayMode({ netlock, source: verified, trusted, stats: this.stats, logger: logger.child('replay') });
      handler = this.#replay;
      logger.info('replaying netlock %s (%d entries)', root.toString(), rootValue.count);
    }
    this.#proxy = new ProxyServer({ handler, certs: this.#ca, logger: logger.child('proxy') });
    await this.#proxy.listen(init.listen);
    if (init.admin !== undefined) {
      this.#admin = await AdminServer.start(init.admin, {
        stats: () => ({ ...this.stats }),
        recordsForUrl: (url) => this.#recordsForUrl(url),
        netlock: () => this.#netlockSoFar(),
        netlockCar: () => this.#netlockCar(),
        caPem: () => this.#ca!.certPem,
        ...(init.adminToken === undefined ? {} : { token: init.adminToken }),
      });
    }
  }

  proxyAddress(): ListenAddress {
    if (this.#proxy === undefined) throw new Error('Oracle not started');
    return this.#proxy.address();
  }

  adminAddress(): ListenAddress | undefined {
    return this.#admin?.address();
  }

  async #recordsForUrl(url: string): Promise<object[]> {
    const norm = normaliseUrl(url);
    const out: object[] = [];
    const source = verifyingSource(this.store);
    const index = this.#recordPath?.index;
    if (index !== undefined) {
      for (const key of index.keysForUrl(norm)) {
        const signed = index.get(key)!;
        out.push(describeRecord(key, signed.record.toString(), decodeRecord(await source.get(signed.record))));
      }
    } else if (this.#replay !== undefined) {
      const reader = new NetlockReader((await readNetlockRoot(this.init.netlockPath!)).root, source);
      for await (const e of reader.entries()) {
        if (parseKeyId(e.key).url === norm) out.push(describeRecord(e.key, e.signed.record.toString(), decodeRecord(await source.get(e.signed.record))));
      }
    }
    return out;
  }

  async #netlockSoFar(): Promise<object> {
    const run = this.#recordPath?.run;
    if (run === undefined) return readNetlockRoot(this.init.netlockPath!).then((r) => r.file ?? { netlock: r.root.toString() });
    // Built into memory: the run's netlock as it would be written now, without touching the store.
    return buildNetlockFile(run.entries(), new MemoryBlockStore(), this.init.variantRules === undefined ? {} : { variantRules: this.init.variantRules });
  }

  async #netlockCar(): Promise<{ root: string; write(out: Writable, signal: AbortSignal): Promise<void> }> {
    // Record mode: the run's netlock DAG so far is written to the store (content-addressed, so harmless)
    // to be exported with everything it names. This is how a netlock leaves an enclave with its bodies.
    const root =
      this.#recordPath === undefined
        ? (await readNetlockRoot(this.init.netlockPath!)).root
        : CID.parse((await buildNetlockFile(this.#recordPath.run.entries(), this.store, this.init.variantRules === undefined ? {} : { variantRules: this.init.variantRules })).netlock);
    return { root: root.toString(), write: async (out, signal) => void (await exportCar(root, this.store, out, { signal })) };
  }

  /** Stops serving; in record mode writes the netlock of this run. Idempotent. */
  close(): Promise<NetlockFile | undefined> {
    this.#closing ??= (async () => {
      await this.#admin?.close();
      await this.#proxy?.close();
      await this.#recordPath?.close();
      if (this.#recordPath !== undefined && this.init.netlockPath !== undefined) {
        const file = await this.#recordPath.writeNetlock();
        await this.store.close();
        this.logger.info('wrote netlock %s (%d entries) to %s', file.netlock, file.count, this.init.netlockPath);
        return file;
      }
      await this.store.flush().catch(() => {});
      await this.store.close();
      return undefined;
    })();
    return this.#closing;
  }
}

function describeRecord(key: string, cid: string, r: ReturnType<typeof decodeRecord>): object {
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

