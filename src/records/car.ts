/**
 * A netlock as one CARv1 file (design §4): the netlock root, its index pages, every record and every body
 * block, so one file carries a build's whole network into an air-gapped machine or a Cartesi Machine image.
 * The file is an ordinary CARv1 (https://ipld.io/specs/transport/car/carv1/) whose only root is the netlock
 * root: Kubo's `ipfs dag import` reads it, and `importCar` reads what Kubo's `ipfs dag export ROOT` writes.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, rename, rm, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { BlockCorruptError, BlockMissingError, ERROR_CODES, InvalidNetlockError, OracleError, throwIfAborted } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';
import { DAG_CBOR_CODE, RAW_CODE, verifyBlock, verifyingSource } from '../protocol/blocks.ts';
import type { AbortOptions, BlockSink, BlockSource } from '../protocol/blocks.ts';
import { NetlockReader } from '../protocol/netlock.ts';
import { blockLinks, cidsIn, WALKABLE_CODECS } from '../store/block-links.ts';
import type { Block, BlockStore } from '../store/block-store.ts';
import { CarStreamReader, carHeader, carSectionHead } from '../store/car-codec.ts';
import { FsBlockStore } from '../store/fs-block-store.ts';
import { TieredBlockStore } from '../store/tiered-block-store.ts';
import { keyFromId, verifyNetlock } from './verify-netlock.ts';
import type { VerifyReport } from './verify-netlock.ts';

/** Blocks read ahead of the one being written (bounded: at most this many blocks of ≤ 2 MiB in memory). */
export const EXPORT_PREFETCH_BLOCKS = 8;
/** Small sections are gathered into writes of about this size. */
const WRITE_BATCH_BYTES = 1024 * 1024;
/** Read size of the CAR file: one leaf-sized chunk. */
const READ_CHUNK_BYTES = 1024 * 1024;

export interface ExportCarOptions extends AbortOptions {
  /** Blocks fetched ahead of the one being written. @default EXPORT_PREFETCH_BLOCKS */
  prefetch?: number;
}

export interface ExportCarResult {
  root: CID;
  /** Netlock entries walked. */
  entries: number;
  /** Blocks written (each once). */
  blocks: number;
  /** Bytes of the CAR file. */
  bytes: number;
}

/**
 * Writes the netlock `root` and every block it reaches as a CARv1 to `out`: a path (written to a temporary
 * file, fsynced and renamed, so no partial CAR is ever left under the name) or a Writable (written with
 * backpressure and not ended: the caller owns it). The DAG is walked depth-first like Kubo's `dag export`
 * (root, index pages, records, UnixFS body DAGs), each block once, every block verified against its CID;
 * memory holds the CIDs seen and at most `prefetch` blocks. A missing or corrupt block fails the export with
 * an error naming the netlock entry it belongs to.
 */
export async function exportCar(root: CID, source: BlockSource, out: Writable | string, options: ExportCarOptions = {}): Promise<ExportCarResult> {
  throwIfAborted(options.signal);
  const verified = verifyingSource(source);
  // Fails early, and clearly, when `root` is not a netlock.
  await new NetlockReader(root, verified).rootValue(options);
  const writer = typeof out === 'string' ? await FileWriter.create(out) : new StreamWriter(out);
  const result: ExportCarResult = { root, entries: 0, blocks: 0, bytes: 0 };
  try {
    const header = carHeader([root]);
    await writer.write([header]);
    result.bytes += header.byteLength;
    const prefetch = Math.max(1, options.prefetch ?? EXPORT_PREFETCH_BLOCKS);
    const seen = new Set<string>([root.toString()]);
    const stack: PendingBlock[] = [{ cid: root, label: 'netlock root', bytes: undefined }];
    const fetchBlock = async (p: PendingBlock): Promise<Uint8Array> => {
      try {
        return await verified.get(p.cid, options);
      } catch (err) {
        throw withContext(err, `Cannot export ${p.label}`);
      }
    };
    while (stack.length > 0) {
      throwIfAborted(options.signal);
      for (let i = stack.length - 1; i >= Math.max(0, stack.length - prefetch); i--) {
        const p = stack[i]!;
        if (p.bytes === undefined) {
          p.bytes = fetchBlock(p);
          p.bytes.catch(() => {}); // surfaced when awaited in order
        }
      }
      const item = stack.pop()!;
      const bytes = await item.bytes!;
      const head = carSectionHead(item.cid, bytes.byteLength);
      await writer.write([head, bytes]);
      result.bytes += head.byteLength + bytes.byteLength;
      result.blocks++;
      const children = linksOf(item.cid, bytes, item.label);
      if (item.label === 'netlock root') for (const c of children) c.label = 'netlock index';
      result.entries += children.filter((c) => c.entry).length;
      // Reverse, so that the first link is popped (written) first: depth-first pre-order.
      for (let i = children.length - 1; i >= 0; i--) {
        const c = children[i]!;
        const key = c.cid.toString();
        if (seen.has(key)) continue;
        seen.add(key);
        stack.push({ cid: c.cid, label: c.label, bytes: undefined });
      }
    }
    await writer.finish();
  } catch (err) {
    await writer.abort();
    throw err;
  }
  return result;
}

interface PendingBlock {
  cid: CID;
  /** What the block belongs to, for error messages: `netlock root`, `netlock index`, or `GET https://…`. */
  label: string;
  bytes: Promise<Uint8Array> | undefined;
}

interface Link {
  cid: CID;
  label: string;
  /** The link is a netlock entry's record (from a leaf index page). */
  entry: boolean;
}

/** The links of a block in order (`blockLinks`), labelled with the netlock entry they belong to. */
function linksOf(cid: CID, bytes: Uint8Array, label: string): Link[] {
  if (!WALKABLE_CODECS.has(cid.code)) {
    throw new InvalidNetlockError(`Cannot export ${label}: block ${cid} has codec 0x${cid.code.toString(16)}, which is not raw, dag-pb or dag-cbor`);
  }
  if (cid.code === DAG_CBOR_CODE) {
    let value: unknown;
    try {
      value = dagCbor.decode(bytes);
    } catch (cause) {
      throw new InvalidNetlockError(`Cannot export ${label}: block ${cid} is not valid DAG-CBOR`, { cause });
    }
    const page = value as { leaf?: unknown; entries?: unknown } | null;
    if (page !== null && typeof page === 'object' && page.leaf === true && Array.isArray(page.entries)) {
      // A leaf index page: label each record (and, below it, its body) with the entry's request.
      const links: Link[] = [];
      for (const e of page.entries as unknown[]) {
        const [key, record] = Array.isArray(e) ? (e as unknown[]) : [];
        const recordCid = CID.asCID(record);
        if (recordCid === null) continue;
        links.push({ cid: recordCid, label: typeof key === 'string' ? entryName(key) : label, entry: true });
      }
      return links;
    }
    return cidsIn(value).map((c) => ({ cid: c, label, entry: false }));
  }
  try {
    return blockLinks(cid, bytes).map((c) => ({ cid: c, label, entry: false }));
  } catch (cause) {
    throw new BlockCorruptError(cid.toString(), `Cannot export ${label}: block ${cid} is not valid dag-pb (${(cause as Error).message})`);
  }
}

function entryName(keyId: string): string {
  try {
    const k = keyFromId(keyId);
    return `${k.method} ${k.url}`;
  } catch {
    return `entry ${JSON.stringify(keyId.slice(0, 100))}`;
  }
}

/** Re-throws a block error with the context of what it belonged to, keeping its class and code. */
function withContext(err: unknown, context: string): unknown {
  if (err instanceof BlockMissingError) return new BlockMissingError(err.cid, `${context}: ${err.message}`);
  if (err instanceof BlockCorruptError) return new BlockCorruptError(err.cid, `${context}: ${err.message}`);
  return err;
}

interface ByteWriter {
  write(parts: readonly Uint8Array[]): Promise<void>;
  finish(): Promise<void>;
  abort(): Promise<void>;
}

/** Writes to `<path>.<random>.tmp`, then fsync + rename: the CAR appears whole or not at all. */
class FileWriter implements ByteWriter {
  readonly #path: string;
  readonly #tmp: string;
  readonly #handle: FileHandle;
  #batch: Uint8Array[] = [];
  #batchBytes = 0;

  private constructor(path: string, tmp: string, handle: FileHandle) {
    this.#path = path;
    this.#tmp = tmp;
    this.#handle = handle;
  }

  static async create(path: string): Promise<FileWriter> {
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    return new FileWriter(path, tmp, await open(tmp, 'w'));
  }

  async write(parts: readonly Uint8Array[]): Promise<void> {
    for (const p of parts) {
      this.#batch.push(p);
      this.#batchBytes += p.byteLength;
    }
    if (this.#batchBytes >= WRITE_BATCH_BYTES) await this.#flush();
  }

  async #flush(): Promise<void> {
    const batch = this.#batch;
    this.#batch = [];
    this.#batchBytes = 0;
    // writev may write less than asked; loop over what is left.
    let pending = batch;
    while (pending.length > 0) {
      const { bytesWritten } = await this.#handle.writev(pending);
      let left = bytesWritten;
      const rest: Uint8Array[] = [];
      for (const p of pending) {
        if (left >= p.byteLength) left -= p.byteLength;
        else {
          rest.push(p.subarray(left));
          left = 0;
        }
      }
      pending = rest;
    }
  }

  async finish(): Promise<void> {
    await this.#flush();
    await this.#handle.sync();
    await this.#handle.close();
    await rename(this.#tmp, this.#path);
  }

  async abort(): Promise<void> {
    await this.#handle.close().catch(() => {});
    await unlink(this.#tmp).catch(() => {});
  }
}

/** Writes to a caller's stream, waiting for `drain` when it is full; a stream error fails the export. */
class StreamWriter implements ByteWriter {
  readonly #out: Writable;

  constructor(out: Writable) {
    this.#out = out;
  }

  async write(parts: readonly Uint8Array[]): Promise<void> {
    for (const p of parts) {
      if (this.#out.destroyed || this.#out.writableEnded) throw new OracleError('ORACLE_ERR_STORE', 'CAR output stream closed during the export');
      if (!this.#out.write(p)) await drained(this.#out);
    }
  }

  finish(): Promise<void> {
    return Promise.resolve();
  }

  abort(): Promise<void> {
    return Promise.resolve();
  }
}

function drained(out: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (err?: unknown): void => {
      out.off('drain', onDrain);
      out.off('error', onError);
      out.off('close', onClose);
      if (err === undefined) resolve();
      else reject(err instanceof Error ? err : new Error(String(err)));
    };
    const onDrain = (): void => done();
    const onError = (err: Error): void => done(err);
    const onClose = (): void => done(new OracleError('ORACLE_ERR_STORE', 'CAR output stream closed during the export'));
    out.on('drain', onDrain);
    out.on('error', onError);
    out.on('close', onClose);
  });
}

export interface ImportCarOptions extends AbortOptions {
  /** Accept only records signed by these oracle keys. @default the keys the netlock root names */
  trusted?: readonly Uint8Array[];
  /**
   * Directory under which the blocks are staged until everything verified.
   * @default the target's data directory for the embedded store (so the commit is a rename), else os.tmpdir()
   */
  stagingDir?: string;
}

export interface ImportCarResult {
  root: CID;
  /** The verification of the staged netlock (no failures, or importCar would have thrown). */
  report: VerifyReport;
  /** Blocks of the netlock written to the target. */
  blocks: number;
  /** Blocks in the CAR that the netlock does not reach: verified, but not imported. */
  unreferenced: number;
  /** Size of the CAR. */
  bytes: number;
}

/** A CAR that read and hashed fine but whose netlock does not verify; `report` lists every failure. */
export class CarImportError extends OracleError {
  readonly report: VerifyReport;

  constructor(code: ErrorCode, message: string, report: VerifyReport) {
    super(code, message);
    this.name = 'CarImportError';
    this.report = report;
  }
}

/**
 * Reads a CARv1 (a path or a byte stream) and imports the netlock it carries into `sink`, all or nothing:
 *
 * 1. stream the CAR: the header must name exactly one root; every block is hashed against its CID and
 *    staged in a temporary embedded store (memory stays at one block);
 * 2. check the root decodes as a netlock root and verify the whole netlock on the staged blocks
 *    (`verifyNetlock`: every page, record signature, record-to-key match, body block and body digest);
 * 3. only then copy the blocks the netlock reaches into `sink`, children before parents and the root last
 *    (bulk `putMany` where the store has one; a rename into an embedded store), and pin the root where the
 *    store pins (Kubo).
 *
 * A wrong block, a truncated file, a header with zero or several roots, or a netlock that does not verify
 * throws (BlockCorruptError, InvalidNetlockError, CarImportError with the report…) before step 3, so the
 * target is untouched. The staging directory is removed in every case.
 */
export async function importCar(input: string | AsyncIterable<Uint8Array>, sink: BlockSink, options: ImportCarOptions = {}): Promise<ImportCarResult> {
  throwIfAborted(options.signal);
  const name = typeof input === 'string' ? input : 'stream';
  const stagingParent = options.stagingDir ?? defaultStagingParent(sink);
  await mkdir(stagingParent, { recursive: true });
  const stagingDir = await mkdtemp(join(stagingParent, '.car-import-'));
  let stream: ReturnType<typeof createReadStream> | undefined;
  try {
    const staging = new FsBlockStore(stagingDir);
    let source: AsyncIterable<Uint8Array>;
    if (typeof input === 'string') {
      stream = createReadStream(input, { highWaterMark: READ_CHUNK_BYTES });
      source = readable(stream, input);
    } else {
      source = input;
    }
    const reader = new CarStreamReader(source, name, options.signal === undefined ? {} : { signal: options.signal });
    const { roots } = await reader.header();
    if (roots.length !== 1) {
      throw new InvalidNetlockError(`CAR ${name} has ${roots.length} roots (${roots.map(String).join(', ') || 'none'}); expected exactly one, the netlock root`);
    }
    const root = roots[0]!;
    const staged = new Set<string>();
    for await (const { cid, bytes, offset } of reader.sections()) {
      try {
        await verifyBlock(cid, bytes);
      } catch (err) {
        throw withContext(err, `CAR ${name}: block ${cid} at byte ${offset}`);
      }
      const key = cid.toString();
      if (staged.has(key)) continue;
      staged.add(key);
      await staging.put(cid, bytes, options);
    }
    const carBytes = reader.position;
    if (!staged.has(root.toString())) throw new InvalidNetlockError(`CAR ${name} does not contain its root block ${root}`);
    try {
      await new NetlockReader(root, verifyingSource(staging)).rootValue(options);
    } catch (err) {
      if (err instanceof InvalidNetlockError) throw new InvalidNetlockError(`CAR ${name}: its root ${root} is not a netlock root: ${err.message}`, { cause: err });
      throw err;
    }

    const report = await verifyNetlock(root, staging, options.trusted, options);
    if (report.failures.length > 0) {
      const first = report.failures[0]!;
      const code = (ERROR_CODES as readonly string[]).includes(first.code) ? (first.code as ErrorCode) : 'ORACLE_ERR_INVALID_NETLOCK';
      const shown = report.failures.slice(0, 5).map((f) => `${f.entry}: ${f.code}: ${f.message}`).join('; ');
      const more = report.failures.length > 5 ? `; and ${report.failures.length - 5} more` : '';
      throw new CarImportError(code, `CAR ${name}: netlock ${root} does not verify (${report.failures.length} failure(s)): ${shown}${more}; nothing imported`, report);
    }
    // Every block the netlock links to, as `exportCar` would write them (this also covers links that
    // verification does not read, such as a record's attestation document).
    const reached = await reachable(root, staging, staged, name, options);

    // Commit: children before parents, the root last, so an interrupted commit never leaves a root whose
    // DAG is incomplete.
    const order = reached.reverse(); // pre-order reversed: the root last
    await commit(order, staging, sink, options);
    if (isPinning(sink)) await sink.pin(root, { recursive: true, ...(options.signal === undefined ? {} : { signal: options.signal }) });
    return { root, report, blocks: order.length, unreferenced: staged.size - order.length, bytes: carBytes };
  } finally {
    stream?.destroy();
    await rm(stagingDir, { recursive: true, force: true });
  }
}

/** The blocks reachable from `root` in depth-first pre-order; raw blocks (leaves) are not read. */
async function reachable(root: CID, staging: FsBlockStore, staged: ReadonlySet<string>, name: string, options: AbortOptions): Promise<CID[]> {
  const order: CID[] = [];
  const seen = new Set<string>([root.toString()]);
  const stack: Array<{ cid: CID; label: string }> = [{ cid: root, label: 'netlock root' }];
  while (stack.length > 0) {
    throwIfAborted(options.signal);
    const { cid, label } = stack.pop()!;
    if (!staged.has(cid.toString())) throw new BlockMissingError(cid.toString(), `CAR ${name} lacks block ${cid} of ${label}; nothing imported`);
    order.push(cid);
    if (cid.code === RAW_CODE) continue;
    const children = linksOf(cid, await staging.get(cid, options), label);
    for (let i = children.length - 1; i >= 0; i--) {
      const c = children[i]!;
      const key = c.cid.toString();
      if (seen.has(key)) continue;
      seen.add(key);
      stack.push({ cid: c.cid, label: c.label });
    }
  }
  return order;
}

function defaultStagingParent(sink: BlockSink): string {
  if (sink instanceof FsBlockStore) return dirname(sink.dir);
  if (sink instanceof TieredBlockStore) return dirname(sink.cache.dir);
  return tmpdir();
}

function isPinning(sink: BlockSink): sink is BlockSink & Pick<BlockStore, 'pin'> {
  return typeof (sink as Partial<BlockStore>).pin === 'function';
}

async function commit(order: readonly CID[], staging: FsBlockStore, sink: BlockSink, options: AbortOptions): Promise<void> {
  if (sink instanceof FsBlockStore) {
    // Same file system (the default staging place): a rename per block, no copy.
    const dirs = new Set<string>();
    for (const cid of order) {
      throwIfAborted(options.signal);
      const to = sink.pathOf(cid);
      if (await sink.has(cid)) continue;
      const dir = dirname(to);
      if (!dirs.has(dir)) {
        await mkdir(dir, { recursive: true });
        dirs.add(dir);
      }
      try {
        await rename(staging.pathOf(cid), to);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
        await sink.put(cid, await staging.get(cid), options);
      }
    }
    return;
  }
  const blocks = async function* (): AsyncGenerator<Block> {
    for (const cid of order) yield { cid, bytes: await staging.get(cid, options) };
  };
  const bulk = (sink as Partial<BlockStore>).putMany;
  if (typeof bulk === 'function') {
    await bulk.call(sink, blocks(), options);
    return;
  }
  for await (const { cid, bytes } of blocks()) await sink.put(cid, bytes, options);
}

/** A file read stream as chunks, its open/read errors as InvalidNetlockError naming the path. */
async function* readable(stream: ReturnType<typeof createReadStream>, path: string): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of stream) yield chunk as Buffer;
  } catch (cause) {
    throw new InvalidNetlockError(`Cannot read CAR ${path}: ${(cause as Error).message}`, { cause });
  }
}
