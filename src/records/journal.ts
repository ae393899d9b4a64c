import type { AbortOptions } from '../protocol/blocks.ts';
import type { SignedRecord } from '../protocol/signature.ts';
import { RecordLog } from './record-log.ts';
import type { RecordLogContents } from './record-log.ts';

/**
 * The run journal beside a netlock file (`<netlock>.journal`): a `RecordLog` with one line per request key
 * served in this run, appended before the response completes. After a crash (`kill -9`) the next run, or
 * `fetch-oracle recover`, rebuilds the netlock from it.
 */
export class RunJournal {
  readonly path: string;
  readonly #log: RecordLog;

  constructor(netlockPath: string) {
    this.#log = new RecordLog(`${netlockPath}.journal`);
    this.path = this.#log.path;
  }

  /** Entries left by an earlier run that did not finish, plus line numbers of torn lines. */
  recover(options?: AbortOptions): Promise<RecordLogContents> {
    return this.#log.read(options);
  }

  async append(key: string, signed: SignedRecord, options?: AbortOptions): Promise<void> {
    await this.#log.append(key, signed, options);
  }

  /** Puts every line appended before this call on disk. */
  sync(options?: AbortOptions): Promise<void> {
    return this.#log.sync(options);
  }

  /** Closes the file handle, keeping the file (a run that ends without its netlock: `recover` reads it). Idempotent. */
  close(): Promise<void> {
    return this.#log.close();
  }

  /** Deletes the journal: the run's netlock is written. */
  remove(): Promise<void> {
    return this.#log.remove();
  }
}
