import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.ts';
import { NOOP_LOGGER } from '../log.ts';
import type { AbortOptions } from '../protocol/blocks.ts';
import { flattenSigned, unflattenSigned } from '../protocol/signature.ts';
import type { SignedRecord } from '../protocol/signature.ts';
import type { RecordIndex } from './record-index.ts';
import { RecordLog } from './record-log.ts';

/** The index file in a data directory. */
export const RECORD_INDEX_FILE = 'records.jsonl';

/**
 * The record index of a data directory: a `RecordLog` in `<dir>/records.jsonl`, read into memory when
 * opened; the last line for a key wins. A torn line (crash mid-append) is skipped with a warning.
 *
 * Each signed record is held flattened (`flattenSigned`): a data directory of 100,000 records would otherwise
 * hold 100,000 CIDs and signatures that every full collection walks (issue #15).
 */
export class FsRecordIndex implements RecordIndex {
  readonly path: string;
  readonly #log: RecordLog;
  readonly #byKey = new Map<string, string>();

  private constructor(log: RecordLog) {
    this.#log = log;
    this.path = log.path;
  }

  static async open(dir: string, logger: Logger = NOOP_LOGGER, options?: AbortOptions): Promise<FsRecordIndex> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const index = new FsRecordIndex(new RecordLog(join(dir, RECORD_INDEX_FILE)));
    const { bad } = await index.#log.readEach((e) => index.#byKey.set(e.key, flattenSigned(e.signed)), options);
    if (bad.length > 0) logger.warn('skipped %d malformed line(s) of %s: %s', bad.length, index.path, bad.slice(0, 10).join(', '));
    return index;
  }

  get(key: string): SignedRecord | undefined {
    const flat = this.#byKey.get(key);
    return flat === undefined ? undefined : unflattenSigned(flat);
  }

  async put(key: string, signed: SignedRecord, options?: AbortOptions): Promise<void> {
    await this.#log.append(key, signed, options);
    this.#byKey.set(key, flattenSigned(signed));
  }

  keysForUrl(url: string): string[] {
    const prefix = `${url}\n`;
    return [...this.#byKey.keys()].filter((k) => k.startsWith(prefix)).sort();
  }

  get size(): number {
    return this.#byKey.size;
  }

  close(): Promise<void> {
    return this.#log.close();
  }
}
