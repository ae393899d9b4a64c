// Issue #11 measurement: the record path's former hand-written UnixFS builder (kept below, verbatim: a
// sliding window of up to LEAF_WRITES_IN_FLIGHT leaf writes, a balanced DAG built level by level) against
// `importBody`, which is ipfs-unixfs-importer with every option set explicitly (`importerOptions()`), both
// writing into the embedded FsBlockStore (a fresh temporary data directory per run).
//
//   large: one body of --mib MiB (default 1024), given in 192 KiB + 17 pieces as a socket would;
//   small: --count bodies (default 3000) of 4 KiB each, one import per body (the many-small-responses case).
//
// Bodies are generated before the clock starts (pseudo-random, so nothing dedups), runs of the two builders
// are interleaved, and each phase starts after `sync`; the table shows the fastest run and the CPU time
// (user + system, this process) of that run. `--tmp /dev/shm` puts the data directory on a RAM file system:
// the builders' own cost, without the disk (and other load on it).
// `--store null` discards the blocks (CPU only); `--only large|small` runs one phase. Usage:
//   node bin/run-ts.js bench/unixfs-import.ts [--mib 1024] [--count 3000] [--reps 3] [--tmp DIR] [--store fs|null] [--only large|small]
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import * as dagPb from '@ipld/dag-pb';
import { UnixFS } from 'ipfs-unixfs';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { throwIfAborted } from '../src/errors.ts';
import { DAG_PB_CODE, RAW_CODE } from '../src/protocol/blocks.ts';
import type { AbortOptions, BlockSink } from '../src/protocol/blocks.ts';
import { CHUNK_BYTES, LEAF_WRITES_IN_FLIGHT, MAX_LINKS_PER_NODE, importBody } from '../src/protocol/unixfs.ts';
import type { DagShape, ImportedBody } from '../src/protocol/unixfs.ts';
import { FsBlockStore } from '../src/store/fs-block-store.ts';
import { pseudoRandomBytes } from '../test/netlock/netlock-fixture.ts';

const { values } = parseArgs({
  options: { mib: { type: 'string', default: '1024' }, count: { type: 'string', default: '3000' }, reps: { type: 'string', default: '3' }, tmp: { type: 'string', default: tmpdir() }, only: { type: 'string' }, store: { type: 'string', default: 'fs' } },
});
const LARGE_BYTES = Number(values.mib) * 1024 * 1024;
const SMALL_COUNT = Number(values.count);
const SMALL_BYTES = 4096;
const REPS = Math.max(1, Number(values.reps));
const execFileAsync = promisify(execFile);

// ---- The former hand-written builder (src/protocol/unixfs.ts before issue #11), for this comparison only ----

const PROFILE_SHAPE: DagShape = { chunkBytes: CHUNK_BYTES, maxLinks: MAX_LINKS_PER_NODE };

interface StoredLeaf {
  cid: CID;
  size: number;
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
 * (Its stated reason, hashing leaves on worker threads, had already been dropped from the record path.)
 */
async function buildFileDag(
  leaves: AsyncIterable<StoredLeaf> | Iterable<StoredLeaf>,
  sink: BlockSink,
  options: AbortOptions & { shape?: DagShape } = {},
): Promise<ImportedBody> {
  const { maxLinks } = options.shape ?? PROFILE_SHAPE;
  // levels[k] holds the finished subtrees of height k not yet linked by a parent.
  const levels: Subtree[][] = [[]];
  const link = async (height: number): Promise<void> => {
    const children = levels[height]!;
    levels[height] = [];
    const parent = await storeNode(children, sink, options);
    (levels[height + 1] ??= []).push(parent);
    if (levels[height + 1]!.length === maxLinks) await link(height + 1);
  };
  let count = 0;
  let total = 0;
  for await (const leaf of leaves) {
    throwIfAborted(options.signal);
    count++;
    total += leaf.size;
    levels[0]!.push({ cid: leaf.cid, fileSize: leaf.size, dagSize: leaf.size });
    if (levels[0]!.length === maxLinks) await link(0);
  }
  if (count === 0) throw new Error('buildFileDag needs at least one leaf (an empty file is one empty leaf)');
  // As ipfs-unixfs-importer's balanced layout: each level's remainder gets a parent, until a level that
  // never filled up holds exactly one subtree, the root. A one-leaf file is that leaf.
  for (let height = 0; ; height++) {
    const higher = levels.slice(height + 1).some((l) => l.length > 0);
    const here = levels[height]!;
    if (!higher && here.length === 1) return { cid: here[0]!.cid, size: total };
    if (here.length > 0) await link(height);
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
  const cid = CID.createV1(DAG_PB_CODE, await sha256.digest(bytes));
  await sink.put(cid, bytes, options);
  return { cid, fileSize: Number(unixfs.fileSize()), dagSize: bytes.byteLength + links.reduce((sum, l) => sum + (l.Tsize ?? 0), 0) };
}

/**
 * Imports a byte stream as a UnixFS file and writes its blocks to `sink` as they are built (so memory
 * stays flat: one chunk being filled). The root CID is known only when the stream ends; a stream that
 * throws leaves only unreferenced blocks behind, never a root.
 */
async function handWrittenImportBody(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  sink: BlockSink,
  options: AbortOptions & { shape?: DagShape } = {},
): Promise<ImportedBody> {
  throwIfAborted(options.signal);
  const { chunkBytes } = options.shape ?? PROFILE_SHAPE;
  // Leaf writes overlap (one write at a time leaves the store's latency on the critical path); leaves
  // still reach the DAG builder in order, and at most LEAF_WRITES_IN_FLIGHT are held.
  const writes: Promise<StoredLeaf>[] = [];
  const store = async (bytes: Uint8Array): Promise<void> => {
    const cid = CID.createV1(RAW_CODE, await sha256.digest(bytes));
    const write = sink.put(cid, bytes, options).then(() => ({ cid, size: bytes.byteLength }));
    write.catch(() => undefined); // reported in order, when its turn comes
    writes.push(write);
  };
  const chunked = async function* (): AsyncGenerator<StoredLeaf> {
    let chunk = new Uint8Array(chunkBytes);
    let filled = 0;
    let leaves = 0;
    for await (const piece of source) {
      for (let offset = 0; offset < piece.byteLength; ) {
        const n = Math.min(piece.byteLength - offset, chunkBytes - filled);
        chunk.set(piece.subarray(offset, offset + n), filled);
        filled += n;
        offset += n;
        if (filled === chunkBytes) {
          leaves++;
          await store(chunk);
          if (writes.length >= LEAF_WRITES_IN_FLIGHT) yield await writes.shift()!;
          chunk = new Uint8Array(chunkBytes);
          filled = 0;
        }
      }
    }
    // The remainder, or the one empty leaf of an empty file.
    if (filled > 0 || leaves === 0) await store(chunk.subarray(0, filled));
    while (writes.length > 0) yield await writes.shift()!;
  };
  return buildFileDag(chunked(), sink, options);
}

// ---- end of the former builder ----

type Builder = 'hand-written' | 'ipfs-unixfs-importer';
const BUILDERS: Record<Builder, (source: Iterable<Uint8Array>, sink: BlockSink) => Promise<ImportedBody>> = {
  'hand-written': (source, sink) => handWrittenImportBody(source, sink),
  'ipfs-unixfs-importer': (source, sink) => importBody(source, sink),
};

async function collect(it: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of it) out.push(c);
  return out;
}

const large = await collect(pseudoRandomBytes('bench unixfs large', LARGE_BYTES, 192 * 1024 + 17));
const small = await Promise.all(Array.from({ length: SMALL_COUNT }, async (_, i) => collect(pseudoRandomBytes(`bench unixfs small ${i}`, SMALL_BYTES))));
const dir = await mkdtemp(join(values.tmp, 'fo-bench-unixfs-'));

interface Run {
  seconds: number;
  cpuSeconds: number;
  root: string;
}
const best = new Map<string, Run>();

/** `--store null` discards every block: the builders' CPU cost alone. */
const NULL_SINK: BlockSink = { put: async () => {} };

async function timed(name: string, work: (sink: BlockSink) => Promise<string>): Promise<void> {
  if (values.only !== undefined && !name.endsWith(values.only)) return;
  const data = join(dir, `data-${best.size}-${Math.random().toString(36).slice(2)}`);
  const store = values.store === 'null' ? NULL_SINK : new FsBlockStore(data);
  await execFileAsync('sync');
  const cpu = process.cpuUsage();
  const t = performance.now();
  const root = await work(store);
  const seconds = (performance.now() - t) / 1000;
  const used = process.cpuUsage(cpu);
  const cpuSeconds = (used.user + used.system) / 1e6;
  const previous = best.get(name);
  if (previous !== undefined && previous.root !== root) throw new Error(`${name}: root changed between runs`);
  if (previous === undefined || seconds < previous.seconds) best.set(name, { seconds, cpuSeconds, root });
  process.stderr.write(`  ${name}: ${seconds.toFixed(2)} s, CPU ${cpuSeconds.toFixed(2)} s\n`);
  await rm(data, { recursive: true, force: true });
}

process.stdout.write(`UnixFS import benchmark: Node ${process.version}, ${values.store === 'null' ? 'blocks discarded' : `FsBlockStore in ${dir}`}, ${LARGE_BYTES / 1024 / 1024} MiB body and ${SMALL_COUNT} × ${SMALL_BYTES} B bodies, best of ${REPS}, load average ${loadavg()[0]!.toFixed(1)}\n\n`);
try {
  for (let rep = 0; rep < REPS; rep++) {
    for (const builder of Object.keys(BUILDERS) as Builder[]) {
      const build = BUILDERS[builder];
      await timed(`${builder} large`, async (sink) => (await build(large, sink)).cid.toString());
      await timed(`${builder} small`, async (sink) => {
        let last = '';
        for (const body of small) last = (await build(body, sink)).cid.toString();
        return last;
      });
    }
  }
  const phases = (['large', 'small'] as const).filter((p) => values.only === undefined || p === values.only);
  for (const phase of phases) {
    const [a, b] = (Object.keys(BUILDERS) as Builder[]).map((builder) => best.get(`${builder} ${phase}`)!);
    if (a!.root !== b!.root) throw new Error(`${phase}: the builders disagree: ${a!.root} vs ${b!.root}`);
  }
  const bytes = { large: LARGE_BYTES, small: SMALL_COUNT * SMALL_BYTES };
  process.stdout.write('| builder | body | MB/s | bodies/s | wall s | CPU s | CPU % |\n|---|---|---:|---:|---:|---:|---:|\n');
  for (const phase of phases) {
    for (const builder of Object.keys(BUILDERS) as Builder[]) {
      const r = best.get(`${builder} ${phase}`)!;
      const what = phase === 'large' ? `${LARGE_BYTES / 1024 / 1024} MiB` : `${SMALL_COUNT} × 4 KiB`;
      const bodies = phase === 'large' ? 1 : SMALL_COUNT;
      process.stdout.write(`| ${builder} | ${what} | ${(bytes[phase] / 1e6 / r.seconds).toFixed(1)} | ${(bodies / r.seconds).toFixed(1)} | ${r.seconds.toFixed(2)} | ${r.cpuSeconds.toFixed(2)} | ${((100 * r.cpuSeconds) / r.seconds).toFixed(0)} |\n`);
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
