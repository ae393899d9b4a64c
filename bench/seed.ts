// Issue #5 benchmark: seed a 1,500-package package-lock.json from a local origin, against a plain parallel
// download of the same tarballs with the same concurrency, in the same run. Prints packages/s, MB/s, peak RSS
// and the ratio (target: seed >= 80% of the plain download's rate).
// Usage: npm run bench:seed [-- --packages 1500 --concurrency 16]
//
// Each side runs in its own process, timed from its first request (as the origin saw it) to its exit, and
// reports its own peak RSS (getrusage maxrss). The plain downloads are this file's code (node + tsx); the seed
// is the CLI as users run it: `bin/fetch-oracle.js seed`, which runs the bundle `npm ci` builds (or, when
// src/ is newer than it, the sources through tsx: the output says which). The origin runs in a third process.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { bundleIsFresh } from '../bin/bundle.js';
import { peakRssMb, RUN_TS, runFetchOracle, runNode, startBenchOrigin } from './cli-run.ts';
import { packageBytes, packageSize } from './package-bytes.ts';

const { values } = parseArgs({
  options: {
    packages: { type: 'string', default: '1500' },
    concurrency: { type: 'string', default: '16' },
    child: { type: 'string' },
    origin: { type: 'string' },
    dir: { type: 'string' },
  },
});
const COUNT = Number(values.packages);
const CONCURRENCY = Number(values.concurrency);
const MB = 1e6;
const tarball = (origin: string, i: number): string => `${origin}/pkg/p${i}/-/p${i}-1.0.0.tgz`;

/** What a side reports of itself. */
interface ChildUsage {
  bytes: number;
  maxRssMb: number;
  /** CPU time of the process (every thread): steadier than wall time on a shared host. */
  cpuSeconds: number;
}

interface ChildResult extends ChildUsage {
  /** From the origin's first package request to the process's exit. */
  seconds: number;
}

const cpuSince = (start: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
};

/**
 * The baseline: the same GETs with the same concurrency through undici. `toFiles` also stores each body the
 * way a downloading client's cache does (a temporary file renamed into place), since seeding must store every
 * body too; without it the bodies are only read.
 */
async function plainDownload(origin: string, toFiles: string | undefined): Promise<ChildUsage> {
  const agent = new Agent({ connections: CONCURRENCY });
  if (toFiles !== undefined) await mkdir(toFiles, { recursive: true });
  let next = 0;
  let bytes = 0;
  const cpu = process.cpuUsage(); // over the downloads only: its start under tsx is not counted against it
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < COUNT) {
        const i = next++;
        const res = await request(tarball(origin, i), { dispatcher: agent });
        if (toFiles === undefined) {
          for await (const c of res.body) bytes += (c as Buffer).byteLength;
        } else {
          const tmp = join(toFiles, `p${i}.tgz.tmp`);
          const file = await open(tmp, 'w');
          for await (const c of res.body) {
            bytes += (c as Buffer).byteLength;
            await file.write(c as Buffer);
          }
          await file.close();
          await rename(tmp, join(toFiles, `p${i}.tgz`));
        }
        if (res.statusCode !== 200) throw new Error(`package ${i}: ${res.statusCode}`);
      }
    }),
  );
  const cpuSeconds = cpuSince(cpu);
  await agent.close();
  return { bytes, maxRssMb: await peakRssMb('self'), cpuSeconds };
}

if (values.child !== undefined) {
  const result = await plainDownload(values.origin!, values.child === 'files' ? join(values.dir!, 'files') : undefined);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

const PROFILE = process.env['BENCH_CPU_PROF'] === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${process.env['BENCH_CPU_PROF']}`];

/** The span from the origin's first package request since the last call to `exitedAt`; checks every package was answered. */
async function sinceFirstRequest(origin: string, exitedAt: number): Promise<number> {
  const { first, answered } = (await (await request(`${origin}/_first`)).body.json()) as { first: number; answered: number };
  if (answered !== COUNT) throw new Error(`the origin answered ${answered} of ${COUNT} packages`);
  return (exitedAt - first) / 1000;
}

async function runPlain(origin: string, files: boolean): Promise<ChildResult> {
  const { out, exitedAt } = await runNode([RUN_TS, import.meta.filename, '--child', files ? 'files' : 'plain', '--origin', origin, '--dir', dir, '--packages', String(COUNT), '--concurrency', String(CONCURRENCY)], process.env, PROFILE);
  return { ...(JSON.parse(out.trim().split('\n').pop()!) as ChildUsage), seconds: await sinceFirstRequest(origin, exitedAt) };
}

/** `fetch-oracle seed` as users run it; its CPU and peak RSS are the whole process's, start to exit (exit-usage.mjs). */
async function runSeed(origin: string): Promise<ChildResult> {
  const args = ['seed', '--netlock', join(dir, 'bench.netlock.json'), '--data', join(dir, 'data'), '--concurrency', String(CONCURRENCY), '--json', join(dir, 'package-lock.json')];
  const { out, exitedAt, maxRssMb, cpuSeconds } = await runFetchOracle(args, join(dir, 'seed-usage.json'), PROFILE);
  const summary = JSON.parse(out) as { fetched: number; bytes: number; count: number };
  if (summary.fetched !== COUNT || summary.count !== COUNT) throw new Error(`seed fetched ${summary.fetched} of ${COUNT}`);
  return { maxRssMb, cpuSeconds, bytes: summary.bytes, seconds: await sinceFirstRequest(origin, exitedAt) };
}

const dir = await mkdtemp(join(tmpdir(), 'fo-bench-seed-'));
const { url: origin, process: originProc } = await startBenchOrigin();
try {
  // The lockfile: 1,500 packages with sha512 integrity, as npm writes it.
  const packages: Record<string, unknown> = { '': { name: 'bench', version: '1.0.0' } };
  let total = 0;
  for (let i = 0; i < COUNT; i++) {
    const bytes = packageBytes(i);
    total += packageSize(i);
    packages[`node_modules/p${i}`] = { version: '1.0.0', resolved: tarball(origin, i), integrity: `sha512-${createHash('sha512').update(bytes).digest('base64')}` };
  }
  await writeFile(join(dir, 'package-lock.json'), JSON.stringify({ name: 'bench', version: '1.0.0', lockfileVersion: 3, requires: true, packages }, null, 2));
  process.stdout.write(`fetch-oracle seed benchmark: ${COUNT} packages, ${(total / MB).toFixed(1)} MB, concurrency ${CONCURRENCY}, Node ${process.version}\n\n`);
  const row = (name: string, r: ChildResult): void => {
    process.stdout.write(`${name.padEnd(28)} ${r.seconds.toFixed(2).padStart(7)} s ${(COUNT / r.seconds).toFixed(0).padStart(6)} packages/s ${(r.bytes / MB / r.seconds).toFixed(1).padStart(7)} MB/s   peak RSS ${r.maxRssMb.toFixed(0)} MB   CPU ${r.cpuSeconds.toFixed(2)} s\n`);
  };
  const plain = await runPlain(origin, false);
  row('plain parallel download', plain);
  const files = await runPlain(origin, true);
  row('plain download to files', files);
  const seeded = await runSeed(origin);
  row('seed (record + verify)', seeded);
  process.stdout.write(`  (the seed ran ${bundleIsFresh() ? 'the bundle, as installed' : 'the sources through tsx: src/ is newer than the bundle (npm run build)'}; its CPU counts its start and end)\n`);
  process.stdout.write(`\nseed rate: ${((plain.seconds / seeded.seconds) * 100).toFixed(0)}% of the plain download, ${((files.seconds / seeded.seconds) * 100).toFixed(0)}% of the download to files (target >= 80%)\n`);
  process.stdout.write(`seed CPU: ${(seeded.cpuSeconds / files.cpuSeconds).toFixed(2)}x the download to files' CPU time (all threads)\n`);
} finally {
  originProc.kill();
  await rm(dir, { recursive: true, force: true });
}
