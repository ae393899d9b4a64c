import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { InvalidNetlockError, throwIfAborted } from '../errors.ts';
import type { AbortOptions, BlockSink, BlockSource } from '../protocol/blocks.ts';
import { encodeCborBlock } from '../protocol/record.ts';
import { KEY_VERSION } from '../protocol/request-key.ts';
import type { VariantRules } from '../protocol/request-key.ts';
import { toHex } from '../protocol/signature.ts';
import type { SignedRecord } from '../protocol/signature.ts';
import type { SignedCountersignature } from '../protocol/countersignature.ts';

export const NETLOCK_TYPE = 'fetch-oracle/netlock';
export const NETLOCK_VERSION = 1;

/**
 * Page limits for the sorted index (design §4). A page holds at most this many entries or children and
 * stays well under 1 MiB, so a 100k-entry netlock has two levels and a lookup costs three block fetches.
 */
export const MAX_PAGE_ENTRIES = 256;
export const MAX_PAGE_BYTES = 512 * 1024;

/** One request key → the signed record that answers it. */
export interface NetlockEntry {
  readonly key: string;
  readonly signed: SignedRecord;
  /** Witnesses' countersignatures (k-of-n witnesses); absent in a netlock no witness signed. */
  readonly witnesses?: readonly SignedCountersignature[] | undefined;
}

export interface NetlockRoot {
  readonly v: number;
  readonly type: string;
  readonly keyVersion: number;
  readonly count: number;
  /** Every oracle key that signed a record of this netlock, sorted. */
  readonly oracles: readonly Uint8Array[];
  /** Every witness key that countersigned an entry, sorted; absent when none did (so older roots are unchanged). */
  readonly witnesses?: readonly Uint8Array[];
  readonly index: CID;
  /** Extra per-host variant headers the keys were computed with (absent when none). */
  readonly variantRules?: VariantRules;
}

export interface BuildNetlockOptions extends AbortOptions {
  variantRules?: VariantRules;
  /** The witness keys of the entries' countersignatures (required when an entry has any). */
  witnesses?: readonly Uint8Array[];
}

/** `[key, record, signature]`, or with countersignatures `[key, record, signature, [[countersignature, signature], …]]`. */
type LeafEntry = [string, CID, Uint8Array] | [string, CID, Uint8Array, Array<[CID, Uint8Array]>];
type LeafPage = { leaf: true; entries: LeafEntry[] };
type BranchPage = { leaf: false; keys: string[]; children: CID[] };
type Page = LeafPage | BranchPage;

/** Byte-wise (UTF-16 code unit) order: the same in host and guest, independent of locale. */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Items cut into pages, in order: a page ends before the item that would take it past either limit. */
async function* chunkPages<T>(items: Iterable<T> | AsyncIterable<T>, sizeOf: (t: T) => number): AsyncGenerator<T[]> {
  let page: T[] = [];
  let bytes = 0;
  for await (const item of items) {
    const s = sizeOf(item);
    if (page.length > 0 && (page.length >= MAX_PAGE_ENTRIES || bytes + s > MAX_PAGE_BYTES)) {
      yield page;
      page = [];
      bytes = 0;
    }
    page.push(item);
    bytes += s;
  }
  if (page.length > 0) yield page;
}

/** The entries as given, refusing one whose key does not come after the one before (a duplicate or out of order). */
async function* inKeyOrder<E extends NetlockEntry>(entries: SortedEntries<E>): AsyncGenerator<E> {
  let previous: string | undefined;
  for await (const e of entries) {
    if (previous !== undefined && compareKeys(previous, e.key) >= 0) {
      const what = previous === e.key ? 'Duplicate netlock key' : 'Netlock entries out of order at';
      throw new InvalidNetlockError(`${what}: ${e.key.split('\n').slice(0, 2).join(' ')}`);
    }
    previous = e.key;
    yield e;
  }
}

export interface BuiltNetlock {
  root: CID;
  rootValue: NetlockRoot;
}

/**
 * Entries in key order (`compareKeys`), pulled one at a time: a run of 100,000 requests builds its netlock
 * holding one page of decoded entries at once, and its keys need not be in memory together either (issue #15).
 */
export type SortedEntries<E extends NetlockEntry> = Iterable<E> | AsyncIterable<E>;

/**
 * Writes the netlock DAG for `entries` (duplicates by key rejected) and returns its root. The same set of
 * entries always gives the same root CID: sorted keys, deterministic paging, no timestamps.
 */
export async function buildNetlock(
  entries: readonly NetlockEntry[],
  oracles: readonly Uint8Array[],
  sink: BlockSink,
  options: BuildNetlockOptions = {},
): Promise<BuiltNetlock> {
  return buildNetlockPaged(sortedEntries(entries), () => ({ oracles, witnesses: options.witnesses }), sink, options);
}

/** Entries held whole, as `buildNetlockPaged` takes them: sorted by key. */
export function sortedEntries<E extends NetlockEntry>(entries: readonly E[]): E[] {
  return [...entries].sort((a, b) => compareKeys(a.key, b.key));
}

/**
 * `buildNetlock` over entries pulled in key order, a leaf page at a time. `onLeafPage` sees each leaf page's
 * entries in key order (and is awaited); `signers` is asked for the root's oracle and witness keys (repeats
 * allowed) once every page is built, so a caller can gather them from the pages (`options.witnesses` is not
 * read). A key out of order or repeated is refused when it is reached: the leaf pages before it may then be
 * in `sink` already, unreferenced (content-addressed, so harmless, and `gc` takes them).
 */
export async function buildNetlockPaged<E extends NetlockEntry>(
  entries: SortedEntries<E>,
  signers: () => { oracles: readonly Uint8Array[]; witnesses?: readonly Uint8Array[] | undefined },
  sink: BlockSink,
  options: AbortOptions & { variantRules?: VariantRules | undefined } = {},
  onLeafPage?: (page: readonly E[]) => void | Promise<void>,
): Promise<BuiltNetlock> {
  let level: Array<{ firstKey: string; cid: CID }> = [];
  let witnessed = false;
  let count = 0;
  const putLeaf = async (page: E[]): Promise<void> => {
    throwIfAborted(options.signal);
    witnessed ||= page.some((e) => (e.witnesses?.length ?? 0) > 0);
    await onLeafPage?.(page);
    const value: LeafPage = { leaf: true, entries: page.map(leafEntry) };
    const block = await encodeCborBlock(value);
    await sink.put(block.cid, block.bytes, options);
    level.push({ firstKey: page[0]?.key ?? '', cid: block.cid });
    count += page.length;
  };
  for await (const page of chunkPages(inKeyOrder(entries), (e) => e.key.length + 120)) await putLeaf(page);
  if (level.length === 0) await putLeaf([]);
  while (level.length > 1) {
    const next: typeof level = [];
    for await (const page of chunkPages(level, (c) => c.firstKey.length + 50)) {
      const value: BranchPage = { leaf: false, keys: page.map((c) => c.firstKey), children: page.map((c) => c.cid) };
      const block = await encodeCborBlock(value);
      await sink.put(block.cid, block.bytes, options);
      next.push({ firstKey: page[0]!.firstKey, cid: block.cid });
    }
    level = next;
  }
  const keysOf = signers();
  const uniqueOracles = sortedKeys(keysOf.oracles);
  if (witnessed && (keysOf.witnesses === undefined || keysOf.witnesses.length === 0)) {
    throw new InvalidNetlockError('Netlock entries carry countersignatures but no witness keys were given for the root');
  }
  const witnesses = witnessed ? sortedKeys(keysOf.witnesses ?? []) : [];
  const rules = normaliseRules(options.variantRules);
  const rootValue: NetlockRoot = {
    v: NETLOCK_VERSION,
    type: NETLOCK_TYPE,
    keyVersion: KEY_VERSION,
    count,
    oracles: uniqueOracles,
    ...(witnesses.length === 0 ? {} : { witnesses }),
    index: level[0]!.cid,
    ...(rules === undefined ? {} : { variantRules: rules }),
  };
  const rootBlock = await encodeCborBlock(rootValue);
  await sink.put(rootBlock.cid, rootBlock.bytes, options);
  return { root: rootBlock.cid, rootValue };
}

/** Distinct keys in hex order. */
function sortedKeys(keys: readonly Uint8Array[]): Uint8Array[] {
  return [...new Map(keys.map((k) => [toHex(k), k])).entries()].sort(([a], [b]) => compareKeys(a, b)).map(([, k]) => k);
}

/** An entry as a leaf holds it: three fields as ever, a fourth only when witnesses countersigned it (sorted by CID). */
function leafEntry(e: NetlockEntry): LeafEntry {
  const w = e.witnesses ?? [];
  if (w.length === 0) return [e.key, e.signed.record, e.signed.signature];
  const sorted = [...w].sort((a, b) => compareKeys(a.countersignature.toString(), b.countersignature.toString()));
  return [e.key, e.signed.record, e.signed.signature, sorted.map((c) => [c.countersignature, c.signature])];
}

/** Sorted, lower-cased, empty hosts dropped: the same rules always encode the same way. */
function normaliseRules(rules: VariantRules | undefined): Record<string, string[]> | undefined {
  if (rules === undefined) return undefined;
  const out: Record<string, string[]> = {};
  for (const host of Object.keys(rules).sort()) {
    const headers = [...new Set((rules[host] ?? []).map((h) => h.toLowerCase()))].sort();
    if (headers.length > 0) out[host.toLowerCase()] = headers;
  }
  return Object.keys(out).length === 0 ? undefined : out;
}

function decodeBlock(bytes: Uint8Array, what: string): unknown {
  try {
    return dagCbor.decode(bytes);
  } catch (cause) {
    throw new InvalidNetlockError(`${what} is not valid DAG-CBOR`, { cause });
  }
}

function asRoot(value: unknown, cid: CID): NetlockRoot {
  const v = value as Partial<NetlockRoot> | null;
  if (v === null || typeof v !== 'object') throw new InvalidNetlockError(`Netlock root ${cid} is not a map`);
  if (v.type !== NETLOCK_TYPE) throw new InvalidNetlockError(`Block ${cid} is not a netlock root (type ${String(v.type)})`);
  if (v.v !== NETLOCK_VERSION) throw new InvalidNetlockError(`Invalid netlock version: ${String(v.v)} (expected ${NETLOCK_VERSION})`);
  if (v.keyVersion !== KEY_VERSION) {
    throw new InvalidNetlockError(`Netlock ${cid} uses request-key rules v${String(v.keyVersion)}; this oracle implements v${KEY_VERSION}`);
  }
  if (v.variantRules !== undefined && (typeof v.variantRules !== 'object' || v.variantRules === null || !Object.values(v.variantRules).every((h) => Array.isArray(h) && h.every((x) => typeof x === 'string')))) {
    throw new InvalidNetlockError(`Netlock root ${cid} has malformed variantRules`);
  }
  if (v.witnesses !== undefined && (!Array.isArray(v.witnesses) || !v.witnesses.every((k) => k instanceof Uint8Array && k.byteLength === 32))) {
    throw new InvalidNetlockError(`Netlock root ${cid} has malformed witnesses (expected a list of 32-byte keys)`);
  }
  if (typeof v.count !== 'number' || !Array.isArray(v.oracles) || CID.asCID(v.index) === null) {
    throw new InvalidNetlockError(`Netlock root ${cid} is missing count, oracles or index`);
  }
  return v as NetlockRoot;
}

function asPage(value: unknown, cid: CID): Page {
  const v = value as { leaf?: unknown; entries?: unknown; keys?: unknown; children?: unknown } | null;
  if (v !== null && typeof v === 'object' && v.leaf === true && Array.isArray(v.entries)) {
    for (const e of v.entries as unknown[]) {
      if (!Array.isArray(e) || typeof e[0] !== 'string' || CID.asCID(e[1]) === null || !(e[2] instanceof Uint8Array)) {
        throw new InvalidNetlockError(`Netlock page ${cid} has a malformed entry`);
      }
      if (e.length > 3 && (e.length !== 4 || !Array.isArray(e[3]) || !(e[3] as unknown[]).every((c) => Array.isArray(c) && c.length === 2 && CID.asCID(c[0]) !== null && c[1] instanceof Uint8Array))) {
        throw new InvalidNetlockError(`Netlock page ${cid} has a malformed countersignature list`);
      }
    }
    return v as unknown as LeafPage;
  }
  if (v !== null && typeof v === 'object' && v.leaf === false && Array.isArray(v.keys) && Array.isArray(v.children) && v.keys.length === v.children.length && v.keys.length > 0) {
    return v as unknown as BranchPage;
  }
  throw new InvalidNetlockError(`Block ${cid} is not a netlock index page`);
}

/**
 * A leaf page as a reader keeps it: the keys, and the record CIDs and signatures packed in two byte arrays.
 * About 250 bytes an entry where the decoded page (a CID object and a byte array per entry) took ~1 KiB and
 * kept the garbage collector busy: a 100,000-entry netlock stays in memory whole (issue #15).
 */
interface CompactLeaf {
  readonly leaf: true;
  readonly keys: readonly string[];
  readonly cids: Uint8Array;
  /** Entry i's CID is cids[cidAt[i], cidAt[i + 1]); signatures likewise. */
  readonly cidAt: Uint32Array;
  readonly sigs: Uint8Array;
  readonly sigAt: Uint32Array;
  /** Countersignatures by entry position, only for the entries that have any (most netlocks: none). */
  readonly witnesses: ReadonlyMap<number, readonly SignedCountersignature[]> | undefined;
}

type KeptPage = CompactLeaf | BranchPage;

function compactLeaf(page: LeafPage): CompactLeaf {
  const n = page.entries.length;
  const cidAt = new Uint32Array(n + 1);
  const sigAt = new Uint32Array(n + 1);
  for (let i = 0; i < n; i++) {
    const [, cid, sig] = page.entries[i]!;
    cidAt[i + 1] = cidAt[i]! + cid.bytes.byteLength;
    sigAt[i + 1] = sigAt[i]! + sig.byteLength;
  }
  const cids = new Uint8Array(cidAt[n]!);
  const sigs = new Uint8Array(sigAt[n]!);
  for (let i = 0; i < n; i++) {
    const [, cid, sig] = page.entries[i]!;
    cids.set(cid.bytes, cidAt[i]);
    sigs.set(sig, sigAt[i]);
  }
  let witnesses: Map<number, SignedCountersignature[]> | undefined;
  page.entries.forEach((e, i) => {
    if (e.length !== 4 || e[3].length === 0) return;
    witnesses ??= new Map();
    witnesses.set(i, e[3].map(([countersignature, signature]) => ({ countersignature, signature })));
  });
  return { leaf: true, keys: page.entries.map((e) => e[0]), cids, cidAt, sigs, sigAt, witnesses };
}

/** What a kept page costs in memory, roughly (strings, arrays and object headers). */
function pageBytes(page: KeptPage): number {
  let bytes = 256;
  for (const k of page.keys) bytes += k.length + 24;
  if (!page.leaf) return bytes + 64 * page.children.length;
  let witnessed = 0;
  for (const w of page.witnesses?.values() ?? []) witnessed += 64 + 160 * w.length;
  return bytes + page.cids.byteLength + page.sigs.byteLength + 8 * page.keys.length + witnessed;
}

function entryAt(page: CompactLeaf, i: number): NetlockEntry {
  const witnesses = page.witnesses?.get(i);
  return {
    key: page.keys[i]!,
    signed: { record: CID.decode(page.cids.subarray(page.cidAt[i], page.cidAt[i + 1])), signature: page.sigs.subarray(page.sigAt[i], page.sigAt[i + 1]) },
    ...(witnesses === undefined ? {} : { witnesses }),
  };
}

/** Memory a reader keeps index pages in by default (least recently used out first): a 100,000-entry netlock fits. */
export const PAGE_CACHE_BYTES = 48 * 1024 * 1024;

export interface NetlockReaderOptions {
  /** @default PAGE_CACHE_BYTES */
  pageCacheBytes?: number;
}

/**
 * For a reader that walks the entries once (verify, report, lockfile, import): no page is kept, since none is
 * read twice. Kept, the pages of a 100,000-entry netlock were ~20 MB held to the end of the walk (issue #15).
 */
export const WALK_ONCE: NetlockReaderOptions = { pageCacheBytes: 0 };

/**
 * Read access to a netlock DAG through a BlockSource (host store or guest device). Pages are fetched and
 * decoded on demand and kept compact (`CompactLeaf`) up to a memory budget, so that a replay walks the
 * index through the block source once per page, not once per request; the source is expected to verify
 * block hashes.
 */
export class NetlockReader {
  readonly root: CID;
  readonly #source: BlockSource;
  readonly #maxBytes: number;
  readonly #pages = new Map<string, { page: KeptPage; bytes: number }>();
  /** Page fetches under way, shared by concurrent lookups. */
  readonly #pending = new Map<string, Promise<KeptPage>>();
  #bytes = 0;
  #rootValue: NetlockRoot | undefined;

  constructor(root: CID, source: BlockSource, options: NetlockReaderOptions = {}) {
    this.root = root;
    this.#source = source;
    this.#maxBytes = options.pageCacheBytes ?? PAGE_CACHE_BYTES;
  }

  async rootValue(options?: AbortOptions): Promise<NetlockRoot> {
    if (this.#rootValue === undefined) {
      this.#rootValue = asRoot(decodeBlock(await this.#source.get(this.root, options), `Netlock root ${this.root}`), this.root);
    }
    return this.#rootValue;
  }

  /** Index pages kept now, and their estimated bytes. */
  get cached(): { pages: number; bytes: number } {
    return { pages: this.#pages.size, bytes: this.#bytes };
  }

  async #page(cid: CID, options?: AbortOptions): Promise<KeptPage> {
    const key = cid.toString();
    const cached = this.#pages.get(key);
    if (cached !== undefined) {
      // Re-insert: Map order is the LRU order.
      this.#pages.delete(key);
      this.#pages.set(key, cached);
      return cached.page;
    }
    // A caller with its own signal fetches alone: another caller's abort must not end its lookup.
    if (options?.signal !== undefined) return this.#fetchPage(cid, key, options);
    let pending = this.#pending.get(key);
    if (pending === undefined) {
      pending = this.#fetchPage(cid, key).finally(() => this.#pending.delete(key));
      this.#pending.set(key, pending);
    }
    return pending;
  }

  async #fetchPage(cid: CID, key: string, options?: AbortOptions): Promise<KeptPage> {
    const decoded = asPage(decodeBlock(await this.#source.get(cid, options), `Netlock page ${cid}`), cid);
    const page = decoded.leaf ? compactLeaf(decoded) : decoded;
    const bytes = pageBytes(page);
    if (bytes <= this.#maxBytes) {
      this.#pages.set(key, { page, bytes });
      this.#bytes += bytes;
      for (const [k, kept] of this.#pages) {
        if (this.#bytes <= this.#maxBytes) break;
        this.#pages.delete(k);
        this.#bytes -= kept.bytes;
      }
    }
    return page;
  }

  /** Finds the leaf page where `key` is or would be: O(depth) page reads, none once the pages are kept. */
  async #leafFor(key: string, options?: AbortOptions): Promise<CompactLeaf> {
    let page = await this.#page((await this.rootValue(options)).index, options);
    for (let depth = 0; !page.leaf; depth++) {
      if (depth > 16) throw new InvalidNetlockError(`Netlock ${this.root} index is deeper than 16 levels`);
      let i = 0;
      while (i + 1 < page.keys.length && compareKeys(page.keys[i + 1]!, key) <= 0) i++;
      page = await this.#page(page.children[i]!, options);
    }
    return page;
  }

  /**
   * Looks `key` up. On a miss, `nearby` holds the keys of the same index page closest to where the key
   * would sort (what the miss explainer ranks).
   */
  async lookup(key: string, options?: AbortOptions): Promise<{ entry: NetlockEntry | undefined; nearby: string[] }> {
    const leaf = await this.#leafFor(key, options);
    let lo = 0;
    let hi = leaf.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareKeys(leaf.keys[mid]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    if (leaf.keys[lo] === key) return { entry: entryAt(leaf, lo), nearby: [] };
    return { entry: undefined, nearby: leaf.keys.slice(Math.max(0, lo - 8), lo + 8) };
  }

  /** Every entry in key order. */
  async *entries(options?: AbortOptions): AsyncGenerator<NetlockEntry> {
    const walk = async function* (this: NetlockReader, cid: CID, depth: number): AsyncGenerator<NetlockEntry> {
      if (depth > 16) throw new InvalidNetlockError(`Netlock ${this.root} index is deeper than 16 levels`);
      const page = await this.#page(cid, options);
      if (page.leaf) {
        for (let i = 0; i < page.keys.length; i++) yield entryAt(page, i);
      } else {
        for (const child of page.children) yield* walk.call(this, child, depth + 1);
      }
    };
    yield* walk.call(this, (await this.rootValue(options)).index, 0);
  }
}
