import * as dagPb from '@ipld/dag-pb';
import { UnixFS } from 'ipfs-unixfs';
import { importer } from 'ipfs-unixfs-importer';
import { fixedSize } from 'ipfs-unixfs-importer/chunker';
import { balanced } from 'ipfs-unixfs-importer/layout';
import type { CID } from 'multiformats/cid';
import { BlockCorruptError, throwIfAborted } from '../errors.ts';
import { DAG_PB_CODE, RAW_CODE } from './blocks.ts';
import type { AbortOptions, BlockSink, BlockSource } from './blocks.ts';

/** IPIP-499 `unixfs-v1-2025`: fixed 1 MiB chunks. */
export const CHUNK_BYTES = 1024 * 1024;
/** IPIP-499 `unixfs-v1-2025`: at most 1024 links per node. */
export const MAX_LINKS_PER_NODE = 1024;

/**
 * Every importer option that affects CIDs is set explicitly (design §2: library defaults drift), so the
 * embedded store and `ipfs add` under Kubo's `unixfs-v1-2025` profile give identical CIDs.
 */
const IMPORT_OPTIONS = {
  profile: 'unixfs-v1-2025',
  cidVersion: 1,
  rawLeaves: true,
  reduceSingleLeafToSelf: true,
  leafType: 'raw',
  fieldOrder: 'links-first',
  wrapWithDirectory: false,
  chunker: fixedSize({ chunkSize: CHUNK_BYTES }),
  layout: balanced({ maxChildrenPerNode: MAX_LINKS_PER_NODE }),
} as const;

export interface ImportedBody {
  cid: CID;
  size: number;
}

/**
 * Imports a byte stream as a UnixFS file and writes its blocks to `sink` as they are built (so memory
 * stays flat). The root CID is known only when the stream ends; a stream that throws leaves only
 * unreferenced blocks behind, never a root.
 */
export async function importBody(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  sink: BlockSink,
  options: AbortOptions = {},
): Promise<ImportedBody> {
  throwIfAborted(options.signal);
  const blockstore = {
    put: async (cid: CID, bytes: Uint8Array): Promise<CID> => {
      await sink.put(cid, bytes, options);
      return cid;
    },
  };
  // The importer's `size` is the DAG's cumulative size (protobuf included), so count the file bytes here.
  let size = 0;
  const counted = async function* (): AsyncGenerator<Uint8Array> {
    for await (const chunk of source) {
      size += chunk.byteLength;
      yield chunk;
    }
  };
  let result: ImportedBody | undefined;
  for await (const entry of importer([{ content: counted() }], blockstore, { ...IMPORT_OPTIONS })) {
    result = { cid: entry.cid, size };
  }
  if (result === undefined) throw new Error('UnixFS importer produced no root');
  return result;
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
