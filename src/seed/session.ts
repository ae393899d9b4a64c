import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../log.ts';
import { NOOP_LOGGER } from '../log.ts';
import type { DirectRequest, DirectRequestOptions } from '../oracle/recorder.ts';
import { RecordPath } from '../oracle/record-path.ts';
import type { SyncPolicy } from '../oracle/checkpoints.ts';
import { createStats } from '../oracle/stats.ts';
import type { OracleStats } from '../oracle/stats.ts';
import { verifyingSource } from '../protocol/blocks.ts';
import type { FetchRecord } from '../protocol/record.ts';
import type { DecodedEntry, WrittenNetlock } from '../netlock/file.ts';
import type { BlockStore } from '../store/block-store.ts';
import { createBlockStore } from '../store/index.ts';
import { bodyRangeReader } from './zip-reader.ts';
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
  /** When what a record wrote goes on disk (`--sync`). @default a checkpoint a second at most */
  sync?: SyncPolicy;
  logger?: Logger;
}

/** What the seeder needs of a session (tests substitute nothing: they run the real one). */
export interface SeedRecorder {
  record(request: DirectRequest, options?: DirectRequestOptions): Promise<{ entry: DecodedEntry; fetched: boolean }>;
  /** Random access to a record's body, every block verified against its CID. */
  bodyReader(record: FetchRecord, signal?: AbortSignal): RangeReader;
}

/**
 * The record path of `fetch-oracle record` without its proxy front (the same RecordPath the Oracle opens),
 * so a seeded record is the record the proxy writes. The netlock is written only by `writeNetlock()` (after every entry succeeded); until then
 * the journal beside it keeps what was recorded, and the record index lets a rerun reuse it.
 */
export class SeedSession implements SeedRecorder {
  readonly store: BlockStore;
  readonly stats: OracleStats;
  /** Lines a run that did not finish left in the journal (reused through the record index, not refetched). */
  readonly interrupted: number;
  readonly #path: RecordPath;
  readonly #netlockPath: string;
  readonly #logger: Logger;

  private constructor(store: BlockStore, stats: OracleStats, path: RecordPath, netlockPath: string, logger: Logger) {
    this.store = store;
    this.stats = stats;
    this.#path = path;
    // A journal left by an interrupted seed only reports progress: its records are in the record index,
    // which answers them without a fetch; the netlock holds exactly what this run's inputs name.
    this.interrupted = path.leftover.entries.length;
    this.#netlockPath = netlockPath;
    this.#logger = logger;
  }

  static async open(init: SeedSessionInit): Promise<SeedSession> {
    const logger = init.logger ?? NOOP_LOGGER;
    await mkdir(dirname(init.netlockPath), { recursive: true });
    const store = createBlockStore({ dataDir: init.dataDir, ...(init.ipfs === undefined ? {} : { ipfs: init.ipfs }), logger });
    const stats = createStats('record');
    const path = await RecordPath.open({ store, dataDir: init.dataDir, netlockPath: init.netlockPath, upstreamCaPem: init.upstreamCaPem ?? [], stats, logger, ...(init.sync === undefined ? {} : { sync: init.sync }) });
    return new SeedSession(store, stats, path, init.netlockPath, logger);
  }

  /** `NETLOCK.journal`: what this run recorded until the netlock is written. */
  get journalPath(): string {
    return this.#path.journalPath!;
  }

  record(request: DirectRequest, options: DirectRequestOptions = {}): Promise<{ entry: DecodedEntry; fetched: boolean }> {
    return this.#path.recorder.recordDirect(request, options);
  }

  bodyReader(record: FetchRecord, signal?: AbortSignal): RangeReader {
    return bodyRangeReader(record.response.body, record.response.size, verifyingSource(this.store), signal);
  }

  /** Writes the netlock of every request this run recorded or reused, pins its root, removes the journal. */
  async writeNetlock(): Promise<WrittenNetlock> {
    const file = await this.#path.writeNetlock();
    this.#logger.info('wrote netlock %s (%d entries) to %s', file.netlock, file.count, this.#netlockPath);
    return file;
  }

  async close(): Promise<void> {
    await this.#path.close();
    await this.store.flush().catch(() => {});
    await this.store.close();
  }
}
