// Issue #2 benchmark: record then replay (a) 2,000 requests of 4 KiB and (b) one 1 GiB body through the
// proxy, against a pass-through proxy in the same run, and the big body through a pass-through that computes the
// contract's digests of every byte (the least a record can cost). Prints requests/s, MB/s and the peak RSS.
// Usage: npm run bench [-- --big-mib 1024 --small 2000]
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ProxyAgent, request } from 'undici';
import { CLI, run, startDaemon } from '../test/helpers/run.ts';
import type { Daemon } from '../test/helpers/run.ts';
import { peakRssMb } from './cli-run.ts';

const { values } = parseArgs({ options: { 'big-mib': { type: 'string', default: '1024' }, small: { type: 'string', default: '2000' }, concurrency: { type: 'string', default: '16' } } });
const BIG = Number(values['big-mib']) * 1024 * 1024;
const SMALL_COUNT = Number(values.small);
const CONCURRENCY = Number(values.concurrency);
const MB = 1e6;

const dir = await mkdtemp(join(tmpdir(), 'fo-bench-'));
const RUN_TS = join(CLI, '..', 'run-ts.js');

/** Starts a helper script in its own process and waits for its `listening` line. */
function startScript(script: string, args: string[]): Promise<Daemon> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [RUN_TS, join(import.meta.dirname, script), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.once('data', (d: Buffer) =>
      resolve({ child, url: /listening (\S+)/.exec(d.toString())![1]!, admin: undefined, stderr: () => '', stop: () => Promise.resolve((child.kill(), null)) }),
    );
  });
}

// The origin runs in its own process and the big body is fetched by curl, so that neither competes with
// the proxy under test inside one Node process.
const originProc = await startScript('origin-server.ts', [String(BIG)]);
const origin = { url: originProc.url };

async function download(proxy: string, url: string): Promise<number> {
  const t = performance.now();
  const r = await run('curl', ['-sS', '--noproxy', '', '-x', proxy, '-o', '/dev/null', '-w', '%{size_download}', url]);
  if (r.code !== 0 || Number(r.stdout) !== BIG) throw new Error(`curl got ${r.stdout} of ${BIG} bytes: ${r.stderr}`);
  return (performance.now() - t) / 1000;
}

async function manySmall(proxy: string): Promise<number> {
  const agent = new ProxyAgent({ uri: proxy, proxyTunnel: false, connections: CONCURRENCY });
  const t = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < SMALL_COUNT) {
        const i = next++;
        const res = await request(`${origin.url}/small?i=${i}`, { dispatcher: agent });
        const body = Buffer.from(await res.body.arrayBuffer());
        if (body.byteLength !== 4096) throw new Error(`small ${i}: ${res.statusCode} ${body.byteLength}`);
      }
    }),
  );
  await agent.close();
  return (performance.now() - t) / 1000;
}

function row(name: string, seconds: number, bytes: number, requests: number, rss: number): void {
  process.stdout.write(`${name.padEnd(34)} ${seconds.toFixed(2).padStart(8)} s ${(bytes / MB / seconds).toFixed(0).padStart(7)} MB/s ${(requests / seconds).toFixed(0).padStart(7)} req/s   peak RSS ${rss.toFixed(0)} MB\n`);
}

const results: Record<string, number> = {};
async function phase(name: string, daemon: Daemon, work: () => Promise<number>, bytes: number, requests: number): Promise<void> {
  const s = await work();
  results[name] = s;
  row(name, s, bytes, requests, await peakRssMb(daemon.child.pid!));
}

process.stdout.write(`fetch-oracle benchmark: ${SMALL_COUNT} x 4 KiB (concurrency ${CONCURRENCY}) and one ${BIG / 1024 / 1024} MiB body, Node ${process.version}\n\n`);
const env = { PATH: process.env['PATH'] ?? '', HOME: dir };

// Baseline: plain pass-through proxy (its own process, like the oracle).
const passthrough = await startScript('passthrough-proxy.ts', []);
await phase(`pass-through: ${BIG / 1024 / 1024} MiB`, passthrough, () => download(passthrough.url, `${origin.url}/big.bin`), BIG, 1);
await phase('pass-through: 4 KiB requests', passthrough, () => manySmall(passthrough.url), SMALL_COUNT * 4096, SMALL_COUNT);
await passthrough.stop();

// The least a record of the big body can cost here: the pass-through plus the contract's three digests of every
// byte (leaf SHA-256, whole SHA-256 and SHA-512), on both cores, with no store and no record.
const digesting = await startScript('passthrough-proxy.ts', ['--digests']);
await phase(`pass-through + digests: ${BIG / 1024 / 1024} MiB`, digesting, () => download(digesting.url, `${origin.url}/big.bin`), BIG, 1);
await digesting.stop();

const data = join(dir, 'data');
const netlock = join(dir, 'bench.netlock.json');
const rec = await startDaemon(['record', '--listen', '127.0.0.1:0', '--data', data, '--netlock', netlock], env);
await phase(`record: ${BIG / 1024 / 1024} MiB`, rec, () => download(rec.url, `${origin.url}/big.bin`), BIG, 1);
await phase('record: 4 KiB requests', rec, () => manySmall(rec.url), SMALL_COUNT * 4096, SMALL_COUNT);
await rec.stop('SIGTERM');

const rep = await startDaemon(['replay', '--listen', '127.0.0.1:0', '--data', data, '--netlock', netlock], env);
await phase(`replay: ${BIG / 1024 / 1024} MiB`, rep, () => download(rep.url, `${origin.url}/big.bin`), BIG, 1);
await phase('replay: 4 KiB requests', rep, () => manySmall(rep.url), SMALL_COUNT * 4096, SMALL_COUNT);
const replayRss = await peakRssMb(rep.child.pid!);
await rep.stop('SIGTERM');

const overhead = results[`record: ${BIG / 1024 / 1024} MiB`]! / results[`pass-through: ${BIG / 1024 / 1024} MiB`]!;
const replayMBs = BIG / MB / results[`replay: ${BIG / 1024 / 1024} MiB`]!;
const floor = results[`pass-through + digests: ${BIG / 1024 / 1024} MiB`]! / results[`pass-through: ${BIG / 1024 / 1024} MiB`]!;
process.stdout.write(`\nrecord overhead on the big body: ${overhead.toFixed(2)}x pass-through (target <= 1.5x)\n`);
process.stdout.write(`the contract's digests alone, no store: ${floor.toFixed(2)}x pass-through; the record: ${(overhead / floor).toFixed(2)}x that\n`);
process.stdout.write(`replay of the big body: ${replayMBs.toFixed(0)} MB/s (target >= 300), replay peak RSS ${replayRss.toFixed(0)} MB (target < 200)\n`);
await originProc.stop();
await rm(dir, { recursive: true, force: true });
