import * as dagPb from '@ipld/dag-pb';
import { UnixFS } from 'ipfs-unixfs';
import { importer } from 'ipfs-unixfs-importer';
import type { ImporterOptions } from 'ipfs-unixfs-importer';
import { fixedSize } from 'ipfs-unixfs-importer/chunker';
import { balanced } from 'ipfs-unixfs-importer/layout';
import type { CID } from 'multiformats/cid';
import { BlockCorruptError, throwIfAborted } from '../errors.ts';
import { DAG_PB_CODE, RAW_CODE } from './blocks.ts';
import type { AbortOptions, BlockSink, BlockSource } from './blocks.ts';

/** IPIP-499 `unixfs-v1-2025`: fixed 1 MiB chunks. */
export const CHUNK_BYTES = 1024 * 1024;
/** Leaf writes `importBody` keeps under way at once (the importer's `blockWriteConcurrency`). */
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

/**
 * ipfs-unixfs-importer set to the IPIP-499 `unixfs-v1-2025` profile with no option left to a library
 * default, so a new importer release cannot change a CID unnoticed. The hash is not an option: the
 * importer hashes every block with sha2-256 (its `persist`), the profile's hash.
 */
export function importerOptions(shape: DagShape = PROFILE_SHAPE): ImporterOptions {
  return {
    profile: 'unixfs-v1-2025', // IPIP-499; the options below spell out what it implies
    cidVersion: 1, // CIDv1 for every block
    rawLeaves: true, // leaves are raw blocks (codec 0x55), not dag-pb nodes
    leafType: 'file', // the UnixFS type of a wrapped leaf: unused with rawLeaves, set all the same
    reduceSingleLeafToSelf: true, // a body of one chunk is that raw leaf, no dag-pb root (as Kubo)
    chunker: fixedSize({ chunkSize: shape.chunkBytes }), // fixed 1 MiB chunks
    layout: balanced({ maxChildrenPerNode: shape.maxLinks }), // balanced DAG, at most 1024 links per node
    fieldOrder: 'links-first', // dag-pb's canonical field order (Links, then Data), as Kubo writes it
    blockWriteConcurrency: LEAF_WRITES_IN_FLIGHT, // leaves hashed and written in batches of this many
    fileImportConcurrency: 1, // one file per import
    wrapWithDirectory: false, // the root is the file itself
    // Directory sharding (HAMT): no directory is ever built here; the profile's values all the same.
    shardSplitThresholdBytes: 262_144,
    shardSplitStrategy: 'block-bytes',
    shardFanoutBits: 8,
  };
}

/**
 * Imports a byte stream as a UnixFS file with ipfs-unixfs-importer (`importerOptions()`) and writes its
 * blocks to `sink` as they are built, so memory stays flat (at most LEAF_WRITES_IN_FLIGHT chunks). The root
 * CID is known only when the stream ends; a stream or a write that fails leaves only unreferenced blocks
 * behind, never a root. The pieces of `source` must not be reused once yielded: a chunk that lies within
 * one piece is written as a view of it.
 *
 * This replaced a hand-written builder kept first for hashing leaves on worker threads (dropped) and then
 * for its sliding window of 10 leaf writes. bench/unixfs-import.ts (which keeps that builder) did not show
 * the window to matter, on a 2-core machine under other load (best of 3 per run, FsBlockStore on disk):
 * 1 GiB in 4.25 / 13.95 / 9.84 s with the importer against 4.89 / 10.59 / 8.48 s by hand, the order
 * flipping between runs and each builder's own runs spreading 2–3×; CPU about 10% higher (4.7–5.1 s
 * against 4.0–4.6 s). Bodies of 4 KiB: the importer 291 bodies/s (CPU 3.8 s for 3000) against 264 (CPU
 * 6.0 s), the old builder zero-filling a 1 MiB chunk per body.
 * test/interop/kubo-cid.test.ts proves the CIDs equal to Kubo's.
 */
export async function importBody(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  sink: BlockSink,
  options: AbortOptions & { shape?: DagShape } = {},
): Promise<ImportedBody> {
  const { signal } = options;
  throwIfAborted(signal);
  const putOptions = signal === undefined ? {} : { signal };
  let size = 0;
  const content = async function* (): AsyncGenerator<Uint8Array> {
    for await (const piece of source) {
      throwIfAborted(signal);
      size += piece.byteLength;
      yield piece;
    }
  };
  const blockstore = {
    put: async (cid: CID, bytes: Uint8Array): Promise<CID> => {
      await sink.put(cid, bytes, putOptions);
      return cid;
    },
  };
  let root: CID | undefined;
  for await (const entry of importer([{ content: content() }], blockstore, importerOptions(options.shape))) root = entry.cid;
  if (root === undefined) throw new Error('ipfs-unixfs-importer gave no root for a file');
  return { cid: root, size };
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
