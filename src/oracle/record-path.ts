import { CID } from 'multiformats/cid';
import type { Logger } from '../log.ts';
import type { VariantRules } from '../protocol/request-key.ts';
import type { SignedRecord } from '../protocol/signature.ts';
import { RunJournal } from '../records/journal.ts';
import type { WrittenNetlock } from '../netlock/file.ts';
import { FsRecordIndex } from '../records/fs-record-index.ts';
import { VerifiedNetlocks } from '../records/verified-netlocks.ts';
import { LocalSigner } from '../signing/local-signer.ts';
import type { Signer } from '../signing/signer.ts';
import type { BlockStore } from '../store/block-store.ts';
import type { ProxyAddress } from '../upstream/connect-tunnel.ts';
import { Fetcher } from '../upstream/fetcher.ts';
import type { UpstreamPolicy } from '../upstream/safe-dispatcher.ts';
import { Checkpoints, DEFAULT_SYNC_POLICY } from './checkpoints.ts';
import type { SyncPolicy } from './checkpoints.ts';
import { DigestWorker } from './digest-worker.ts';
import { Recorder } from './recorder.ts';
import type { RecorderInit } from './recorder.ts';
import { RunSet } from './run-set.ts';
import type { OracleStats } from './stats.ts';

export interface RecordPathInit extends Pick<RecorderInit, 'refresh' | 'recordUpstreamFailures' | 'variantRules'> {
  store: BlockStore;
  dataDir: string;
  /** Where this run's netlock goes; its journal (`NETLOCK.journal`) sits beside it. */
  netlockPath?: string;
  /** The data directory's own key unless given (enclave mode brings one born in the enclave). */
  signer?: Signer;
  upstreamCaPem?: readonly string[];
  upstreamProxy?: ProxyAddress;
  /** Upstream timeout and the addresses never connected to (the oracle's own). */
  upstreamPolicy?: UpstreamPolicy;
  stats: OracleStats;
  logger: Logger;
  /** Told the seconds each upstream fetch took to its response head (the latency metric). */
  observeUpstream?: (seconds: number) => void;
  /** When what a record wrote is put on disk (`--sync`). @default DEFAULT_SYNC_POLICY (checkpoints a second apart) */
  sync?: SyncPolicy;
}

/**
 * The record path, wired once for every way in (the proxy's record handler, `fetch-oracle seed`): store,
 * record index, signer, upstream fetcher, digest worker, the run's request set and its journal.
 */
export class RecordPath {
  readonly recorder: Recorder;
  readonly run: RunSet;
  readonly index: FsRecordIndex;
  /** What a run that did not finish left in the journal (its lines, and those too torn to read). */
  readonly leftover: { entries: Array<{ key: string; signed: SignedRecord }>; bad: number[] };
  /** `NETLOCK.journal`, when the run has a netlock. */
  readonly journalPath: string | undefined;
  /** Netlock roots this data directory checked whole or wrote: a kept one is not checked again. */
  readonly verified: VerifiedNetlocks;
  /** When the run's records go on disk; `writeNetlock` and `close` do the last checkpoint. */
  readonly #checkpoints: Checkpoints;
  readonly #store: BlockStore;
  readonly #netlockPath: string | undefined;
  readonly #variantRules: VariantRules | undefined;
  readonly #closers: Array<() => Promise<void>>;
  readonly #fetcher: Fetcher;

  private constructor(init: RecordPathInit, parts: { recorder: Recorder; run: RunSet; index: FsRecordIndex; fetcher: Fetcher; journalPath: string | undefined; leftover: RecordPath['leftover']; verified: VerifiedNetlocks; checkpoints: Checkpoints; closers: Array<() => Promise<void>> }) {
    this.recorder = parts.recorder;
    this.#checkpoints = parts.checkpoints;
    this.verified = parts.verified;
    this.run = parts.run;
    this.index = parts.index;
    this.leftover = parts.leftover;
    this.#closers = parts.closers;
    this.#fetcher = parts.fetcher;
    this.#store = init.store;
    this.#netlockPath = init.netlockPath;
    this.journalPath = parts.journalPath;
    this.#variantRules = init.variantRules;
  }

  static async open(init: RecordPathInit): Promise<RecordPath> {
    const signer = init.signer ?? (await LocalSigner.loadOrCreate(init.dataDir));
    const index = await FsRecordIndex.open(init.dataDir, init.logger.child('index'));
    const verified = await VerifiedNetlocks.open(init.dataDir);
    const fetcher = new Fetcher({ extraCaPem: init.upstreamCaPem ?? [], ...(init.upstreamProxy === undefined ? {} : { proxy: init.upstreamProxy }), ...(init.upstreamPolicy === undefined ? {} : { policy: init.upstreamPolicy }) });
    const digests = new DigestWorker();
    const journal = init.netlockPath === undefined ? undefined : new RunJournal(init.netlockPath);
    const leftover = journal === undefined ? { entries: [], bad: [] } : await journal.recover();
    // The run's entries wait for its netlock in a scratch file of the data directory, not in the heap.
    const run = new RunSet({ journal, spillDir: init.dataDir });
    const checkpoints = new Checkpoints({ store: init.store, logs: journal === undefined ? [index] : [index, journal] }, init.sync ?? DEFAULT_SYNC_POLICY, init.logger.child('sync'), init.stats);
    const recorder = new Recorder({
      store: init.store,
      index,
      signer,
      fetcher,
      run,
      digests,
      checkpoints,
      ...(init.refresh === undefined ? {} : { refresh: init.refresh }),
      ...(init.recordUpstreamFailures === undefined ? {} : { recordUpstreamFailures: init.recordUpstreamFailures }),
      ...(init.variantRules === undefined ? {} : { variantRules: init.variantRules }),
      stats: init.stats,
      logger: init.logger.child('record'),
      ...(init.observeUpstream === undefined ? {} : { observeUpstream: init.observeUpstream }),
    });
    // The last checkpoint after the last fetch, before the files it syncs are closed.
    const closers = [() => fetcher.close(), () => checkpoints.close(), () => index.close(), () => digests.close(), () => journal?.close() ?? Promise.resolve(), () => Promise.resolve(run.close())];
    return new RecordPath(init, { recorder, run, index, fetcher, journalPath: journal?.path, leftover, verified, checkpoints, closers });
  }

  /**
   * Writes the netlock of every request this run served (removing the journal) and pins its root, which
   * keeps every page, record and body of the netlock through Kubo's garbage collection. Its root is remembered
   * as verified: its entries were kept after a check, recorded and signed here, or served from this data
   * directory's records, which a record run trusts.
   */
  async writeNetlock(): Promise<WrittenNetlock> {
    if (this.#netlockPath === undefined) throw new Error('RecordPath.writeNetlock needs a netlockPath');
    // Every record the netlock names on disk first: the file (fsynced) never names what a power loss could take.
    await this.#checkpoints.checkpoint();
    const file = await this.run.write(this.#netlockPath, this.#store, this.#variantRules);
    const root = CID.parse(file.netlock);
    await this.#store.pin(root, { recursive: true });
    await this.#store.flush();
    await this.verified.add(root);
    return file;
  }

  /**
   * Lets the upstream fetches under way finish and starts no more: a run about to write its netlock first
   * has nothing left to add to it. Idempotent.
   */
  stopFetching(): Promise<void> {
    return this.#fetcher.close();
  }

  /** Closes the fetcher, does the last checkpoint, closes the record index, the digest worker, the journal's handle and the run set (not the store). Idempotent. */
  async close(): Promise<void> {
    // Each one runs even when one before failed (a last checkpoint that could not sync): the first failure is thrown after.
    let failure: { error: unknown } | undefined;
    for (const close of this.#closers.splice(0)) {
      try {
        await close();
      } catch (error) {
        failure ??= { error };
      }
    }
    if (failure !== undefined) throw failure.error;
  }
}
