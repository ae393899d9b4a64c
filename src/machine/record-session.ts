import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../log.ts';
import { NOOP_LOGGER } from '../log.ts';
import { keptNetlockLine, readKeptNetlock } from '../oracle/kept-netlock.ts';
import { RecordPath } from '../oracle/record-path.ts';
import type { SyncPolicy } from '../oracle/checkpoints.ts';
import { createStats } from '../oracle/stats.ts';
import type { OracleStats } from '../oracle/stats.ts';
import { toHex } from '../protocol/signature.ts';
import type { WrittenNetlock } from '../netlock/file.ts';
import { describeRefused } from '../records/journal-check.ts';
import { LocalSigner } from '../signing/local-signer.ts';
import type { BlockStore } from '../store/block-store.ts';
import { createBlockStore } from '../store/index.ts';
import { removeStaleTempFiles } from '../store/stale-temp.ts';
import { createRecordGioHandler } from './gio-record.ts';
import type { RecordGioHandler } from './gio-record.ts';

export interface MachineRecordSessionInit {
  /** Data directory: blocks (unless Kubo holds them, or `store` is given), record index, oracle key. */
  dataDir: string;
  /** Kubo RPC API URL (`--ipfs`), as `record --ipfs`. Ignored with `store`. */
  ipfs?: string;
  /** A store the caller owns (not closed by `close()`); by default one for `dataDir` / `ipfs`. */
  store?: BlockStore;
  /** The netlock this run writes (`machine run --record NETLOCK`); `NETLOCK.journal` sits beside it. */
  netlockPath: string;
  /** Extra PEM CAs the upstream client trusts (`--upstream-ca`). */
  upstreamCaPem?: readonly string[];
  /** Upstream timeout in ms. @default the fetcher's */
  upstreamTimeoutMs?: number;
  /** When what a record wrote goes on disk (`--sync`). @default a checkpoint a second at most */
  sync?: SyncPolicy;
  logger?: Logger;
}

/**
 * The host side of `machine run --record`: the record path of `fetch-oracle record` (the same RecordPath)
 * without a proxy front. The machine reaches it through GIO 0x26 (`gio.handle`) and reads what it recorded
 * through 0x25 from `store`. As `record --netlock`, a netlock already at the path is kept (a netlock never
 * shrinks) and what an interrupted run left in the journal is taken back; `writeNetlock()` writes the
 * netlock of every request the machine made. The guest trusts `publicKeyHex` (RunConfig `trust`).
 */
export class MachineRecordSession {
  readonly store: BlockStore;
  readonly stats: OracleStats;
  /** The key that signs this run's records: the guest's trust list must hold it. */
  readonly publicKey: Uint8Array;
  /** The GIO 0x26 handler; route the machine's domain 0x26 yields to `gio.handle`. */
  readonly gio: RecordGioHandler;
  readonly netlockPath: string;
  readonly #path: RecordPath;
  readonly #ownsStore: boolean;
  readonly #logger: Logger;
  #closing: Promise<void> | undefined;

  private constructor(store: BlockStore, ownsStore: boolean, stats: OracleStats, path: RecordPath, publicKey: Uint8Array, netlockPath: string, logger: Logger) {
    this.store = store;
    this.#ownsStore = ownsStore;
    this.stats = stats;
    this.#path = path;
    this.publicKey = publicKey;
    this.netlockPath = netlockPath;
    this.#logger = logger;
    this.gio = createRecordGioHandler(path.recorder, logger);
  }

  static async open(init: MachineRecordSessionInit): Promise<MachineRecordSession> {
    const logger = (init.logger ?? NOOP_LOGGER).child('machine-record');
    await mkdir(dirname(init.netlockPath), { recursive: true });
    await removeStaleTempFiles(init.dataDir, logger, init.netlockPath);
    const store = init.store ?? createBlockStore({ dataDir: init.dataDir, ...(init.ipfs === undefined ? {} : { ipfs: init.ipfs }), logger });
    const ownsStore = init.store === undefined;
    let path: RecordPath | undefined;
    try {
      const signer = await LocalSigner.loadOrCreate(init.dataDir);
      const stats = createStats('record');
      path = await RecordPath.open({
        store,
        dataDir: init.dataDir,
        netlockPath: init.netlockPath,
        signer,
        upstreamCaPem: init.upstreamCaPem ?? [],
        ...(init.upstreamTimeoutMs === undefined ? {} : { upstreamPolicy: { timeoutMs: init.upstreamTimeoutMs } }),
        ...(init.sync === undefined ? {} : { sync: init.sync }),
        stats,
        logger,
      });
      const kept = await readKeptNetlock(init.netlockPath, store, path.run, { expectRules: { variantRules: undefined }, verified: path.verified });
      if (kept !== undefined) {
        logger.info('%s', keptNetlockLine(kept, init.netlockPath));
      }
      const { entries, bad } = path.leftover;
      if (entries.length > 0) {
        const refused = await path.run.restore(entries, store, [signer.publicKey]);
        if (refused.length > 0) logger.warn('%s', describeRefused(refused, path.journalPath));
        logger.warn('recovered %d request(s) from %s, left by a run that did not finish', entries.length - refused.length, path.journalPath);
      }
      if (bad.length > 0) logger.warn('skipped %d torn line(s) of %s', bad.length, path.journalPath);
      return new MachineRecordSession(store, ownsStore, stats, path, signer.publicKey, init.netlockPath, logger);
    } catch (err) {
      await path?.close();
      if (ownsStore) await store.close();
      throw err;
    }
  }

  /** The signing key as the 64 hex digits `--trust` and RunConfig `trust` take. */
  get publicKeyHex(): string {
    return toHex(this.publicKey);
  }

  /** `NETLOCK.journal`: every request recorded so far, until the netlock is written. */
  get journalPath(): string {
    return this.#path.journalPath!;
  }

  /** Writes the netlock of every request the machine made (and those kept), pins its root, removes the journal. */
  async writeNetlock(): Promise<WrittenNetlock> {
    const file = await this.#path.writeNetlock();
    this.#logger.info('wrote netlock %s (%d entries) to %s', file.netlock, file.count, this.netlockPath);
    return file;
  }

  /** Closes the record path (and the store, when the session made it). Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#path.close();
      await this.store.flush().catch(() => {});
      if (this.#ownsStore) await this.store.close();
    })();
    return this.#closing;
  }
}
