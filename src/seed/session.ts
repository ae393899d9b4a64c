import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CID } from 'multiformats/cid';
import type { Logger } from '../log.ts';
import { NOOP_LOGGER } from '../log.ts';
import { DigestWorker } from '../oracle/digest-worker.ts';
import { RecordMode } from '../oracle/record-mode.ts';
import type { DirectRequest, DirectRequestOptions } from '../oracle/record-mode.ts';
import { RunSet } from '../oracle/run-set.ts';
import { createStats } from '../oracle/stats.ts';
import type { OracleStats } from '../oracle/stats.ts';
import { verifyingSource } from '../protocol/blocks.ts';
import type { FetchRecord } from '../protocol/record.ts';
import { readBody } from '../protocol/unixfs.ts';
import { RunJournal } from '../records/journal.ts';
import type { DecodedEntry, NetlockFile } from '../records/netlock-file.ts';
import { FsRecordIndex } from '../records/record-index.ts';
import { LocalSigner } from '../signing/local-signer.ts';
import type { BlockStore } from '../store/block-store.ts';
import { createBlockStore } from '../store/index.ts';
import { Fetcher } from '../upstream/fetcher.ts';
import type { RangeReader } from './zip-reader.ts';

export interface SeedSessionInit {
  /** Data directory: blocks (unless Kubo holds them), record index, oracle key. */
  dataDir: string;
  /** Kubo RPC API URL (`--ipfs`): blocks go to Kubo, the data directory is its cache (as `record --ipfs`). */
  ipfs?: string;
  /** Where the netlock is written; `NETLOCK.journal` keeps what this run recorded until then. */
  netlockPath: string;
  /** Extra PEM CAs the upstream client trusts (`--upstream-ca`). */
  upstreamCaPem?: readonly string[];
  logger?: Logger;
}

/** What the seeder needs of a session (tests substitute nothing: they run the real one). */
export interface SeedRecorder {
  record(request: DirectRequest, options?: DirectRequestOptions): Promise<{ entry: DecodedEntry; fetched: boolean }>;
  /** Random access to a record's body, every block verified against its CID. */
  bodyReader(record: FetchRecord, signal?: AbortSignal): RangeReader;
}

/**
 * The record path of `fetch-oracle record` without its proxy front: the same store, record index, signer,
 * fetcher, digest worker and RecordMode, wired as Oracle wires them, so a seeded record is the record the
 * proxy writes. The netlock is written only by `writeNetlock()` (after every entry succeeded); until then
 * the journal beside it keeps what was recorded, and the record index lets a rerun reuse it.
 */
export class SeedSession implements SeedRecorder {
  readonly store: BlockStore;
  readonly stats: OracleStats;
  readonly journal: RunJournal;
  /** Lines a run that did not finish left in the journal (reused through the record index, not refetched). */
  readonly interrupted: number;
  readonly #record: RecordMode;
  readonly #run: RunSet;
  readonly #closers: Array<() => Promise<void>>;
  readonly #netlockPath: string;
  readonly #logger: Logger;

  private constructor(parts: { store: BlockStore; stats: OracleStats; journal: RunJournal; interrupted: number; record: RecordMode; run: RunSet; closers: Array<() => Promise<void>>; netlockPath: string; logger: Logger }) {
    this.store = parts.store;
    this.stats = parts.stats;
    this.journal = parts.journal;
    this.interrupted = parts.interrupted;
    this.#record = parts.record;
    this.#run = parts.run;
    this.#closers = parts.closers;
    this.#netlockPath = parts.netlockPath;
    this.#logger = parts.logger;
  }

  static async open(init: SeedSessionInit): Promise<SeedSession> {
    const logger = init.logger ?? NOOP_LOGGER;
    await mkdir(dirname(init.netlockPath), { recursive: true });
    const store = createBlockStore({ dataDir: init.dataDir, ...(init.ipfs === undefined ? {} : { ipfs: init.ipfs }), logger });
    const signer = await LocalSigner.loadOrCreate(init.dataDir);
    const index = await FsRecordIndex.open(init.dataDir, logger.child('index'));
    const fetcher = new Fetcher({ extraCaPem: init.upstreamCaPem ?? [] });
    const digests = new DigestWorker();
    const journal = new RunJournal(init.netlockPath);
    // A journal left by an interrupted seed only reports progress: its records are in the record index,
    // which answers them without a fetch; the netlock holds exactly what this run's inputs name.
    const { entries } = await journal.recover();
    const run = new RunSet(journal);
    const stats = createStats('record');
    const record = new RecordMode({ store, index, signer, fetcher, run, digests, stats, logger: logger.child('record') });
    return new SeedSession({
      store,
      stats,
      journal,
      interrupted: entries.length,
      record,
      run,
      netlockPath: init.netlockPath,
      logger,
      closers: [() => fetcher.close(), () => index.close(), () => digests.close()],
    });
  }

  record(request: DirectRequest, options: DirectRequestOptions = {}): Promise<{ entry: DecodedEntry; fetched: boolean }> {
    return this.#record.recordRequest(request, options);
  }

  bodyReader(record: FetchRecord, signal?: AbortSignal): RangeReader {
    const source = verifyingSource(this.store);
    const cid = record.response.body;
    const size = cid === null ? 0 : record.response.size;
    const stream = (offset: number, length: number): AsyncIterable<Uint8Array> =>
      cid === null || length === 0 ? (async function* () {})() : readBody(cid, source, { offset, length, ...(signal === undefined ? {} : { signal }) });
    return {
      size,
      stream,
      async read(offset, length) {
        const out = new Uint8Array(length);
        let at = 0;
        for await (const c of stream(offset, length)) {
          out.set(c, at);
          at += c.byteLength;
        }
        return at === length ? out : out.subarray(0, at);
      },
    };
  }

  /** Writes the netlock of every request this run recorded or reused, pins its root, removes the journal. */
  async writeNetlock(): Promise<NetlockFile> {
    const file = await this.#run.write(this.#netlockPath, this.store);
    await this.store.pin(CID.parse(file.netlock), { recursive: true });
    await this.store.flush();
    this.#logger.info('wrote netlock %s (%d entries) to %s', file.netlock, file.count, this.#netlockPath);
    return file;
  }

  async close(): Promise<void> {
    for (const close of this.#closers.splice(0)) await close();
    await this.store.flush().catch(() => {});
    await this.store.close();
  }
}
