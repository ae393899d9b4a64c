import { randomBytes } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { CID } from 'multiformats/cid';
import type { Logger } from '../log.ts';
import { verifyingSource } from '../protocol/blocks.ts';
import type { BlockSink } from '../protocol/blocks.ts';
import { decodeRecord } from '../protocol/record.ts';
import { normaliseUrl } from '../protocol/request-key.ts';
import { tempPathFor } from '../netlock/file.ts';
import type { WrittenNetlock } from '../netlock/file.ts';
import { RecordHandler } from '../proxy/record-handler.ts';
import { describeRefused } from '../records/journal-check.ts';
import { LocalSigner } from '../signing/local-signer.ts';
import type { ProxyGate } from '../config/exposure.ts';
import type { BlockStore } from '../store/block-store.ts';
import { removeStaleTempFiles } from '../store/stale-temp.ts';
import type { RecordInit } from './config.ts';
import type { OracleMode } from './mode.ts';
import { describeRecord } from './mode.ts';
import type { ReplayReport } from './open-replay.ts';
import { keptNetlockLine, readKeptNetlock } from './kept-netlock.ts';
import { LiveNetlockHead } from './live-head.ts';
import { RecordPath } from './record-path.ts';
import type { UpstreamMutation } from './recorder.ts';
import type { OracleStats } from './stats.ts';
import { entryRow } from '../report/model.ts';
import { LIVE_ROW_PAGE } from '../report/live.ts';
import type { LiveView } from '../report/live.ts';
import type { EntryRow } from '../report/model.ts';
import type { RunSet } from './run-set.ts';

/** The Oracle in record mode: the record path (recorder, index, run set, journal) behind the record handler. */
export class RecordMode implements OracleMode {
  readonly handler: RecordHandler;
  readonly #init: RecordInit;
  readonly #path: RecordPath;
  readonly #store: BlockStore;
  readonly #logger: Logger;
  #closing: Promise<WrittenNetlock | undefined> | undefined;
  /** The live page's netlock head. */
  readonly #liveHead: LiveNetlockHead;
  /** Tells this run's live-page versions from another process's. */
  readonly #epoch = randomBytes(6).toString('hex');

  private constructor(init: RecordInit, path: RecordPath, store: BlockStore, stats: OracleStats, logger: Logger) {
    this.#init = init;
    this.#path = path;
    this.#store = store;
    this.#logger = logger;
    this.handler = new RecordHandler({ recorder: path.recorder, source: store, stats, logger: logger.child('record') });
    this.#liveHead = new LiveNetlockHead(() => path.run.head(DISCARDED, init.variantRules), () => this.#liveVersion());
  }

  /** Opens the record path and takes back what a run that did not finish left in the journal. */
  static async open(init: RecordInit, store: BlockStore, stats: OracleStats, logger: Logger, gate: ProxyGate, observeUpstream?: (seconds: number) => void): Promise<RecordMode> {
    // Only a recording oracle writes blocks, request-body spools and netlocks: what a crashed one left goes
    // (replay writes none of them, so its start-up does not list the store).
    await removeStaleTempFiles(init.dataDir, logger, netlockBaseOf(init));
    const path = await RecordPath.open({
      store,
      dataDir: init.dataDir,
      ...(init.netlockPath === undefined ? {} : { netlockPath: init.netlockPath }),
      ...(init.signer === undefined ? {} : { signer: init.signer }),
      ...(init.upstreamCaPem === undefined ? {} : { upstreamCaPem: init.upstreamCaPem }),
      ...(init.upstreamProxy === undefined ? {} : { upstreamProxy: init.upstreamProxy }),
      ...(init.refresh === undefined ? {} : { refresh: init.refresh }),
      ...(init.recordUpstreamFailures === undefined ? {} : { recordUpstreamFailures: init.recordUpstreamFailures }),
      ...(init.variantRules === undefined ? {} : { variantRules: init.variantRules }),
      ...(init.sync === undefined ? {} : { sync: init.sync }),
      // Upstream connections never reach this oracle's own ports (a DNS name may resolve to them).
      upstreamPolicy: { ...(init.upstreamTimeoutMs === undefined ? {} : { timeoutMs: init.upstreamTimeoutMs }), refuse: (address, port) => gate.refusePeer(address, port) },
      stats,
      logger,
      ...(observeUpstream === undefined ? {} : { observeUpstream }),
    });
    try {
      // What the netlock at this path already holds is kept (a netlock never shrinks behind its user's back);
      // a file there that cannot be read or verified stops the run here, before anything listens.
      const kept = init.netlockPath === undefined ? undefined : await readKeptNetlock(init.netlockPath, store, path.run, { expectRules: { variantRules: init.variantRules }, verified: path.verified });
      if (kept !== undefined && init.netlockPath !== undefined) logger.info('%s (move the file away to start a new one)', keptNetlockLine(kept, init.netlockPath));
      const { entries, bad } = path.leftover;
      if (entries.length > 0) {
        const own = init.signer?.publicKey ?? (await LocalSigner.publicKeyIn(init.dataDir));
        const refused = await path.run.restore(entries, store, own === undefined ? undefined : [own]);
        if (refused.length > 0) logger.warn('%s', describeRefused(refused, path.journalPath));
        logger.warn('recovered %d request(s) from %s, left by a run that did not finish', entries.length - refused.length, path.journalPath);
      }
      if (bad.length > 0) logger.warn('skipped %d torn line(s) of %s', bad.length, path.journalPath);
    } catch (err) {
      await path.close();
      throw err;
    }
    return new RecordMode(init, path, store, stats, logger);
  }

  get mutations(): readonly UpstreamMutation[] {
    return this.#path.recorder.mutations;
  }

  async recordsForUrl(url: string): Promise<object[]> {
    const norm = normaliseUrl(url);
    const source = verifyingSource(this.#store);
    const index = this.#path.index;
    const out: object[] = [];
    for (const key of index.keysForUrl(norm)) {
      const signed = index.get(key);
      if (signed === undefined) continue; // its line is no longer where it was: as if never recorded
      out.push(describeRecord(key, signed.record.toString(), decodeRecord(await source.get(signed.record))));
    }
    return out;
  }

  /**
   * The run's netlock file as it would be written now, streamed: written a page at a time beside the netlock
   * (its DAG into no store), opened, and unlinked at once, so it is read from the page cache and gone with the
   * stream (a 400,000-entry run decoded whole was over a GB of heap; issue #15).
   */
  async netlockSoFar(): Promise<Readable> {
    const path = tempPathFor(netlockBaseOf(this.#init));
    try {
      await this.#path.run.writeCopy(path, DISCARDED, this.#init.variantRules);
      const file = await open(path, 'r');
      return file.createReadStream();
    } finally {
      await unlink(path).catch(() => {});
    }
  }

  /**
   * The run's netlock DAG so far, written to the store (content-addressed, so harmless) to be exported with
   * everything it names. This is how a netlock leaves an enclave with its bodies.
   */
  async netlockRoot(): Promise<CID> {
    return CID.parse((await this.#path.run.head(this.#store, this.#init.variantRules)).netlock);
  }

  /**
   * The live page's view. A poll whose version differs from the current one only in entries added since
   * gets those entries alone (`rowsSince`): a page over a 100,000-entry run is not sent every row each time
   * one more is recorded (issue #15).
   */
  async reportView(): Promise<LiveView> {
    const run = this.#path.run;
    const netlock = await this.#liveHead.current();
    // The rows are those the version names, however many the run serves before they are read.
    const version = this.#liveVersion();
    const size = run.size;
    return {
      netlock,
      version,
      rows: () => rowPages(run, 0, size),
      rowsSince: (have) => {
        const from = addedFrom(have, version);
        return from === undefined ? undefined : { from, rows: rowPages(run, from, size) };
      },
      misses: [],
    };
  }

  /** `record:<epoch>:<replaced>:<size>:<mutations>` (see `addedFrom`). */
  #liveVersion(): string {
    return `record:${this.#epoch}:${this.#path.run.version}:${this.mutations.length}`;
  }

  replayReport(): Promise<ReplayReport | undefined> {
    return Promise.resolve(undefined);
  }

  /** Closes the record path and writes this run's netlock (when it has a path). Idempotent. */
  close(): Promise<WrittenNetlock | undefined> {
    this.#closing ??= (async () => {
      try {
        await this.#path.stopFetching();
        if (this.#init.netlockPath === undefined) return undefined;
        const file = await this.#path.writeNetlock();
        this.#logger.info('wrote netlock %s (%d entries) to %s', file.netlock, file.count, this.#init.netlockPath);
        return file;
      } finally {
        await this.#path.close();
      }
    })();
    return this.#closing;
  }
}

/** Where the netlock is written, or without one, where `netlockSoFar` writes beside (its temp files swept alike). */
function netlockBaseOf(init: RecordInit): string {
  return init.netlockPath ?? join(init.dataDir, 'netlock.json');
}

/** The rows of a run's entries `start..end`, a page at a time (read from its scratch file as they are written out). */
function* rowPages(run: RunSet, start: number, end: number): Generator<EntryRow[]> {
  for (let i = start; i < end; i += LIVE_ROW_PAGE) yield run.entriesFrom(i, Math.min(end, i + LIVE_ROW_PAGE)).map(entryRow);
}

/** A sink that keeps no block: the live head needs the DAG's root, not its pages. */
const DISCARDED: BlockSink = { put: () => Promise.resolve(), putKeepsNoBytes: true };

/**
 * Where the entries a page holding version `have` lacks begin, when all it lacks are entries added since
 * (same process, nothing replaced, no new mutation): the size `have` names. Undefined otherwise.
 */
function addedFrom(have: string, now: string): number | undefined {
  const h = have.split(':');
  const n = now.split(':');
  if (h.length !== 5 || h[0] !== n[0] || h[1] !== n[1] || h[2] !== n[2] || h[4] !== n[4]) return undefined;
  const from = Number(h[3]);
  return Number.isSafeInteger(from) && from >= 0 && from <= Number(n[3]) ? from : undefined;
}
