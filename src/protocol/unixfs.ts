import { exporter } from 'ipfs-unixfs-exporter';
import { importer } from 'ipfs-unixfs-importer';
import { fixedSize } from 'ipfs-unixfs-importer/chunker';
import { balanced } from 'ipfs-unixfs-importer/layout';
import type { CID } from 'multiformats/cid';
import { throwIfAborted } from '../errors.ts';
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
  let result: ImportedBody | undefined;
  for await (const entry of importer([{ content: source }], blockstore, { ...IMPORT_OPTIONS })) {
    result = { cid: entry.cid, size: Number(entry.size) };
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

/**
 * Streams the bytes of the UnixFS file `cid` (or a range of it) from `source`. The source should verify
 * blocks (`verifyingSource`); this walks the DAG and fetches only the leaves the range needs.
 */
export async function* readBody(
  cid: CID,
  source: BlockSource,
  range: ReadRange & AbortOptions = {},
): AsyncGenerator<Uint8Array> {
  const blockstore = {
    // The exporter expects the interface-blockstore shape, whose get yields chunks.
    async *get(c: CID, opts?: AbortOptions): AsyncGenerator<Uint8Array> {
      yield await source.get(c, opts);
    },
  };
  const signalOpts = range.signal === undefined ? {} : { signal: range.signal };
  const entry = await exporter(cid, blockstore, signalOpts);
  if (entry.type !== 'file' && entry.type !== 'raw') {
    throw new Error(`CID ${cid} is a UnixFS ${entry.type}, not a file`);
  }
  const contentOptions: { offset?: number; length?: number; signal?: AbortSignal } = { ...signalOpts };
  if (range.offset !== undefined) contentOptions.offset = range.offset;
  if (range.length !== undefined) contentOptions.length = range.length;
  if (range.length === 0) return;
  yield* entry.content(contentOptions);
}
