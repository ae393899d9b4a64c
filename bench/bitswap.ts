// Issue #17 part 3 benchmark: a netlock recorded into Kubo A, replayed on machine B whose Kubo has never seen
// a block of it, the blocks arriving over bitswap (two real daemons on loopback, peered with swarm/connect).
//
//   record:    `record --ipfs A` of one large body (curl) and many package-sized bodies (undici, 16 at a time);
//   pin:       a third daemon C, peered with A, pins the netlock root recursively (bitswap alone, no proxy);
//   replay B:  `replay --netlock ipfs://ROOT --ipfs B` (fresh data directory): the large body by curl (time to
//              first byte, MB/s) and the small ones by undici (requests/s, time to first byte per request),
//              cold (every block over bitswap) and again warm (from B's cache);
//   replay A:  the same on A (blocks in its own Kubo, fresh data directory): the cost without bitswap.
//
// Usage: npm run bench:bitswap [-- --big-mib 512 --small 500 --concurrency 16]
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { ProxyAgent, request } from 'undici';
import { packageSize } from './package-bytes.ts';
import { CLI, run, startDaemon } from '../test/helpers/run.ts';
import type { Daemon } from '../test/helpers/run.ts';

const { values } = parseArgs({ options: { 'big-mib': { type: 'string', default: '512' }, small: { type: 'string', default: '500' }, concurrency: { type: 'string', default: '16' } } });
const BIG = Number(values['big-mib']) * 1024 * 1024;
const SMALL = Number(values.small);
const CONCURRENCY = Number(values.concurrency);
const MB = 1e6;
const GIB = 1024 ** 3;
const KUBO_SH = resolve(import.meta.dirname, '..', 'test', 'kubo', 'kubo.sh');
const RUN_TS = join(CLI, '..', 'run-ts.js');
const execFileAsync = promisify(execFile);

const dir = await mkdtemp(join(tmpdir(), 'fo-bench-bitswap-'));
const kuboDirs: string[] = [];
const daemons: Daemon[] = [];

async function kubo(name: string): Promise<string> {
  const repo = join(dir, `kubo-${name}`);
  kuboDirs.push(repo);
  const { stdout } = await execFileAsync('bash', [KUBO_SH, 'start', repo], { env: { ...process.env, KUBO_ONLINE: '1' }, maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim().split('\n').at(-1)!.trim();
}

async function rpc(api: string, path: string): Promise<unknown> {
  const res = await fetch(`${api}/api/v0/${path}`, { method: 'POST' });
  const text = await res.text();
  if (!res.ok) throw new Error(`Kubo ${path}: HTTP ${res.status}: ${text}`);
  return text.trim() === '' ? {} : (JSON.parse(text.trim().split('\n').at(-1)!) as unknown);
}

async function connect(from: string, to: string): Promise<void> {
  const id = (await rpc(to, 'id')) as { Addresses: string[] };
  const addr = id.Addresses.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/'))!;
  await rpc(from, `swarm/connect?arg=${encodeURIComponent(addr)}`);
}

function startOrigin(): Promise<Daemon> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [RUN_TS, join(import.meta.dirname, 'origin-server.ts'), String(BIG)], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.once('data', (d: Buffer) =>
      resolvePromise({ child, url: /listening (\S+)/.exec(d.toString())![1]!, admin: undefined, stderr: () => '', stop: () => Promise.resolve((child.kill(), null)) }),
    );
  });
}

const smallUrl = (origin: string, i: number): string => `${origin}/pkg/p${i}/-/p${i}-1.0.0.tgz`;
const smallBytes = Array.from({ length: SMALL }, (_, i) => packageSize(i)).reduce((a, b) => a + b, 0);

interface Big {
  ttfb: number;
  total: number;
}
async function bigVia(proxy: string, origin: string): Promise<Big> {
  const r = await run('curl', ['-sS', '--noproxy', '', '-x', proxy, '-o', '/dev/null', '-w', '%{time_starttransfer} %{time_total} %{size_download} %{http_code}', `${origin}/big.bin`]);
  const [ttfb, total, size, status] = r.stdout.trim().split(' ');
  if (r.code !== 0 || Number(size) !== BIG || status !== '200') throw new Error(`curl got ${status} with ${size} of ${BIG} bytes: ${r.stderr}`);
  return { ttfb: Number(ttfb), total: Number(total) };
}

interface Small {
  seconds: number;
  ttfbMs: number[];
}
async function smallVia(proxy: string, origin: string): Promise<Small> {
  const agent = new ProxyAgent({ uri: proxy, proxyTunnel: false, connections: CONCURRENCY });
  const ttfbMs: number[] = [];
  const t = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < SMALL) {
        const i = next++;
        const start = performance.now();
        const res = await request(smallUrl(origin, i), { dispatcher: agent });
        ttfbMs.push(performance.now() - start);
        const body = Buffer.from(await res.body.arrayBuffer());
        if (res.statusCode !== 200) throw new Error(`small ${i}: ${res.statusCode} ${body.toString().slice(0, 300)}`);
      }
    }),
  );
  const seconds = (performance.now() - t) / 1000;
  await agent.close();
  return { seconds, ttfbMs: ttfbMs.sort((a, b) => a - b) };
}

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const fmtBig = (name: string, b: Big): string =>
  `| ${name} | ${(b.ttfb * 1000).toFixed(0)} ms | ${(BIG / MB / b.total).toFixed(0)} MB/s | ${((b.total * GIB) / BIG).toFixed(1)} s/GiB |`;
const fmtSmall = (name: string, s: Small): string =>
  `| ${name} | ${(SMALL / s.seconds).toFixed(0)} req/s | ${(smallBytes / MB / s.seconds).toFixed(0)} MB/s | ${pct(s.ttfbMs, 50).toFixed(1)} / ${pct(s.ttfbMs, 95).toFixed(1)} ms |`;

try {
  const [a, b, c] = await Promise.all([kubo('a'), kubo('b'), kubo('c')]);
  const version = ((await rpc(a, 'version')) as { Version: string }).Version;
  const origin = await startOrigin();
  daemons.push(origin);
  process.stdout.write(
    `fetch-oracle bitswap benchmark: Kubo ${version}, Node ${process.version}, one ${BIG / 1024 / 1024} MiB body and ${SMALL} bodies of 4-196 KiB (${(smallBytes / MB).toFixed(0)} MB), ${CONCURRENCY} at a time\n\n`,
  );

  // Record on A.
  const netlock = join(dir, 'a.netlock.json');
  const rec = await startDaemon(['record', '--listen', '127.0.0.1:0', '--data', join(dir, 'data-a'), '--netlock', netlock, '--ipfs', a]);
  const recBig = await bigVia(rec.url, origin.url);
  const recSmall = await smallVia(rec.url, origin.url);
  if ((await rec.stop('SIGINT')) !== 0) throw new Error(`record exited badly: ${rec.stderr()}`);
  const file = JSON.parse(await readFile(netlock, 'utf8')) as { netlock: string; oracles: string[] };
  const [root, key] = [file.netlock, file.oracles[0]!];

  // Bitswap alone: C pins the whole netlock from A.
  await connect(c, a);
  let t = performance.now();
  await rpc(c, `pin/add?arg=${root}&recursive=true`);
  const pinSeconds = (performance.now() - t) / 1000;
  const totalBytes = BIG + smallBytes;

  // Replay on B: every block over bitswap, then again from B's cache.
  await connect(b, a);
  t = performance.now();
  const replayB = await startDaemon(['replay', '--netlock', `ipfs://${root}`, '--ipfs', b, '--trust', key, '--data', join(dir, 'data-b'), '--listen', '127.0.0.1:0']);
  daemons.push(replayB);
  const startB = (performance.now() - t) / 1000;
  const coldBig = await bigVia(replayB.url, origin.url);
  const coldSmall = await smallVia(replayB.url, origin.url);
  const warmBig = await bigVia(replayB.url, origin.url);
  const warmSmall = await smallVia(replayB.url, origin.url);
  await replayB.stop();

  // Replay on A: the blocks are in its own Kubo (fresh data directory: no cache).
  const replayA = await startDaemon(['replay', '--netlock', `ipfs://${root}`, '--ipfs', a, '--trust', key, '--data', join(dir, 'data-a2'), '--listen', '127.0.0.1:0']);
  daemons.push(replayA);
  const localBig = await bigVia(replayA.url, origin.url);
  const localSmall = await smallVia(replayA.url, origin.url);
  await replayA.stop();

  const lines = [
    `netlock ${root}: ${(totalBytes / MB).toFixed(0)} MB of bodies`,
    `replay on B started (root and index fetched over bitswap) in ${(startB * 1000).toFixed(0)} ms (process start included)`,
    `Kubo C pinned the whole netlock from A over bitswap in ${pinSeconds.toFixed(1)} s: ${(totalBytes / MB / pinSeconds).toFixed(0)} MB/s, ${((pinSeconds * GIB) / totalBytes).toFixed(1)} s/GiB`,
    '',
    `| large body (${BIG / 1024 / 1024} MiB, curl) | time to first byte | throughput | per GiB |`,
    '|---|---|---|---|',
    fmtBig('record --ipfs on A', recBig),
    fmtBig('replay --ipfs on B, cold (bitswap)', coldBig),
    fmtBig('replay --ipfs on B, warm (B\'s cache)', warmBig),
    fmtBig('replay --ipfs on A (own Kubo, no bitswap)', localBig),
    '',
    `| ${SMALL} small bodies (undici, ${CONCURRENCY} at a time) | requests/s | throughput | time to first byte p50 / p95 |`,
    '|---|---|---|---|',
    fmtSmall('record --ipfs on A', recSmall),
    fmtSmall('replay --ipfs on B, cold (bitswap)', coldSmall),
    fmtSmall('replay --ipfs on B, warm (B\'s cache)', warmSmall),
    fmtSmall('replay --ipfs on A (own Kubo, no bitswap)', localSmall),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  for (const d of daemons) await d.stop().catch(() => null);
  for (const repo of kuboDirs) await execFileAsync('bash', [KUBO_SH, 'stop', repo]).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
}
