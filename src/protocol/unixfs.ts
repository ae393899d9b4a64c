import * as dagPb from '@ipld/dag-pb';
import { UnixFS } from 'ipfs-unixfs';
import { CID } from 'multiformats/cid';
import * as raw from 'multiformats/codecs/raw';
import { create as createDigest } from 'multiformats/hashes/digest';
import { sha256 } from 'multiformats/hashes/sha2';
import { BlockCorruptError, throwIfAborted } from '../errors.ts';
import { DAG_PB_CODE, RAW_CODE, sha256Multihash } from './blocks.ts';
import type { AbortOptions, BlockSink, BlockSource } from './blocks.ts';

/** IPIP-499 `unixfs-v1-2025`: fixed 1 MiB chunks. */
export const CHUNK_BYTES = 1024 * 1024;
/** Leaf writes `importBody` keeps under way at once. */
export const LEAF_WRITES_IN_FLIGHT = 10;
/** IPIP-499 `unixfs-v1-2025`: at most 1024 links per node. */
export const MAX_LINKS_PER_NODE = 1024;

export interface ImportedBody {
  cid: CID;
  size: number;
}

/** Chunk size and node width; the defaults are the profile's. Tests narrow them to build deep DAGs cheaply. */
export interface DagShape {
  chunkBytes: number;
  maxLinks: number;
}

const PROFILE_SHAPE: DagShape = { chunkBytes: CHUNK_BYTES, maxLinks: MAX_LINKS_PER_NODE };

/** A stored leaf: a raw block of at most CHUNK_BYTES bytes of the file, in file order. */
export interface StoredLeaf {
  cid: CID;
  size: number;
}

/** The raw-leaf CID of `bytes` given their sha2-256 digest (computed wherever is cheapest). */
export function rawLeafCid(sha256Digest: Uint8Array): CID {
  return CID.createV1(raw.code, createDigest(sha256.code, sha256Digest));
}

/** A node of the tree under construction: its CID, the file bytes under it, and its cumulative DAG size. */
interface Subtree {
  cid: CID;
  fileSize: number;
  dagSize: number;
}

/**
 * Builds the UnixFS file DAG of the `unixfs-v1-2025` profile (CIDv1, raw leaves, balanced, at most 1024
 * links per node, a one-leaf file is the leaf itself) over leaves that are already stored, writing each
 * internal node to `sink` as soon as it is complete; memory holds at most 1023 entries per level.
 *
 * Written here rather than taken from ipfs-unixfs-importer for importBody's sliding window of leaf writes
 * (measured there). The node encoding is the library's own (ipfs-unixfs + @ipld/dag-pb);
 * test/interop/kubo-cid.test.ts proves the CIDs equal to Kubo's and test/protocol/unixfs.test.ts to
 * ipfs-unixfs-importer's (every option explicit: test/protocol/importer-options.ts), up to five levels deep.
 */
export async function buildFileDag(
  leaves: AsyncIterable<StoredLeaf> | Iterable<StoredLeaf>,
  sink: BlockSink,
  options: AbortOptions & { shape?: DagShape } = {},
): Promise<ImportedBody> {
  const builder = new FileDagBuilder(sink, options);
  for await (const leaf of leaves) await builder.add(leaf);
  return builder.finish();
}

/**
 * `buildFileDag` with the leaves given one at a time, in file order (`add`), then `finish`. Pushed rather than
 * pulled from a generator: V8 (Node 20) keeps what a generator's frame refers to alive through young
 * collections, so each recorded body's objects went to the old generation (issue #15, session 18).
 */
export class FileDagBuilder {
  readonly #sink: BlockSink;
  readonly #options: AbortOptions;
  readonly #maxLinks: number;
  /** levels[k] holds the finished subtrees of height k not yet linked by a parent. */
  readonly #levels: Subtree[][] = [[]];
  #count = 0;
  #total = 0;

  constructor(sink: BlockSink, options: AbortOptions & { shape?: DagShape } = {}) {
    this.#sink = sink;
    this.#options = options;
    this.#maxLinks = (options.shape ?? PROFILE_SHAPE).maxLinks;
  }

  async add(leaf: StoredLeaf): Promise<void> {
    throwIfAborted(this.#options.signal);
    this.#count++;
    this.#total += leaf.size;
    const leaves = this.#levels[0]!;
    leaves.push({ cid: leaf.cid, fileSize: leaf.size, dagSize: leaf.size });
    if (leaves.length === this.#maxLinks) await this.#link(0);
  }

  async finish(): Promise<ImportedBody> {
    if (this.#count === 0) throw new Error('buildFileDag needs at least one leaf (an empty file is one empty leaf)');
    // As ipfs-unixfs-importer's balanced layout: each level's remainder gets a parent, until a level that
    // never filled up holds exactly one subtree, the root. A one-leaf file is that leaf.
    const levels = this.#levels;
    for (let height = 0; ; height++) {
      const higher = levels.slice(height + 1).some((l) => l.length > 0);
      const here = levels[height]!;
      if (!higher && here.length === 1) return { cid: here[0]!.cid, size: this.#total };
      if (here.length > 0) await this.#link(height);
    }
  }

  async #link(height: number): Promise<void> {
    const levels = this.#levels;
    const children = levels[height]!;
    levels[height] = [];
    const parent = await storeNode(children, this.#sink, this.#options);
    (levels[height + 1] ??= []).push(parent);
    if (levels[height + 1]!.length === this.#maxLinks) await this.#link(height + 1);
  }
}

async function storeNode(children: readonly Subtree[], sink: BlockSink, options: AbortOptions): Promise<Subtree> {
  const unixfs = new UnixFS({ type: 'file' });
  const links: dagPb.PBLink[] = [];
  for (const child of children) {
    // An empty raw leaf carries nothing: the importer leaves it out of its parent, and so do we.
    if (child.fileSize === 0) continue;
    unixfs.addBlockSize(BigInt(child.fileSize));
    links.push({ Name: '', Tsize: child.dagSize, Hash: child.cid });
  }
  const bytes = dagPb.encode(dagPb.prepare({ Data: unixfs.marshal(), Links: links }));
  const cid = CID.createV1(DAG_PB_CODE, sha256Multihash(bytes));
  await sink.put(cid, bytes, options);
  return { cid, fileSize: Number(unixfs.fileSize()), dagSize: bytes.byteLength + links.reduce((sum, l) => sum + (l.Tsize ?? 0), 0) };
}

/** What the first chunk of a body starts as before it grows (bodies are mostly small). */
const FIRST_CHUNK_BYTES = 16 * 1024;

/**
 * Imports a byte stream as a UnixFS file and writes its blocks to `sink` as they are built (so memory
 * stays flat: one chunk being filled, at most LEAF_WRITES_IN_FLIGHT being written). The root CID is known
 * only when the stream ends; a stream that throws leaves only unreferenced blocks behind, never a root.
 *
 * Kept instead of ipfs-unixfs-importer because of its sliding window: the importer hashes and writes
 * leaves in batches of `blockWriteConcurrency` and reads nothing from the source meanwhile, which on the
 * record path pauses the upstream socket. Issue #11, on 2 shared cores under other load: recording a 1 GiB
 * body through the proxy (bench/core.ts, three alternating pairs) took 8.3–10.3 s with this builder and
 * 18.8–28.0 s with the importer set as in test/protocol/importer-options.ts; 4 KiB records were a wash
 * (175–231 against 180–258 req/s). From an in-memory source (bench/unixfs-import.ts) the two are within
 * noise on 1 GiB (best of 3 into FsBlockStore: 4.9 / 10.6 / 8.5 s against 4.3 / 14.0 / 9.8 s), and the
 * importer is faster on 4 KiB bodies (291 against 264 bodies/s; CPU 3.8 against 6.0 s for 3000), this
 * builder allocating a whole chunk per body.
 */
export async function importBody(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  sink: BlockSink,
  options: AbortOptions & { shape?: DagShape } = {},
): Promise<ImportedBody> {
  throwIfAborted(options.signal);
  const importer = new BodyImporter(sink, options);
  for await (const piece of source) await importer.write(piece);
  return importer.end();
}

/**
 * `importBody` with the bytes given as they come (`write`), then `end` for the root; not a generator
 * pipeline, for the reason `FileDagBuilder` gives. A `write` or `end` that throws leaves only unreferenced
 * blocks behind, never a root.
 */
export class BodyImporter {
  readonly #sink: BlockSink;
  readonly #options: AbortOptions;
  readonly #chunkBytes: number;
  readonly #dag: FileDagBuilder;
  /** Leaf writes under way, in file order. They overlap (one write at a time leaves the store's latency on the critical path); at most LEAF_WRITES_IN_FLIGHT are held. */
  readonly #writes: Promise<StoredLeaf>[] = [];
  /**
   * Whole leaves whose put resolved, for the next ones, when the sink keeps no bytes: otherwise each MiB of a
   * body is a fresh buffer outside V8's heap, freed only by a full collection (issue #15: a 1 GiB record ran
   * 83-93 of them before, 56-62 with this).
   */
  readonly #spare: Uint8Array[] = [];
  readonly #reuse: boolean;
  /**
   * The chunk being filled. The first one is the body's declared size when that fits a chunk; otherwise it
   * grows as bytes come (a 4 KiB body allocates 16 KiB, not a whole 1 MiB chunk: that was a fifth of the
   * record path's CPU in garbage collection, issue #15); once a body has filled one chunk, the next ones are
   * allocated whole.
   */
  #chunk: Uint8Array;
  #filled = 0;
  #leaves = 0;

  /** `sizeHint`: the body's declared size (a Content-Length), which sizes its first chunk; more bytes may still come. */
  constructor(sink: BlockSink, options: AbortOptions & { shape?: DagShape; sizeHint?: number } = {}) {
    this.#sink = sink;
    this.#options = options;
    this.#chunkBytes = (options.shape ?? PROFILE_SHAPE).chunkBytes;
    const hint = options.sizeHint;
    // Sized once, not grown by doubling: each size it passes is a buffer outside V8's heap, counted against
    // its next full collection (young-gc.ts); a 100 KiB body allocated 240 KiB that way.
    this.#chunk = new Uint8Array(hint !== undefined && Number.isSafeInteger(hint) && hint > 0 && hint <= this.#chunkBytes ? hint : 0);
    this.#dag = new FileDagBuilder(sink, options);
    this.#reuse = sink.putKeepsNoBytes === true;
  }

  async write(piece: Uint8Array): Promise<void> {
    const chunkBytes = this.#chunkBytes;
    for (let offset = 0; offset < piece.byteLength; ) {
      const n = Math.min(piece.byteLength - offset, chunkBytes - this.#filled);
      if (this.#filled + n > this.#chunk.byteLength) {
        const grown = new Uint8Array(Math.min(chunkBytes, Math.max(this.#filled + n, 2 * this.#chunk.byteLength, FIRST_CHUNK_BYTES)));
        grown.set(this.#chunk.subarray(0, this.#filled));
        this.#chunk = grown;
      }
      this.#chunk.set(piece.subarray(offset, offset + n), this.#filled);
      this.#filled += n;
      offset += n;
      if (this.#filled === chunkBytes) {
        this.#leaves++;
        this.#store(this.#chunk);
        if (this.#writes.length >= LEAF_WRITES_IN_FLIGHT) await this.#dag.add(await this.#writes.shift()!);
        this.#chunk = this.#spare.pop() ?? new Uint8Array(chunkBytes);
        this.#filled = 0;
      }
    }
  }

  /** Stores the remainder (or the one empty leaf of an empty file) and the nodes above the leaves. */
  async end(): Promise<ImportedBody> {
    if (this.#filled > 0 || this.#leaves === 0) this.#store(this.#chunk.subarray(0, this.#filled));
    while (this.#writes.length > 0) await this.#dag.add(await this.#writes.shift()!);
    return this.#dag.finish();
  }

  /** Hashes a leaf and starts its write, queued to be added to the DAG in order. */
  #store(bytes: Uint8Array): void {
    const cid = CID.createV1(RAW_CODE, sha256Multihash(bytes));
    const write = this.#sink.put(cid, bytes, this.#options).then(() => {
      if (this.#reuse && bytes.byteLength === this.#chunkBytes && this.#spare.length <= LEAF_WRITES_IN_FLIGHT) this.#spare.push(bytes);
      return { cid, size: bytes.byteLength };
    });
    write.catch(() => undefined); // reported in order, when its turn comes
    this.#writes.push(write);
  }
}

export interface ReadRange {
  /** First byte to read. @default 0 */
  offset?: number;
  /** Number of bytes to read. @default to the end */
  length?: number;
}

/** Leaves fetched ahead of the one being sent: enough to overlap I/O with sending, bounded memory. */
export const READ_AHEAD_LEAVES = 2;
const MAX_DEPTH = 8;

type Child = { cid: CID; start: number; size: number };

function corrupt(cid: CID, why: string): never {
  throw new BlockCorruptError(cid.toString(), `UnixFS node ${cid} is malformed: ${why}`);
}

/**
 * Streams the bytes of the UnixFS file `cid` (or a range) from `source`, which should verify blocks
 * (`verifyingSource`). Written here rather than taken from ipfs-unixfs-exporter because the exporter
 * pushes every leaf into an unbounded queue without backpressure (a 1 GiB body ends up in memory); this
 * walks depth-first, fetches only the leaves the range needs, and reads at most READ_AHEAD_LEAVES ahead.
 */
export async function* readBody(cid: CID, source: BlockSource, range: ReadRange & AbortOptions = {}): AsyncGenerator<Uint8Array> {
  const from = range.offset ?? 0;
  const to = range.length === undefined ? Number.MAX_SAFE_INTEGER : from + range.length;
  if (to <= from) return;
  yield* walk(cid, 0, from, to, source, range.signal, 0, undefined);
}

async function* walk(
  cid: CID,
  start: number,
  from: number,
  to: number,
  source: BlockSource,
  signal: AbortSignal | undefined,
  depth: number,
  prefetched: Promise<Uint8Array> | undefined,
): AsyncGenerator<Uint8Array> {
  throwIfAborted(signal);
  if (depth > MAX_DEPTH) corrupt(cid, `deeper than ${MAX_DEPTH} levels`);
  const block = await (prefetched ?? source.get(cid, signal === undefined ? {} : { signal }));
  if (cid.code === RAW_CODE) {
    const lo = Math.max(from - start, 0);
    const hi = Math.min(to - start, block.byteLength);
    if (hi > lo) yield block.subarray(lo, hi);
    return;
  }
  if (cid.code !== DAG_PB_CODE) corrupt(cid, `codec 0x${cid.code.toString(16)} is not raw or dag-pb`);
  let node: dagPb.PBNode;
  let file: UnixFS;
  try {
    node = dagPb.decode(block);
    if (node.Data === undefined) corrupt(cid, 'no UnixFS data');
    file = UnixFS.unmarshal(node.Data);
  } catch (err) {
    if (err instanceof BlockCorruptError) throw err;
    corrupt(cid, (err as Error).message);
  }
  if (file.type !== 'file' && file.type !== 'raw') corrupt(cid, `a UnixFS ${file.type}, not a file`);
  let pos = start;
  if (file.data !== undefined && file.data.byteLength > 0) {
    const lo = Math.max(from - pos, 0);
    const hi = Math.min(to - pos, file.data.byteLength);
    if (hi > lo) yield file.data.subarray(lo, hi);
    pos += file.data.byteLength;
  }
  if (node.Links.length !== file.blockSizes.length) corrupt(cid, 'link count differs from blockSizes');
  const wanted: Child[] = [];
  for (let i = 0; i < node.Links.length; i++) {
    const size = Number(file.blockSizes[i]);
    if (pos + size > from && pos < to) wanted.push({ cid: node.Links[i]!.Hash, start: pos, size });
    pos += size;
    if (pos >= to) break;
  }
  // Read ahead only raw leaves (bounded bytes); inner nodes are fetched when reached.
  const ahead = new Map<number, Promise<Uint8Array>>();
  const opts = signal === undefined ? {} : { signal };
  for (let i = 0; i < wanted.length; i++) {
    for (let j = i; j < Math.min(wanted.length, i + 1 + READ_AHEAD_LEAVES); j++) {
      const c = wanted[j]!;
      if (!ahead.has(j) && c.cid.code === RAW_CODE) {
        const p = source.get(c.cid, opts);
        p.catch(() => {}); // surfaced when awaited in order
        ahead.set(j, p);
      }
    }
    const child = wanted[i]!;
    const got = ahead.get(i);
    ahead.delete(i);
    let seen = 0;
    for await (const chunk of walk(child.cid, child.start, from, to, source, signal, depth + 1, got)) {
      seen += chunk.byteLength;
      yield chunk;
    }
    const expected = Math.min(child.start + child.size, to) - Math.max(child.start, from);
    if (seen !== expected) corrupt(child.cid, `yielded ${seen} bytes where blockSizes promise ${expected}`);
  }
}
