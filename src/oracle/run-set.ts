import { setImmediate as nextTurn } from 'node:timers/promises';
import { CID } from 'multiformats/cid';
import { cidText, equalBytes } from '../protocol/blocks.ts';
import type { BlockSink, BlockSource } from '../protocol/blocks.ts';
import type { VariantRules } from '../protocol/request-key.ts';
import type { SignedRecord } from '../protocol/signature.ts';
import type { RunJournal } from '../records/journal.ts';
import { checkJournalEntries } from '../records/journal-check.ts';
import type { RefusedJournalLine } from '../records/journal-check.ts';
import type { DecodedEntry, EntrySummary, WrittenNetlock } from '../netlock/file.ts';
import { buildNetlockHead, writeNetlockFileFrom } from '../netlock/file.ts';
import { SpillFile } from '../io/spill-file.ts';
import { sortByKey } from '../io/key-sort.ts';
import { compareKeys } from '../netlock/dag.ts';
import { KeyOffsets } from '../records/key-offsets.ts';
import type { KeyDigest } from '../records/key-offsets.ts';
import { ROW_HEADERS } from '../report/model.ts';

/**
 * One served entry as a run holds it until it writes its netlock: what the netlock line and the report row
 * read of its record, as one JSON string (~400 bytes)
 * `[key, record CID, signature (base64), signer (index into SIGNERS), fetchedAt, status, body CID or null,
 * size, sha256 (base64), headers the row reads]`, written to the run's spill file (a number: its ticket)
 * or, without one, held as it is. Witnessed entries (rare: a kept netlock that was countersigned) are held
 * decoded.
 */
type HeldText = string | EntrySummary;
type HeldFields = [string, string, string, number, string, number, string | null, number, string, Array<[string, string]>];

/** A position whose entry is in `#held`, not in the spill file. */
const HELD = -1;
const MIN_POSITIONS = 1024;
/** Keys read for a sort between two turns of the event loop (~5 ms of reads). */
const KEYS_BETWEEN_TURNS = 1024;

export interface RunSetOptions {
  readonly journal?: RunJournal | undefined;
  /** Where the scratch file of held entries (and of the netlock's sort) goes; without it they stay in the heap. */
  readonly spillDir?: string | undefined;
  /** The digest of the key table (tests force shared digests with it). */
  readonly keyDigest?: KeyDigest | undefined;
  /** Keys sorted in memory at a time when the netlock is built (tests make it small). */
  readonly sortChunk?: number | undefined;
}

/**
 * The requests one run served, the netlock it writes on shutdown. Every newly served key is journalled
 * first, so a crashed run loses nothing it answered.
 *
 * A run of 100,000 requests once held every request's and response's headers and ~10 CIDs and byte arrays
 * per entry until it ended, ~5 KB each, then each entry's key in a `Map`, ~270 bytes (issue #15: the heap
 * grew without bound, and full collections walking it took a quarter of a recording core). Now, with
 * `spillDir`, an entry's text (`HeldText`, its key included) goes to a scratch file there (`SpillFile`) and
 * the process holds 30–60 bytes an entry outside the heap: the entry's ticket in that file, by position in the
 * order entries were first served, and a digest of its key → that position (`KeyOffsets`). A key is found by
 * its digest and confirmed by reading its entry back; the rare key whose 64-bit digest another key's slot
 * holds is kept in a `Map` of its own, so no entry is ever lost to a shared digest. The netlock is built from
 * the keys sorted a chunk at a time through the scratch directory (`sortByKey`) and the entries decoded a page
 * at a time. `close()` frees the scratch file.
 */
export class RunSet {
  readonly #journal: RunJournal | undefined;
  readonly #spill: SpillFile | undefined;
  readonly #spillDir: string | undefined;
  readonly #sortChunk: number | undefined;
  /** Key digest → position. */
  readonly #positions: KeyOffsets;
  /** Keys whose digest's slot another key holds → position (64-bit digests: expected never to be used). */
  readonly #sharedDigests = new Map<string, number>();
  /** Position → ticket in the spill file, or `HELD`. */
  #tickets = new Float64Array(MIN_POSITIONS);
  /** Position → an entry the spill file did not take (no spill file, an entry too long, or witnessed). */
  readonly #held = new Map<number, HeldText>();
  #size = 0;
  /** Entries that another record of their key replaced (entries are otherwise only ever added). */
  #replaced = 0;

  constructor(options: RunSetOptions = {}) {
    this.#journal = options.journal;
    this.#spillDir = options.spillDir;
    this.#spill = options.spillDir === undefined ? undefined : new SpillFile(options.spillDir);
    this.#positions = new KeyOffsets(options.keyDigest);
    this.#sortChunk = options.sortChunk;
  }

  has(key: string): boolean {
    return this.#find(key) !== undefined;
  }

  /** Adds (or replaces) the entry for its key; whether a journal line was written for it. */
  async add(entry: DecodedEntry): Promise<boolean> {
    const at = this.#find(entry.key);
    if (at !== undefined && this.#signedAt(at).record.equals(entry.signed.record)) return false;
    this.#put(at, entry);
    if (this.#journal === undefined) return false;
    await this.#journal.append(entry.key, entry.signed);
    return true;
  }

  /**
   * Starts from the entries of the netlock already at the run's path (verified by the caller,
   * `readKeptNetlock`, which keeps them here as it reads them): they are written again with this run's, never journalled (the
   * file itself still holds them until the new one replaces it). A key this run already holds (restored from
   * the journal, or served) keeps its entry.
   */
  keep(entries: Iterable<DecodedEntry>): void {
    for (const e of entries) {
      const at = this.#find(e.key);
      if (at === undefined) this.#put(undefined, e);
    }
  }

  /**
   * Re-adds entries recovered from a journal, reading their records from `source`; lines whose record block,
   * signature or key do not verify (or, with `trusted`, that another key signed) are returned, not added.
   */
  async restore(entries: ReadonlyArray<{ key: string; signed: SignedRecord }>, source: BlockSource, trusted?: readonly Uint8Array[]): Promise<RefusedJournalLine[]> {
    const { good, refused } = await checkJournalEntries(entries, source, trusted);
    for (const e of good) this.#put(this.#find(e.key), e);
    return refused;
  }

  /** The entries, rebuilt from what is held (in the order they were first served or kept). */
  entries(): EntrySummary[] {
    return this.entriesFrom(0);
  }

  get size(): number {
    return this.#size;
  }

  /**
   * Changes whenever the entries do: `<replaced>:<size>`. While only the size moves, the entries a holder of
   * an older version lacks are those from its size on (`entriesFrom`).
   */
  get version(): string {
    return `${this.#replaced}:${this.#size}`;
  }

  /**
   * The entries from the `start`-th to before the `end`-th, in the order `entries()` gives them (those added
   * since a `version`, up to the size of another).
   */
  entriesFrom(start: number, end = this.#size): EntrySummary[] {
    const out: EntrySummary[] = [];
    for (let at = Math.max(0, start); at < Math.min(end, this.#size); at++) out.push(this.#entryAt(at));
    return out;
  }

  /**
   * The run's netlock DAG so far, built into `sink` a page at a time like `write` (no file): its head. A sink
   * that keeps nothing gives the root without holding the DAG.
   */
  head(sink: BlockSink, variantRules?: VariantRules): Promise<WrittenNetlock> {
    return buildNetlockHead(this.#sorted(), sink, variantRules === undefined ? {} : { variantRules });
  }

  /**
   * Writes the run's netlock (DAG into `sink`, readable file at `path`), decoding its entries a page at a
   * time and writing their lines as it goes; returns the file's head.
   */
  async write(path: string, sink: BlockSink, variantRules?: VariantRules): Promise<WrittenNetlock> {
    const file = await writeNetlockFileFrom(path, this.#sorted(), sink, variantRules === undefined ? {} : { variantRules });
    await this.#journal?.remove();
    return file;
  }

  /**
   * `write`, leaving the run's journal as it is: the netlock so far, for whoever asks while the run goes on.
   * A copy read once and thrown away: not synced.
   */
  writeCopy(path: string, sink: BlockSink, variantRules?: VariantRules): Promise<WrittenNetlock> {
    return writeNetlockFileFrom(path, this.#sorted(), sink, variantRules === undefined ? {} : { variantRules }, { durable: false });
  }

  /** Frees the scratch file (entries held in it cannot be read afterwards). Idempotent. */
  close(): void {
    this.#spill?.close();
  }

  /**
   * The entries in key order, decoded one at a time (their keys sorted a chunk at a time). Reading the keys
   * lets the event loop run every `KEYS_BETWEEN_TURNS`: the live page's rebuild of a 400,000-entry run would
   * otherwise hold every request up for the seconds it takes.
   */
  async *#sorted(): AsyncGenerator<EntrySummary> {
    const size = this.#size;
    const pairs = async function* (keyAt: (at: number) => string): AsyncGenerator<[string, number]> {
      for (let at = 0; at < size; at++) {
        if (at % KEYS_BETWEEN_TURNS === KEYS_BETWEEN_TURNS - 1) await nextTurn();
        yield [keyAt(at), at];
      }
    };
    // Without a scratch directory the entries are in the heap already, and so may their keys be.
    const options = { dir: this.#spillDir ?? '', chunk: this.#spillDir === undefined ? Infinity : this.#sortChunk, compare: compareKeys };
    for await (const [, at] of sortByKey(pairs((at) => this.#keyAt(at)), options)) yield this.#entryAt(at);
  }

  /** Where `key`'s entry is, if the run holds one. */
  #find(key: string): number | undefined {
    const at = this.#positions.get(key);
    if (at !== undefined && this.#keyAt(at) === key) return at;
    return this.#sharedDigests.get(key);
  }

  /** Holds `e` at `at` (replacing what is there), or at a new position when `at` is undefined. */
  #put(at: number | undefined, e: DecodedEntry): void {
    const held = this.#hold(e);
    if (at === undefined) {
      at = this.#size++;
      if (at >= this.#tickets.length) {
        const grown = new Float64Array(this.#tickets.length * 2);
        grown.set(this.#tickets);
        this.#tickets = grown;
      }
      if (this.#positions.setIfAbsent(e.key, at) !== undefined) this.#sharedDigests.set(e.key, at);
    } else {
      this.#replaced++;
      this.#held.delete(at);
    }
    if (typeof held === 'number') this.#tickets[at] = held;
    else {
      this.#tickets[at] = HELD;
      this.#held.set(at, held);
    }
  }

  #hold(e: DecodedEntry): number | HeldText {
    const { oracle, fetchedAt, response } = e.record;
    const headers = response.headers.filter(([n]) => ROW_HEADERS.has(n.toLowerCase())).map(([n, v]): [string, string] => [n, v]);
    if ((e.witnesses?.length ?? 0) > 0) {
      const { key, signed, witnesses, countersigned } = e;
      return { key, signed, witnesses, countersigned, record: { oracle, fetchedAt, response: { status: response.status, body: response.body, size: response.size, sha256: response.sha256, headers } } };
    }
    const fields: HeldFields = [e.key, cidText(e.signed.record), Buffer.from(e.signed.signature).toString('base64'), signerIndex(oracle), fetchedAt, response.status, response.body === null ? null : cidText(response.body), response.size, Buffer.from(response.sha256).toString('base64'), headers];
    const text = JSON.stringify(fields);
    return this.#spill?.append(text) ?? text;
  }

  /** The entry at `at`: its text (or, witnessed, its decoded form). */
  #textAt(at: number): HeldText {
    const ticket = this.#tickets[at]!;
    return ticket === HELD ? this.#held.get(at)! : this.#spill!.read(ticket);
  }

  #keyAt(at: number): string {
    const t = this.#textAt(at);
    return typeof t === 'string' ? (JSON.parse(t) as HeldFields)[0] : t.key;
  }

  #signedAt(at: number): SignedRecord {
    const t = this.#textAt(at);
    return typeof t === 'string' ? signedFrom(JSON.parse(t) as HeldFields) : t.signed;
  }

  #entryAt(at: number): EntrySummary {
    const t = this.#textAt(at);
    if (typeof t !== 'string') return t;
    const fields = JSON.parse(t) as HeldFields;
    const [key, , , signer, fetchedAt, status, body, size, sha256, headers] = fields;
    const response = { status, body: body === null ? null : CID.parse(body), size, sha256: new Uint8Array(Buffer.from(sha256, 'base64')), headers };
    return { key, signed: signedFrom(fields), record: { oracle: SIGNERS[signer]!, fetchedAt, response } };
  }
}

/**
 * The signer keys held entries name by index: those of this process's records and of the netlocks it kept,
 * a handful (one copy of each key, whatever the number of entries).
 */
const SIGNERS: Uint8Array[] = [];

function signerIndex(oracle: Uint8Array): number {
  const i = SIGNERS.findIndex((k) => equalBytes(k, oracle));
  return i >= 0 ? i : SIGNERS.push(oracle) - 1;
}

/** The signed record of held fields. */
function signedFrom([, record, signature]: HeldFields): SignedRecord {
  return { record: CID.parse(record), signature: new Uint8Array(Buffer.from(signature, 'base64')) };
}
