/**
 * A netlock as one CARv1 file (design §4): the netlock root, its index pages, every record and every body
 * block, so one file carries a build's whole network into an air-gapped machine or a Cartesi Machine image.
 * The file is an ordinary CARv1 (https://ipld.io/specs/transport/car/carv1/) whose only root is the netlock
 * root: Kubo's `ipfs dag import` reads it, and `importCar` reads what Kubo's `ipfs dag export ROOT` writes.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rename, rm, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { AbortedError, BlockCorruptError, BlockMissingError, ERROR_CODES, InvalidNetlockError, OracleError, throwIfAborted } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';
import { DAG_CBOR_CODE, RAW_CODE, verifyBlock, verifyingSource } from '../protocol/blocks.ts';
import type { AbortOptions, BlockSink, BlockSource } from '../protocol/blocks.ts';
import { NetlockReader } from './dag.ts';
import { blockLinks, cidsIn, WALKABLE_CODECS } from '../store/block-links.ts';
import type { Block, BlockStore } from '../store/block-store.ts';
import { CarStreamReader, carHeader, carSectionHead } from './car-codec.ts';
import { FsBlockStore } from '../store/fs-block-store.ts';
import { TieredBlockStore } from '../store/tiered-block-store.ts';
import { keyFromId, verifyNetlock } from './verify.ts';
import type { VerifyReport } from './verify.ts';

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
      if (this.#out.destroyed || this.#out.writableEnded) throw new AbortedError('CAR output stream closed during the export');
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
    const onClose = (): void => done(new AbortedError('CAR output stream closed during the export'));
    out.on('drain', onDrain);
    out.on('error', onError);
    out.on('close', onClose);
  });
}

export interface ImportCarOptions extends AbortOptions {
  /** Accept only records signed by these oracle keys. @default the keys the netlock root names */
  trusted?: readonly Uint8Array[];
  /**
   * Where a CAR given as a byte stream is spooled while it is verified (a CAR file is read in place).
   * @default the target's data directory for the embedded store, else os.tmpdir()
   */
  stagingDir?: string;
  /** How errors name a CAR given as a stream. @default 'stream' */
  name?: string;
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

/** Parallel writes of the commit into the embedded store (the root is always written last, alone). */
const COMMIT_CONCURRENCY = 16;

/**
 * Reads a CARv1 (a path or a byte stream) and imports the netlock it carries into `sink`, all or nothing.
 * Two passes over the file, nothing written to `sink` before the second:
 *
 * 1. stream the CAR: the header must name exactly one root; every block is hashed against its CID and its
 *    place in the file noted (a stream is spooled to a temporary file first); memory holds one block and
 *    the index (CID → offset);
 * 2. check that the root decodes as a netlock root and verify the whole netlock on the indexed blocks
 *    (`verifyNetlock`: every page, record signature, record-to-key match, body block and body digest);
 * 3. only then copy the blocks the netlock reaches into `sink` (each hashed again as it is read back, so a
 *    file changed since pass 1 fails), children before parents and the root last — bulk `putMany` where
 *    the store has one (Kubo `dag/import`) — and pin the root where the store pins (Kubo).
 *
 * A wrong block, a truncated file, a header with zero or several roots, or a netlock that does not verify
 * throws (BlockCorruptError, InvalidNetlockError, CarImportError with the report…) before step 3, so the
 * target is untouched.
 */
export async function importCar(input: string | AsyncIterable<Uint8Array>, sink: BlockSink, options: ImportCarOptions = {}): Promise<ImportCarResult> {
  throwIfAborted(options.signal);
  const name = typeof input === 'string' ? input : (options.name ?? 'stream');
  let spoolDir: string | undefined;
  let handle: FileHandle | undefined;
  try {
    let source: AsyncIterable<Uint8Array>;
    if (typeof input === 'string') {
      try {
        handle = await open(input, 'r');
      } catch (cause) {
        throw new InvalidNetlockError(`Cannot read CAR ${input}: ${(cause as Error).message}`, { cause });
      }
      source = fileChunks(handle, input);
    } else {
      const parent = options.stagingDir ?? defaultStagingParent(sink);
      await mkdir(parent, { recursive: true });
      spoolDir = await mkdtemp(join(parent, '.car-import-'));
      handle = await open(join(spoolDir, 'spool.car'), 'w+');
      source = spooled(input, handle);
    }
    const reader = new CarStreamReader(source, name, options.signal === undefined ? {} : { signal: options.signal });
    const { roots } = await reader.header();
    if (roots.length !== 1) {
      throw new InvalidNetlockError(`CAR ${name} has ${roots.length} roots (${roots.map(String).join(', ') || 'none'}); expected exactly one, the netlock root`);
    }
    const root = roots[0]!;
    const staged = new StagedBlocks(handle, name);
    for await (const { cid, bytes, offset, blockOffset } of reader.sections()) {
      try {
        await verifyBlock(cid, bytes);
      } catch (err) {
        throw withContext(err, `CAR ${name}: block ${cid} at byte ${offset}`);
      }
      staged.add(cid, blockOffset, bytes.byteLength);
    }
    const carBytes = reader.position;
    if (!staged.has(root)) throw new InvalidNetlockError(`CAR ${name} does not contain its root block ${root}`);
    const verified = verifyingSource(staged);
    try {
      await new NetlockReader(root, verified).rootValue(options);
    } catch (err) {
      if (err instanceof InvalidNetlockError) throw new InvalidNetlockError(`CAR ${name}: its root ${root} is not a netlock root: ${err.message}`, { cause: err });
      throw err;
    }
    const report = await verifyNetlock(root, staged, options.trusted, options);
    if (report.failures.length > 0) {
      const first = report.failures[0]!;
      const code = (ERROR_CODES as readonly string[]).includes(first.code) ? (first.code as ErrorCode) : 'ORACLE_ERR_INVALID_NETLOCK';
      const shown = report.failures.slice(0, 5).map((f) => `${f.entry}: ${f.code}: ${f.message}`).join('; ');
      const more = report.failures.length > 5 ? `; and ${report.failures.length - 5} more` : '';
      throw new CarImportError(code, `CAR ${name}: netlock ${root} does not verify (${report.failures.length} failure(s)): ${shown}${more}; nothing imported`, report);
    }
    // Every block the netlock links to, as `exportCar` would write them (this also covers links that
    // verification does not read, such as a record's attestation document).
    const reached = await reachable(root, verified, staged, name, options);
    const order = reached.reverse(); // pre-order reversed: the root last
    await commit(order, verified, sink, options);
    if (isPinning(sink)) await sink.pin(root, { recursive: true, ...(options.signal === undefined ? {} : { signal: options.signal }) });
    return { root, report, blocks: order.length, unreferenced: staged.size - order.length, bytes: carBytes };
  } finally {
    await handle?.close().catch(() => {});
    if (spoolDir !== undefined) await rm(spoolDir, { recursive: true, force: true });
  }
}

/**
 * The blocks of the CAR by CID, read back from the file by offset (one `pread` each). The links of every
 * block read are remembered, so that the walk for the commit need not read the blocks verification read.
 */
class StagedBlocks implements BlockSource {
  readonly #handle: FileHandle;
  readonly #name: string;
  readonly #index = new Map<string, { offset: number; length: number }>();
  readonly #links = new Map<string, Link[]>();

  constructor(handle: FileHandle, name: string) {
    this.#handle = handle;
    this.#name = name;
  }

  add(cid: CID, offset: number, length: number): void {
    const key = cid.toString();
    if (!this.#index.has(key)) this.#index.set(key, { offset, length });
  }

  has(cid: CID): boolean {
    return this.#index.has(cid.toString());
  }

  get size(): number {
    return this.#index.size;
  }

  async get(cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    throwIfAborted(options?.signal);
    const at = this.#index.get(cid.toString());
    if (at === undefined) throw new BlockMissingError(cid.toString(), `Block ${cid} is not in CAR ${this.#name}`);
    const bytes = new Uint8Array(at.length);
    let done = 0;
    while (done < at.length) {
      const { bytesRead } = await this.#handle.read(bytes, done, at.length - done, at.offset + done);
      if (bytesRead === 0) throw new InvalidNetlockError(`CAR ${this.#name} shrank while it was being imported (block ${cid})`);
      done += bytesRead;
    }
    if (cid.code !== RAW_CODE && !this.#links.has(cid.toString())) {
      try {
        // Labels are filled in by the walk (a leaf page labels its records with their entries).
        this.#links.set(cid.toString(), linksOf(cid, bytes, ''));
      } catch {
        // Malformed: the caller's verification or decoding reports it.
      }
    }
    return bytes;
  }

  /** The links of a block read before, or undefined. */
  linksRead(cid: CID): Link[] | undefined {
    return this.#links.get(cid.toString());
  }
}

/** The blocks reachable from `root` in depth-first pre-order; raw blocks (leaves) are not read. */
async function reachable(root: CID, source: BlockSource, staged: StagedBlocks, name: string, options: AbortOptions): Promise<CID[]> {
  const order: CID[] = [];
  const seen = new Set<string>([root.toString()]);
  const stack: Array<{ cid: CID; label: string }> = [{ cid: root, label: 'netlock root' }];
  while (stack.length > 0) {
    throwIfAborted(options.signal);
    const { cid, label } = stack.pop()!;
    if (!staged.has(cid)) throw new BlockMissingError(cid.toString(), `CAR ${name} lacks block ${cid} of ${label}; nothing imported`);
    order.push(cid);
    if (cid.code === RAW_CODE) continue;
    const children = staged.linksRead(cid) ?? linksOf(cid, await source.get(cid, options), '');
    for (let i = children.length - 1; i >= 0; i--) {
      const c = children[i]!;
      const key = c.cid.toString();
      if (seen.has(key)) continue;
      seen.add(key);
      stack.push({ cid: c.cid, label: c.label === '' ? label : c.label });
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

/** Writes `order` (root last) from the verified staging source into `sink`. */
async function commit(order: readonly CID[], source: BlockSource, sink: BlockSink, options: AbortOptions): Promise<void> {
  const bulk = (sink as Partial<BlockStore>).putMany;
  if (typeof bulk === 'function' && !(sink instanceof FsBlockStore)) {
    const blocks = async function* (): AsyncGenerator<Block> {
      for (const cid of order) yield { cid, bytes: await source.get(cid, options) };
    };
    await bulk.call(sink, blocks(), options);
    return;
  }
  // One file per block: write them in parallel (bounded), then the root alone, last.
  const rest = order.slice(0, -1);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < rest.length) {
      const cid = rest[next++]!;
      await sink.put(cid, await source.get(cid, options), options);
    }
  };
  await Promise.all(Array.from({ length: Math.min(COMMIT_CONCURRENCY, rest.length) }, worker));
  const root = order.at(-1);
  if (root !== undefined) await sink.put(root, await source.get(root, options), options);
}

/** A file's bytes in READ_CHUNK_BYTES chunks, from its start; read errors name the CAR. */
async function* fileChunks(handle: FileHandle, path: string): AsyncGenerator<Uint8Array> {
  for (let position = 0; ; ) {
    const buffer = new Uint8Array(READ_CHUNK_BYTES);
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(buffer, 0, buffer.byteLength, position));
    } catch (cause) {
      throw new InvalidNetlockError(`Cannot read CAR ${path}: ${(cause as Error).message}`, { cause });
    }
    if (bytesRead === 0) return;
    position += bytesRead;
    yield buffer.subarray(0, bytesRead);
  }
}

/** Passes a stream's chunks through while appending them to `handle`, so its offsets are the CAR's. */
async function* spooled(source: AsyncIterable<Uint8Array>, handle: FileHandle): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    let done = 0;
    while (done < chunk.byteLength) done += (await handle.write(chunk, done, chunk.byteLength - done)).bytesWritten;
    yield chunk;
  }
}
