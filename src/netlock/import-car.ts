/**
 * Import of a netlock CAR (design §4), staged and verified before anything reaches the target store; the
 * CAR may come from `exportCar` or from Kubo's `ipfs dag export ROOT`.
 */
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { CID } from 'multiformats/cid';
import { BlockMissingError, ERROR_CODES, InvalidNetlockError, OracleError, throwIfAborted } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';
import { RAW_CODE, verifyBlock, verifyingSource } from '../protocol/blocks.ts';
import type { AbortOptions, BlockSink, BlockSource } from '../protocol/blocks.ts';
import type { Block, BlockStore } from '../store/block-store.ts';
import { FsBlockStore } from '../store/fs-block-store.ts';
import { TieredBlockStore } from '../store/tiered-block-store.ts';
import { CarStreamReader } from './car-codec.ts';
import { carLinks, withContext } from './car-links.ts';
import { NetlockReader } from './dag.ts';
import { StagedBlocks } from './staged-blocks.ts';
import { verifyNetlock } from './verify.ts';
import type { VerifyReport } from './verify.ts';

/** Read size of the CAR file: one leaf-sized chunk. */
const READ_CHUNK_BYTES = 1024 * 1024;

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
    const unreferenced = staged.size - order.length;
    await commit(order, staged, verified, sink, options);
    if (isPinning(sink)) await sink.pin(root, { recursive: true, ...(options.signal === undefined ? {} : { signal: options.signal }) });
    return { root, report, blocks: order.length, unreferenced, bytes: carBytes };
  } finally {
    await handle?.close().catch(() => {});
    if (spoolDir !== undefined) await rm(spoolDir, { recursive: true, force: true });
  }
}

/**
 * The blocks reachable from `root` in depth-first pre-order, as ids of `staged`; raw blocks (leaves) are not
 * read. Ids, not CIDs or strings, and blocks reached marked in the staging index, not in a set: a 100,000-entry
 * netlock has 200,000 blocks, and the import held 600 MB when they were CIDs with their strings as the set of
 * seen blocks (issue #15).
 */
async function reachable(root: CID, source: BlockSource, staged: StagedBlocks, name: string, options: AbortOptions): Promise<number[]> {
  const order: number[] = [];
  /** Blocks to visit: by id, or by CID with -1 when the CAR lacks it (taken off, it fails the import, naming its entry). */
  const stack: Array<{ id: number; cid?: CID; label: string }> = [];
  const push = (cid: CID, label: string): void => {
    const id = staged.idOf(cid);
    if (id === -1) stack.push({ id, cid, label });
    else if (staged.reach(id)) stack.push({ id, label });
  };
  push(root, 'netlock root');
  while (stack.length > 0) {
    throwIfAborted(options.signal);
    const { id, cid: lacking, label } = stack.pop()!;
    if (lacking !== undefined) throw new BlockMissingError(lacking.toString(), `CAR ${name} lacks block ${lacking} of ${label}; nothing imported`);
    order.push(id);
    const remembered = staged.takeChildren(id);
    if (remembered !== undefined) {
      for (let i = remembered.length - 1; i >= 0; i--) if (staged.reach(remembered[i]!)) stack.push({ id: remembered[i]!, label });
      continue;
    }
    const cid = staged.cidOf(id);
    if (cid.code === RAW_CODE) continue;
    const links = carLinks(cid, await source.get(cid, options), '');
    for (let i = links.length - 1; i >= 0; i--) push(links[i]!.cid, links[i]!.label === '' ? label : links[i]!.label);
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

/** Writes `order` (ids of `staged`, root last) from the verified staging source into `sink`, each released once written. */
async function commit(order: readonly number[], staged: StagedBlocks, source: BlockSource, sink: BlockSink, options: AbortOptions): Promise<void> {
  const bulk = (sink as Partial<BlockStore>).putMany;
  if (typeof bulk === 'function' && !(sink instanceof FsBlockStore)) {
    const blocks = async function* (): AsyncGenerator<Block> {
      for (const id of order) {
        const cid = staged.cidOf(id);
        yield { cid, bytes: await source.get(cid, options) };
        staged.release(id);
      }
    };
    await bulk.call(sink, blocks(), options);
    return;
  }
  // One file per block: write them in parallel (bounded), then the root alone, last.
  const last = order.length - 1;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < last) {
      const id = order[next++]!;
      const cid = staged.cidOf(id);
      await sink.put(cid, await source.get(cid, options), options);
      staged.release(id);
    }
  };
  await Promise.all(Array.from({ length: Math.min(COMMIT_CONCURRENCY, last) }, worker));
  if (last >= 0) {
    const root = staged.cidOf(order[last]!);
    await sink.put(root, await source.get(root, options), options);
  }
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
