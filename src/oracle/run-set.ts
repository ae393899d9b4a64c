import type { BlockSink, BlockSource } from '../protocol/blocks.ts';
import type { VariantRules } from '../protocol/request-key.ts';
import type { SignedRecord } from '../protocol/signature.ts';
import type { RunJournal } from '../records/journal.ts';
import { checkJournalEntries } from '../records/journal-check.ts';
import type { RefusedJournalLine } from '../records/journal-check.ts';
import type { DecodedEntry, NetlockFile } from '../netlock/file.ts';
import { writeNetlockFile } from '../netlock/file.ts';

/**
 * The requests one run served, the netlock it writes on shutdown. Every newly served key is journalled
 * first, so a crashed run loses nothing it answered.
 */
export class RunSet {
  readonly #entries = new Map<string, DecodedEntry>();
  readonly #journal: RunJournal | undefined;

  constructor(journal?: RunJournal) {
    this.#journal = journal;
  }

  has(key: string): boolean {
    return this.#entries.has(key);
  }

  async add(entry: DecodedEntry): Promise<void> {
    if (this.#entries.get(entry.key)?.signed.record.equals(entry.signed.record) === true) return;
    this.#entries.set(entry.key, entry);
    await this.#journal?.append(entry.key, entry.signed);
  }

  /**
   * Starts from the entries of the netlock already at the run's path (verified by the caller): they are
   * written again with this run's, never journalled (the file itself still holds them until the new one
   * replaces it). A key this run already holds (restored from the journal, or served) keeps its entry.
   */
  keep(entries: readonly DecodedEntry[]): void {
    for (const e of entries) if (!this.#entries.has(e.key)) this.#entries.set(e.key, e);
  }

  /**
   * Re-adds entries recovered from a journal, reading their records from `source`; lines whose record block,
   * signature or key do not verify (or, with `trusted`, that another key signed) are returned, not added.
   */
  async restore(entries: ReadonlyArray<{ key: string; signed: SignedRecord }>, source: BlockSource, trusted?: readonly Uint8Array[]): Promise<RefusedJournalLine[]> {
    const { good, refused } = await checkJournalEntries(entries, source, trusted);
    for (const e of good) this.#entries.set(e.key, e);
    return refused;
  }

  entries(): DecodedEntry[] {
    return [...this.#entries.values()];
  }

  get size(): number {
    return this.#entries.size;
  }

  async write(path: string, sink: BlockSink, variantRules?: VariantRules): Promise<NetlockFile> {
    const file = await writeNetlockFile(path, this.entries(), sink, variantRules === undefined ? {} : { variantRules });
    await this.#journal?.remove();
    return file;
  }
}
