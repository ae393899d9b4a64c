import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.ts';
import { NOOP_LOGGER } from '../log.ts';
import type { AbortOptions } from '../protocol/blocks.ts';
import type { SignedRecord } from '../protocol/signature.ts';
import { KeyOffsets } from './key-offsets.ts';
import type { KeyDigest } from './key-offsets.ts';
import type { RecordIndex } from './record-index.ts';
import { RecordLog } from './record-log.ts';

/** The index file in a data directory. */
export const RECORD_INDEX_FILE = 'records.jsonl';

/**
 * The record index of a data directory: a `RecordLog` in `<dir>/records.jsonl`, read when opened (by its keys
 * alone, `readKeys`); the last line for a key wins. A torn line (crash mid-append) is skipped with a warning; a
 * line shaped right whose record does not decode is no record, and its request is recorded again.
 *
 * What is held per key is a digest of it and where its line starts in the file (`KeyOffsets`: 16 bytes in
 * a typed array), nothing of the key or the record: `get` reads the line back (a few microseconds, from the
 * page cache) and answers only with a line of that key. A data directory of 1,000,000 records would
 * otherwise hold a million keys and signed records for every full collection to walk (issue #15).
 */
export class FsRecordIndex implements RecordIndex {
  readonly path: string;
  readonly #log: RecordLog;
  readonly #byKey: KeyOffsets;

  private constructor(log: RecordLog, digest: KeyDigest | undefined) {
    this.#log = log;
    this.path = log.path;
    this.#byKey = new KeyOffsets(digest);
  }

  /** `keyDigest` replaces the SHA-256 digest of the keys (tests make keys collide with it). */
  static async open(dir: string, logger: Logger = NOOP_LOGGER, options?: AbortOptions & { keyDigest?: KeyDigest }): Promise<FsRecordIndex> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const index = new FsRecordIndex(new RecordLog(join(dir, RECORD_INDEX_FILE)), options?.keyDigest);
    const { bad } = await index.#log.readKeys((key, offset) => index.#byKey.set(key, offset), options);
    if (bad.length > 0) logger.warn('skipped %d malformed line(s) of %s: %s', bad.length, index.path, bad.slice(0, 10).join(', '));
    return index;
  }

  /**
   * The newest record filed under `key`. Undefined also when its line cannot be read back as it was (the
   * file truncated or rewritten under this process): the request is then recorded again, nothing is served
   * that the file does not say.
   */
  get(key: string): SignedRecord | undefined {
    const offset = this.#byKey.get(key);
    if (offset === undefined) return undefined;
    const found = this.#log.lineAt(offset, key);
    if (found === undefined) return undefined;
    if (found.offset !== offset) this.#byKey.set(key, found.offset);
    return found.entry.signed;
  }

  async put(key: string, signed: SignedRecord, options?: AbortOptions): Promise<void> {
    const offset = await this.#log.append(key, signed, options);
    this.#byKey.set(key, offset);
  }

  sync(options?: AbortOptions): Promise<void> {
    return this.#log.sync(options);
  }

  keysForUrl(url: string): string[] {
    const keys = new Set<string>();
    for (const { offset, isKey } of this.#byKey.candidatesForUrl(url)) {
      const found = this.#log.lineAt(offset, isKey);
      if (found !== undefined) keys.add(found.entry.key);
    }
    return [...keys].sort();
  }

  get size(): number {
    return this.#byKey.size;
  }

  close(): Promise<void> {
    return this.#log.close();
  }
}
