import type { AbortOptions } from '../protocol/blocks.ts';
import type { SignedRecord } from '../protocol/signature.ts';

/**
 * Request key → newest signed record, for record mode. Append-only: `put` of a key already held supersedes
 * its record, nothing is ever removed. The record blocks themselves live in the block store.
 * `FsRecordIndex` keeps it in a file of the data directory.
 */
export interface RecordIndex {
  /** The newest record filed under `key`, or undefined. */
  get(key: string): SignedRecord | undefined;
  /** Files `signed` under `key`; resolves once it is written (a killed process keeps it; `sync` puts it on disk). */
  put(key: string, signed: SignedRecord, options?: AbortOptions): Promise<void>;
  /** Puts every `put` that resolved before this call on disk. */
  sync(options?: AbortOptions): Promise<void>;
  /** Every key whose URL is `url` (any method or variant), sorted. */
  keysForUrl(url: string): string[];
  /** Number of keys held. */
  readonly size: number;
  /** Releases file handles. Idempotent. */
  close(): Promise<void>;
}
