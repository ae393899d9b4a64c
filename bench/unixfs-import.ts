// Issue #11 measurement: the record path's own UnixFS builder (`importBody`: a sliding window of up to
// LEAF_WRITES_IN_FLIGHT leaf writes, a balanced DAG built level by level) against ipfs-unixfs-importer with
// every option set explicitly (test/protocol/importer-options.ts), both writing into the embedded
// FsBlockStore (a fresh temporary data directory per run). The source is in memory, so this isolates the
// builders; the record path's source is a socket (see src/protocol/unixfs.ts for the end-to-end numbers).
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
import { importer } from 'ipfs-unixfs-importer';
import type { CID } from 'multiformats/cid';
import type { BlockSink } from '../src/protocol/blocks.ts';
import { importBody } from '../src/protocol/unixfs.ts';
import type { ImportedBody } from '../src/protocol/unixfs.ts';
import { FsBlockStore } from '../src/store/fs-block-store.ts';
import { pseudoRandomBytes } from '../test/netlock/netlock-fixture.ts';
import { importerOptions } from '../test/protocol/importer-options.ts';

const { values } = parseArgs({
  options: { mib: { type: 'string', default: '1024' }, count: { type: 'string', default: '3000' }, reps: { type: 'string', default: '3' }, tmp: { type: 'string', default: tmpdir() }, only: { type: 'string' }, store: { type: 'string', default: 'fs' } },
});
const LARGE_BYTES = Number(values.mib) * 1024 * 1024;
const SMALL_COUNT = Number(values.count);
const SMALL_BYTES = 4096;
const REPS = Math.max(1, Number(values.reps));
const execFileAsync = promisify(execFile);

/** ipfs-unixfs-importer with every option explicit (test/protocol/importer-options.ts), into the same sink. */
async function viaImporter(source: Iterable<Uint8Array>, sink: BlockSink): Promise<ImportedBody> {
  let size = 0;
  const counted = function* (): Generator<Uint8Array> {
    for (const piece of source) {
      size += piece.byteLength;
      yield piece;
    }
  };
  const blockstore = { put: async (cid: CID, bytes: Uint8Array): Promise<CID> => (await sink.put(cid, bytes), cid) };
  let root: CID | undefined;
  for await (const entry of importer([{ content: counted() }], blockstore, importerOptions())) root = entry.cid;
  return { cid: root!, size };
}

type Builder = 'importBody' | 'ipfs-unixfs-importer';
const BUILDERS: Record<Builder, (source: Iterable<Uint8Array>, sink: BlockSink) => Promise<ImportedBody>> = {
  importBody: (source, sink) => importBody(source, sink),
  'ipfs-unixfs-importer': viaImporter,
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
