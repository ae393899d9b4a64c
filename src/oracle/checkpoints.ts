import { StoreError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { OracleStats } from './stats.ts';

/**
 * When what a record wrote is put on disk: before its answer ends (`'each'`), or at checkpoints at most
 * `everyMs` apart while records are written (and at the end of the run, before its netlock is written).
 */
export type SyncPolicy = 'each' | { everyMs: number };

/** The default `--sync`: a checkpoint a second at most. */
export const DEFAULT_SYNC_EVERY_MS = 1000;
export const DEFAULT_SYNC_POLICY: SyncPolicy = { everyMs: DEFAULT_SYNC_EVERY_MS };

export interface CheckpointParts {
  /** The block store, synced first: every block a line names is on disk before the line is. */
  store: { sync(): Promise<void> };
  /** The files of lines that name those blocks (the record index, the run's journal), synced after. */
  logs: ReadonlyArray<{ sync(): Promise<void> }>;
}

/**
 * The record path's durability (docs/formats.md, "Durability"). A record's blocks and lines are written
 * (to the page cache) before its answer ends, so a killed process loses nothing; a checkpoint then puts them
 * on disk, blocks before the lines that name them, so after a power loss every line older than the last
 * checkpoint names blocks that are there. Checkpoints asked for while one runs share the next one (group
 * commit). A checkpoint that fails is not tried again (after a failed fdatasync the kernel may have dropped
 * the pages it could not write, and a second one would report success): every later record is refused with
 * the failure, so no build goes on believing its records are kept.
 */
export class Checkpoints {
  readonly #parts: CheckpointParts;
  readonly #policy: SyncPolicy;
  readonly #logger: Logger;
  /** Something was written since the last checkpoint started. */
  #dirty = false;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #next: Promise<void> | undefined;
  #failure: StoreError | undefined;
  #closing: Promise<void> | undefined;
  /** Counted in: checkpoints done, and the seconds they took (`/stats`, `/metrics`). */
  readonly #stats: Pick<OracleStats, 'checkpoints' | 'checkpointSeconds'>;

  constructor(parts: CheckpointParts, policy: SyncPolicy, logger: Logger, stats: Pick<OracleStats, 'checkpoints' | 'checkpointSeconds'> = { checkpoints: 0, checkpointSeconds: 0 }) {
    this.#parts = parts;
    this.#policy = policy;
    this.#logger = logger;
    this.#stats = stats;
  }

  /** Checkpoints that put something on disk. */
  get completed(): number {
    return this.#stats.checkpoints;
  }

  /** Throws the failure of an earlier checkpoint: nothing more may be recorded. */
  throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  /**
   * Says a record's blocks and lines are written. With `'each'`, resolves once a checkpoint has put them on
   * disk; otherwise schedules one and returns at once.
   */
  recorded(): Promise<void> | undefined {
    this.throwIfFailed();
    this.#dirty = true;
    if (this.#policy === 'each') return this.checkpoint();
    if (this.#timer === undefined && this.#closing === undefined) {
      // Unref'd: a pending checkpoint never keeps a process alive; `close` does the last one.
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.checkpoint().catch(() => {}); // logged once where it failed; refused from then on
      }, this.#policy.everyMs).unref();
    }
    return undefined;
  }

  /** Puts everything written before this call on disk (nothing to do when nothing was). */
  checkpoint(): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#next !== undefined) return this.#next;
    // Not dirty: whatever was written before this call was written before the running one started.
    if (!this.#dirty) return this.#running ?? Promise.resolve();
    const next = (async (): Promise<void> => {
      await this.#running?.catch(() => {});
      this.#next = undefined;
      this.throwIfFailed();
      this.#dirty = false;
      const running = this.#run();
      this.#running = running;
      try {
        await running;
      } finally {
        if (this.#running === running) this.#running = undefined;
      }
    })();
    this.#next = next;
    return next;
  }

  /** The last checkpoint, and none scheduled from now on. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async (): Promise<void> => {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      await this.checkpoint();
    })();
    return this.#closing;
  }

  async #run(): Promise<void> {
    const started = performance.now();
    try {
      await this.#parts.store.sync();
      await Promise.all(this.#parts.logs.map((log) => log.sync()));
      this.#stats.checkpoints++;
      this.#stats.checkpointSeconds += (performance.now() - started) / 1000;
    } catch (cause) {
      const message = `The data directory could not be synced (${(cause as Error).message}): records written since the last checkpoint may not be on disk, so this run records nothing more`;
      this.#failure = new StoreError(message, { cause });
      this.#logger.error('%s', message);
      throw this.#failure;
    }
  }
}
