import { CID } from 'multiformats/cid';
import { equalBytes } from '../protocol/blocks.ts';
import type { BlockSink, BlockSource } from '../protocol/blocks.ts';
import type { VariantRules } from '../protocol/request-key.ts';
import type { SignedRecord } from '../protocol/signature.ts';
import type { RunJournal } from '../records/journal.ts';
import { checkJournalEntries } from '../records/journal-check.ts';
import type { RefusedJournalLine } from '../records/journal-check.ts';
import type { DecodedEntry, EntrySummary, WrittenNetlock } from '../netlock/file.ts';
import { buildNetlockHead, writeNetlockFileFrom } from '../netlock/file.ts';
import { SpillFile } from '../io/spill-file.ts';
import { compareKeys } from '../netlock/dag.ts';
import type { PagedEntries } from '../netlock/dag.ts';
import { ROW_HEADERS } from '../report/model.ts';

/**
 * One served entry as a run holds it until it writes its netlock: what the netlock line and the report row
 * read of its record, as one JSON string (~400 bytes)
 * `[record CID, signature (base64), signer (index into SIGNERS), fetchedAt, status, body CID or null, size,
 * sha256 (base64), headers the row reads]`, written to the run's spill file (a number: its ticket)
 * or, without one, held as it is. Witnessed entries (rare: a kept netlock that was countersigned) are held
 * decoded.
 */
type HeldEntry = number | string | EntrySummary;
type HeldFields = [string, string, number, string, number, string | null, number, string, Array<[string, string]>];

/**
 * The requests one run served, the netlock it writes on shutdown. Every newly served key is journalled
 * first, so a crashed run loses nothing it answered.
 *
 * An entry is held as one string (`HeldEntry`), not as its decoded record: a run of 100,000 requests would
 * otherwise hold every request's and response's headers and ~10 CIDs and byte arrays per entry until it
 * ends, ~5 KB each (issue #15: the heap grew without bound, and full collections walking it took a quarter
 * of a recording core). With `spillDir` that string goes to a scratch file there (`SpillFile`) and the heap
 * holds its key and a number. `write` decodes them a page at a time; `entries()` all at once, for the live
 * report. `close()` frees the scratch file.
 */
export class RunSet {
  readonly #entries = new Map<string, HeldEntry>();
  readonly #journal: RunJournal | undefined;
  readonly #spill: SpillFile | undefined;
  /** Entries that another record of their key replaced (entries are otherwise only ever added). */
  #replaced = 0;

  constructor(options: { journal?: RunJournal | undefined; spillDir?: string | undefined } = {}) {
    this.#journal = options.journal;
    this.#spill = options.spillDir === undefined ? undefined : new SpillFile(options.spillDir);
  }

  has(key: string): boolean {
    return this.#entries.has(key);
  }

  async add(entry: DecodedEntry): Promise<void> {
    const had = this.#entries.get(entry.key);
    if (had !== undefined && this.#signedOf(had).record.equals(entry.signed.record)) return;
    if (had !== undefined) this.#replaced++;
    this.#entries.set(entry.key, this.#hold(entry));
    await this.#journal?.append(entry.key, entry.signed);
  }

  /**
   * Starts from the entries of the netlock already at the run's path (verified by the caller,
   * `readKeptNetlock`, which keeps them here as it reads them): they are written again with this run's, never journalled (the
   * file itself still holds them until the new one replaces it). A key this run already holds (restored from
   * the journal, or served) keeps its entry.
   */
  keep(entries: Iterable<DecodedEntry>): void {
    for (const e of entries) if (!this.#entries.has(e.key)) this.#entries.set(e.key, this.#hold(e));
  }

  /**
   * Re-adds entries recovered from a journal, reading their records from `source`; lines whose record block,
   * signature or key do not verify (or, with `trusted`, that another key signed) are returned, not added.
   */
  async restore(entries: ReadonlyArray<{ key: string; signed: SignedRecord }>, source: BlockSource, trusted?: readonly Uint8Array[]): Promise<RefusedJournalLine[]> {
    const { good, refused } = await checkJournalEntries(entries, source, trusted);
    for (const e of good) {
      if (this.#entries.has(e.key)) this.#replaced++;
      this.#entries.set(e.key, this.#hold(e));
    }
    return refused;
  }

  /** The entries, rebuilt from what is held (in the order they were first served or kept). */
  entries(): EntrySummary[] {
    return [...this.#entries].map(([key, h]) => this.#entryOf(key, h));
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Changes whenever the entries do: `<replaced>:<size>`. While only the size moves, the entries a holder of
   * an older version lacks are those from its size on (`entriesFrom`).
   */
  get version(): string {
    return `${this.#replaced}:${this.#entries.size}`;
  }

  /**
   * The entries from the `start`-th to before the `end`-th, in the order `entries()` gives them (those added
   * since a `version`, up to the size of another).
   */
  entriesFrom(start: number, end = this.#entries.size): EntrySummary[] {
    const out: EntrySummary[] = [];
    let i = 0;
    for (const [key, h] of this.#entries) {
      if (i >= end) break;
      if (i++ >= start) out.push(this.#entryOf(key, h));
    }
    return out;
  }

  /**
   * The run's netlock DAG so far, built into `sink` a page at a time like `write` (no file): its head. A sink
   * that keeps nothing gives the root without holding the DAG.
   */
  head(sink: BlockSink, variantRules?: VariantRules): Promise<WrittenNetlock> {
    return buildNetlockHead(this.#paged(), sink, variantRules === undefined ? {} : { variantRules });
  }

  /**
   * Writes the run's netlock (DAG into `sink`, readable file at `path`), decoding its entries a page at a
   * time and writing their lines as it goes; returns the file's head.
   */
  async write(path: string, sink: BlockSink, variantRules?: VariantRules): Promise<WrittenNetlock> {
    const file = await writeNetlockFileFrom(path, this.#paged(), sink, variantRules === undefined ? {} : { variantRules });
    await this.#journal?.remove();
    return file;
  }

  /** Frees the scratch file (entries held in it cannot be read afterwards). Idempotent. */
  close(): void {
    this.#spill?.close();
  }

  /** The entries in key order, decoded a page at a time. */
  #paged(): PagedEntries<EntrySummary> {
    const sortedKeys = [...this.#entries.keys()].sort(compareKeys);
    return { sortedKeys, page: (start, end) => sortedKeys.slice(start, end).map((k) => this.#entryOf(k, this.#entries.get(k)!)) };
  }

  #hold(e: DecodedEntry): HeldEntry {
    const { oracle, fetchedAt, response } = e.record;
    const headers = response.headers.filter(([n]) => ROW_HEADERS.has(n.toLowerCase())).map(([n, v]): [string, string] => [n, v]);
    if ((e.witnesses?.length ?? 0) > 0) {
      const { key, signed, witnesses, countersigned } = e;
      return { key, signed, witnesses, countersigned, record: { oracle, fetchedAt, response: { status: response.status, body: response.body, size: response.size, sha256: response.sha256, headers } } };
    }
    const fields: HeldFields = [e.signed.record.toString(), Buffer.from(e.signed.signature).toString('base64'), signerIndex(oracle), fetchedAt, response.status, response.body?.toString() ?? null, response.size, Buffer.from(response.sha256).toString('base64'), headers];
    return this.#take(JSON.stringify(fields));
  }

  /** Holds a held entry's text: in the spill file when there is one (and it takes it), else as it is. */
  #take(h: string | EntrySummary): HeldEntry {
    if (typeof h !== 'string' || this.#spill === undefined) return h;
    return this.#spill.append(h) ?? h;
  }

  /** A held entry's text (or, witnessed, its decoded form). */
  #text(h: HeldEntry): string | EntrySummary {
    return typeof h === 'number' ? this.#spill!.read(h) : h;
  }

  #signedOf(h: HeldEntry): SignedRecord {
    const t = this.#text(h);
    return typeof t === 'string' ? signedFrom(JSON.parse(t) as HeldFields) : t.signed;
  }

  #entryOf(key: string, h: HeldEntry): EntrySummary {
    const t = this.#text(h);
    if (typeof t !== 'string') return t;
    const fields = JSON.parse(t) as HeldFields;
    const [, , signer, fetchedAt, status, body, size, sha256, headers] = fields;
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
function signedFrom([record, signature]: HeldFields): SignedRecord {
  return { record: CID.parse(record), signature: new Uint8Array(Buffer.from(signature, 'base64')) };
}
