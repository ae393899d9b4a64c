import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { InvalidNetlockError, throwIfAborted } from '../errors.ts';
import type { AbortOptions, BlockSink, BlockSource } from '../protocol/blocks.ts';
import { encodeCborBlock } from '../protocol/record.ts';
import { KEY_VERSION } from '../protocol/request-key.ts';
import type { VariantRules } from '../protocol/request-key.ts';
import { toHex } from '../protocol/signature.ts';
import type { SignedRecord } from '../protocol/signature.ts';

export const NETLOCK_TYPE = 'fetch-oracle/netlock';
export const NETLOCK_VERSION = 1;

/**
 * Page limits for the sorted index (design §4). A page holds at most this many entries or children and
 * stays well under 1 MiB, so a 100k-entry netlock has two levels and a lookup costs three block fetches.
 */
export const MAX_PAGE_ENTRIES = 256;
export const MAX_PAGE_BYTES = 512 * 1024;
/** Decoded index pages kept by a reader (each at most MAX_PAGE_BYTES encoded): the upper levels stay hot. */
export const PAGE_CACHE_ENTRIES = 64;

/** One request key → the signed record that answers it. */
export interface NetlockEntry {
  readonly key: string;
  readonly signed: SignedRecord;
}

export interface NetlockRoot {
  readonly v: number;
  readonly type: string;
  readonly keyVersion: number;
  readonly count: number;
  /** Every oracle key that signed a record of this netlock, sorted. */
  readonly oracles: readonly Uint8Array[];
  readonly index: CID;
  /** Extra per-host variant headers the keys were computed with (absent when none). */
  readonly variantRules?: VariantRules;
}

export interface BuildNetlockOptions extends AbortOptions {
  variantRules?: VariantRules;
}

type LeafPage = { leaf: true; entries: Array<[string, CID, Uint8Array]> };
type BranchPage = { leaf: false; keys: string[]; children: CID[] };
type Page = LeafPage | BranchPage;

/** Byte-wise (UTF-16 code unit) order: the same in host and guest, independent of locale. */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function chunkPages<T>(items: T[], sizeOf: (t: T) => number): T[][] {
  const pages: T[][] = [];
  let page: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const s = sizeOf(item);
    if (page.length > 0 && (page.length >= MAX_PAGE_ENTRIES || bytes + s > MAX_PAGE_BYTES)) {
      pages.push(page);
      page = [];
      bytes = 0;
    }
    page.push(item);
    bytes += s;
  }
  if (page.length > 0) pages.push(page);
  return pages;
}

export interface BuiltNetlock {
  root: CID;
  rootValue: NetlockRoot;
}

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
  const sorted = [...entries].sort((a, b) => compareKeys(a.key, b.key));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i - 1]!.key === sorted[i]!.key) throw new InvalidNetlockError(`Duplicate netlock key: ${sorted[i]!.key.split('\n').slice(0, 2).join(' ')}`);
  }
  let level: Array<{ firstKey: string; cid: CID }> = [];
  const leaves = chunkPages(sorted, (e) => e.key.length + 120);
  if (leaves.length === 0) leaves.push([]);
  for (const page of leaves) {
    throwIfAborted(options.signal);
    const value: LeafPage = { leaf: true, entries: page.map((e) => [e.key, e.signed.record, e.signed.signature]) };
    const block = await encodeCborBlock(value);
    await sink.put(block.cid, block.bytes, options);
    level.push({ firstKey: page[0]?.key ?? '', cid: block.cid });
  }
  while (level.length > 1) {
    const next: typeof level = [];
    for (const page of chunkPages(level, (c) => c.firstKey.length + 50)) {
      const value: BranchPage = { leaf: false, keys: page.map((c) => c.firstKey), children: page.map((c) => c.cid) };
      const block = await encodeCborBlock(value);
      await sink.put(block.cid, block.bytes, options);
      next.push({ firstKey: page[0]!.firstKey, cid: block.cid });
    }
    level = next;
  }
  const uniqueOracles = [...new Map(oracles.map((k) => [toHex(k), k])).entries()]
    .sort(([a], [b]) => compareKeys(a, b))
    .map(([, k]) => k);
  const rules = normaliseRules(options.variantRules);
  const rootValue: NetlockRoot = {
    v: NETLOCK_VERSION,
    type: NETLOCK_TYPE,
    keyVersion: KEY_VERSION,
    count: sorted.length,
    oracles: uniqueOracles,
    index: level[0]!.cid,
    ...(rules === undefined ? {} : { variantRules: rules }),
  };
  const rootBlock = await encodeCborBlock(rootValue);
  await sink.put(rootBlock.cid, rootBlock.bytes, options);
  return { root: rootBlock.cid, rootValue };
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
    }
    return v as unknown as LeafPage;
  }
  if (v !== null && typeof v === 'object' && v.leaf === false && Array.isArray(v.keys) && Array.isArray(v.children) && v.keys.length === v.children.length && v.keys.length > 0) {
    return v as unknown as BranchPage;
  }
  throw new InvalidNetlockError(`Block ${cid} is not a netlock index page`);
}

/**
 * Read access to a netlock DAG through a BlockSource (host store or guest device). Pages are decoded
 * on demand; the source is expected to verify block hashes.
 */
export class NetlockReader {
  readonly root: CID;
  readonly #source: BlockSource;
  readonly #pages = new Map<string, Page>();
  #rootValue: NetlockRoot | undefined;

  constructor(root: CID, source: BlockSource) {
    this.root = root;
    this.#source = source;
  }

  async rootValue(options?: AbortOptions): Promise<NetlockRoot> {
    if (this.#rootValue === undefined) {
      this.#rootValue = asRoot(decodeBlock(await this.#source.get(this.root, options), `Netlock root ${this.root}`), this.root);
    }
    return this.#rootValue;
  }

  async #page(cid: CID, options?: AbortOptions): Promise<Page> {
    const key = cid.toString();
    const cached = this.#pages.get(key);
    if (cached !== undefined) {
      // Re-insert: Map order is the LRU order.
      this.#pages.delete(key);
      this.#pages.set(key, cached);
      return cached;
    }
    const page = asPage(decodeBlock(await this.#source.get(cid, options), `Netlock page ${cid}`), cid);
    this.#pages.set(key, page);
    if (this.#pages.size > PAGE_CACHE_ENTRIES) this.#pages.delete(this.#pages.keys().next().value!);
    return page;
  }

  /** Finds the leaf page where `key` is or would be: O(depth) block fetches. */
  async #leafFor(key: string, options?: AbortOptions): Promise<LeafPage> {
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
    let hi = leaf.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareKeys(leaf.entries[mid]![0], key) < 0) lo = mid + 1;
      else hi = mid;
    }
    const hit = leaf.entries[lo];
    if (hit !== undefined && hit[0] === key) {
      return { entry: { key, signed: { record: hit[1], signature: hit[2] } }, nearby: [] };
    }
    const nearby = leaf.entries.slice(Math.max(0, lo - 8), lo + 8).map((e) => e[0]);
    return { entry: undefined, nearby };
  }

  /** Every entry in key order. */
  async *entries(options?: AbortOptions): AsyncGenerator<NetlockEntry> {
    const walk = async function* (this: NetlockReader, cid: CID, depth: number): AsyncGenerator<NetlockEntry> {
      if (depth > 16) throw new InvalidNetlockError(`Netlock ${this.root} index is deeper than 16 levels`);
      const page = await this.#page(cid, options);
      if (page.leaf) {
        for (const [key, record, signature] of page.entries) yield { key, signed: { record, signature } };
      } else {
        for (const child of page.children) yield* walk.call(this, child, depth + 1);
      }
    };
    yield* walk.call(this, (await this.rootValue(options)).index, 0);
  }
}
