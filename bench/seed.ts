// Issue #5 benchmark: seed a 1,500-package package-lock.json from a local origin, against a plain parallel
// download of the same tarballs with the same concurrency, in the same run. Prints packages/s, MB/s, peak RSS
// and the ratio (target: seed >= 80% of the plain download's rate).
// Usage: npm run bench:seed [-- --packages 1500 --concurrency 16]
//
// Each side runs in its own process (node + tsx, like the CLI), timed from its first request to its last
// answer, and reports its own peak RSS (getrusage maxrss); the origin runs in a third process.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { runSeed } from '../src/cli/seed.ts';
import { tuneV8 } from '../src/cli/v8-tuning.ts';
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
const RUN_TS = join(import.meta.dirname, '..', 'bin', 'run-ts.js');
const tarball = (origin: string, i: number): string => `${origin}/pkg/p${i}/-/p${i}-1.0.0.tgz`;

interface ChildResult {
  seconds: number;
  bytes: number;
  maxRssMb: number;
  /** CPU time of the whole process (every thread) over the timed part: steadier than wall time on a shared host. */
  cpuSeconds: number;
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
async function plainDownload(origin: string, toFiles: string | undefined): Promise<ChildResult> {
  const agent = new Agent({ connections: CONCURRENCY });
  if (toFiles !== undefined) await mkdir(toFiles, { recursive: true });
  let next = 0;
  let bytes = 0;
  const t = performance.now();
  const cpu = process.cpuUsage();
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
  const seconds = (performance.now() - t) / 1000;
  const cpuSeconds = cpuSince(cpu);
  await agent.close();
  return { seconds, bytes, maxRssMb: process.resourceUsage().maxRSS / 1024, cpuSeconds };
}

async function seedChild(dir: string): Promise<ChildResult> {
  tuneV8(); // as the CLI's entry point does (src/cli/main.ts): measured as users run `seed`
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const t = performance.now();
  const cpu = process.cpuUsage();
  const code = await runSeed(['--netlock', join(dir, 'bench.netlock.json'), '--data', join(dir, 'data'), '--concurrency', String(CONCURRENCY), '--json', join(dir, 'package-lock.json')], { defaultDataDir: join(dir, 'data'), stdout: out, stderr: new PassThrough().resume() });
  const seconds = (performance.now() - t) / 1000;
  const cpuSeconds = cpuSince(cpu);
  if (code !== 0) throw new Error(`seed exited ${code}: ${text}`);
  const summary = JSON.parse(text) as { fetched: number; bytes: number; count: number };
  if (summary.fetched !== COUNT || summary.count !== COUNT) throw new Error(`seed fetched ${summary.fetched} of ${COUNT}`);
  return { seconds, bytes: summary.bytes, maxRssMb: process.resourceUsage().maxRSS / 1024, cpuSeconds };
}

if (values.child !== undefined) {
  const result = values.child === 'plain' ? await plainDownload(values.origin!, undefined) : values.child === 'files' ? await plainDownload(values.origin!, join(values.dir!, 'files')) : await seedChild(values.dir!);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

function runChild(args: string[]): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(process.env["BENCH_CPU_PROF"] === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${process.env["BENCH_CPU_PROF"]}`]), RUN_TS, import.meta.filename, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!) as ChildResult) : reject(new Error(`child ${args.join(' ')} exited ${code}`))));
  });
}

const dir = await mkdtemp(join(tmpdir(), 'fo-bench-seed-'));
const originProc = spawn(process.execPath, [RUN_TS, join(import.meta.dirname, 'origin-server.ts'), '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
const origin = await new Promise<string>((resolve) => originProc.stdout.once('data', (d: Buffer) => resolve(/listening (\S+)/.exec(d.toString())![1]!)));
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
  const plain = await runChild(['--child', 'plain', '--origin', origin, '--packages', String(COUNT), '--concurrency', String(CONCURRENCY)]);
  row('plain parallel download', plain);
  const files = await runChild(['--child', 'files', '--origin', origin, '--dir', dir, '--packages', String(COUNT), '--concurrency', String(CONCURRENCY)]);
  row('plain download to files', files);
  const seeded = await runChild(['--child', 'seed', '--dir', dir, '--packages', String(COUNT), '--concurrency', String(CONCURRENCY)]);
  row('seed (record + verify)', seeded);
  process.stdout.write(`\nseed rate: ${((plain.seconds / seeded.seconds) * 100).toFixed(0)}% of the plain download, ${((files.seconds / seeded.seconds) * 100).toFixed(0)}% of the download to files (target >= 80%)\n`);
  process.stdout.write(`seed CPU: ${(seeded.cpuSeconds / files.cpuSeconds).toFixed(2)}x the download to files' CPU time (all threads)\n`);
} finally {
  originProc.kill();
  await rm(dir, { recursive: true, force: true });
}
