import { CID } from 'multiformats/cid';
import { equalBytes } from '../protocol/blocks.ts';
import type { BlockSink, BlockSource } from '../protocol/blocks.ts';
import type { VariantRules } from '../protocol/request-key.ts';
import { flattenSigned, unflattenSigned } from '../protocol/signature.ts';
import type { SignedRecord } from '../protocol/signature.ts';
import type { RunJournal } from '../records/journal.ts';
import { checkJournalEntries } from '../records/journal-check.ts';
import type { RefusedJournalLine } from '../records/journal-check.ts';
import type { DecodedEntry, EntrySummary, NetlockFile } from '../netlock/file.ts';
import { buildNetlockFileFrom, writeRenderedFile } from '../netlock/file.ts';
import { compareKeys } from '../netlock/dag.ts';
import { ROW_HEADERS } from '../report/model.ts';

/**
 * One served entry as a run holds it until it writes its netlock: what the netlock line and the report row
 * read of its record, as one JSON string (one object for the collector to pass over, ~300 bytes):
 * `[signed (flattenSigned, base64), signer (index into SIGNERS), fetchedAt, status, body CID or null,
 * size, sha256 (base64), headers the row reads]`. Witnessed entries (rare: a kept netlock that was
 * countersigned) are held decoded.
 */
type HeldEntry = string | EntrySummary;
type HeldFields = [string, number, string, number, string | null, number, string, Array<[string, string]>];

/**
 * The requests one run served, the netlock it writes on shutdown. Every newly served key is journalled
 * first, so a crashed run loses nothing it answered.
 *
 * An entry is held as one string (`HeldEntry`), not as its decoded record: a run of 100,000 requests would
 * otherwise hold every request's and response's headers and ~10 CIDs and byte arrays per entry until it
 * ends, ~5 KB each (issue #15: the heap grew without bound, and full collections walking it took a quarter
 * of a recording core). `write` decodes them a page at a time; `entries()` all at once, for the live report.
 */
export class RunSet {
  readonly #entries = new Map<string, HeldEntry>();
  readonly #journal: RunJournal | undefined;

  constructor(journal?: RunJournal) {
    this.#journal = journal;
  }

  has(key: string): boolean {
    return this.#entries.has(key);
  }

  async add(entry: DecodedEntry): Promise<void> {
    const had = this.#entries.get(entry.key);
    if (had !== undefined && signedOf(had).record.equals(entry.signed.record)) return;
    this.#entries.set(entry.key, this.#hold(entry));
    await this.#journal?.append(entry.key, entry.signed);
  }

  /**
   * Starts from the entries of the netlock already at the run's path (verified by the caller; `readKeptNetlock`
   * gathers them into a RunSet of their own): they are written again with this run's, never journalled (the
   * file itself still holds them until the new one replaces it). A key this run already holds (restored from
   * the journal, or served) keeps its entry.
   */
  keep(entries: RunSet | Iterable<DecodedEntry>): void {
    if (entries instanceof RunSet) {
      for (const [key, h] of entries.#entries) if (!this.#entries.has(key)) this.#entries.set(key, h);
      return;
    }
    for (const e of entries) if (!this.#entries.has(e.key)) this.#entries.set(e.key, this.#hold(e));
  }

  /**
   * Re-adds entries recovered from a journal, reading their records from `source`; lines whose record block,
   * signature or key do not verify (or, with `trusted`, that another key signed) are returned, not added.
   */
  async restore(entries: ReadonlyArray<{ key: string; signed: SignedRecord }>, source: BlockSource, trusted?: readonly Uint8Array[]): Promise<RefusedJournalLine[]> {
    const { good, refused } = await checkJournalEntries(entries, source, trusted);
    for (const e of good) this.#entries.set(e.key, this.#hold(e));
    return refused;
  }

  /** The entries, rebuilt from what is held (in the order they were first served or kept). */
  entries(): EntrySummary[] {
    return [...this.#entries].map(([key, h]) => this.#entryOf(key, h));
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Writes the run's netlock (DAG into `sink`, readable file at `path`), decoding its entries a page at a time. */
  async write(path: string, sink: BlockSink, variantRules?: VariantRules): Promise<NetlockFile> {
    const sortedKeys = [...this.#entries.keys()].sort(compareKeys);
    const page = (start: number, end: number): EntrySummary[] => sortedKeys.slice(start, end).map((k) => this.#entryOf(k, this.#entries.get(k)!));
    const file = await buildNetlockFileFrom({ sortedKeys, page }, sink, variantRules === undefined ? {} : { variantRules });
    await writeRenderedFile(path, file);
    await this.#journal?.remove();
    return file;
  }

  #hold(e: DecodedEntry): HeldEntry {
    const { oracle, fetchedAt, response } = e.record;
    const headers = response.headers.filter(([n]) => ROW_HEADERS.has(n.toLowerCase())).map(([n, v]): [string, string] => [n, v]);
    if ((e.witnesses?.length ?? 0) > 0) {
      const { key, signed, witnesses, countersigned } = e;
      return { key, signed, witnesses, countersigned, record: { oracle, fetchedAt, response: { status: response.status, body: response.body, size: response.size, sha256: response.sha256, headers } } };
    }
    const fields: HeldFields = [base64(flattenSigned(e.signed)), signerIndex(oracle), fetchedAt, response.status, response.body?.toString() ?? null, response.size, Buffer.from(response.sha256).toString('base64'), headers];
    return JSON.stringify(fields);
  }

  #entryOf(key: string, h: HeldEntry): EntrySummary {
    if (typeof h !== 'string') return h;
    const [signed, signer, fetchedAt, status, body, size, sha256, headers] = JSON.parse(h) as HeldFields;
    const response = { status, body: body === null ? null : CID.parse(body), size, sha256: new Uint8Array(Buffer.from(sha256, 'base64')), headers };
    return { key, signed: signedFrom(signed), record: { oracle: SIGNERS[signer]!, fetchedAt, response } };
  }
}

/**
 * The signer keys held entries name by index: those of this process's records and of the netlocks it kept,
 * a handful. Shared by every RunSet, so that one can take another's entries as they are.
 */
const SIGNERS: Uint8Array[] = [];

function signerIndex(oracle: Uint8Array): number {
  const i = SIGNERS.findIndex((k) => equalBytes(k, oracle));
  return i >= 0 ? i : SIGNERS.push(oracle) - 1;
}

function base64(latin1: string): string {
  return Buffer.from(latin1, 'latin1').toString('base64');
}

/** The signed record of a held entry. */
function signedOf(h: HeldEntry): SignedRecord {
  return typeof h === 'string' ? signedFrom((JSON.parse(h) as HeldFields)[0]) : h.signed;
}

/** The signed record from its held field (`flattenSigned`, base64). */
function signedFrom(field: string): SignedRecord {
  return unflattenSigned(Buffer.from(field, 'base64').toString('latin1'));
}
