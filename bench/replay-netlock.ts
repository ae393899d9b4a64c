// Issue #15: a large netlock for replay. Writes a data directory and a netlock of N entries (distinct URLs,
// npm-tarball-like, each with its own signed record; bodies of 4 KiB shared by groups of entries so that the
// store stays small), then serves it with `fetch-oracle replay` and drives it with wrk, every request a
// random entry. Prints requests/s, latency and the replay's start-up time and peak RSS.
// --soak: issue #15's bad input under load. wrk hammers for --seconds (e.g. 300) while, every --sample seconds,
// this samples the replay's RSS, asks for a URL the netlock lacks (status and time), and once, midway, flips a
// byte of a body block on disk and asks for an entry served by it (it must be refused, never a 200), then
// restores the block. Prints one table row per sample.
// Usage: node bin/run-ts.js bench/replay-netlock.ts [--entries 100000] [--bodies 1000] [--dir DIR] [--seconds 10]
//        [--connections 64] [--keep] [--soak --sample 15]   (needs wrk; a DIR holding a netlock of that size is reused)
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { computeRequestKey } from '../src/protocol/request-key.ts';
import { encodeRecord } from '../src/protocol/record.ts';
import type { FetchRecord } from '../src/protocol/record.ts';
import { rawLeafCid } from '../src/protocol/unixfs.ts';
import { writeNetlockFile } from '../src/netlock/file.ts';
import type { DecodedEntry } from '../src/netlock/file.ts';
import { LocalSigner } from '../src/signing/local-signer.ts';
import { FsBlockStore } from '../src/store/fs-block-store.ts';
import { run, startDaemon } from '../test/helpers/run.ts';

const { values } = parseArgs({
  options: {
    entries: { type: 'string', default: '100000' },
    bodies: { type: 'string', default: '1000' },
    dir: { type: 'string' },
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '64' },
    keep: { type: 'boolean', default: false },
    soak: { type: 'boolean', default: false },
    sample: { type: 'string', default: '15' },
  },
});
const N = Number(values.entries);
const BODIES = Math.min(N, Number(values.bodies));
const dir = values.dir ?? join(tmpdir(), `fo-netlock-${N}`);
const dataDir = join(dir, 'data');
const netlockPath = join(dir, 'netlock.json');
const ORIGIN = 'http://registry.example:8080';

/** The URL of entry `i`: as long as an npm tarball URL (~90 characters). */
const urlOf = (i: number): string => `${ORIGIN}/@scope-${i % 97}/package-number-${i}/-/package-number-${i}-1.${i % 50}.${i % 7}.tgz`;

async function generate(): Promise<void> {
  const started = performance.now();
  await mkdir(dir, { recursive: true });
  const store = new FsBlockStore(dataDir);
  const signer = await LocalSigner.loadOrCreate(dataDir);
  const bodies: Array<{ cid: ReturnType<typeof rawLeafCid>; sha256: Uint8Array; sha512: Uint8Array }> = [];
  for (let b = 0; b < BODIES; b++) {
    const bytes = Buffer.alloc(4096, `body ${b} `);
    const sha256 = createHash('sha256').update(bytes).digest();
    const cid = rawLeafCid(sha256);
    await store.put(cid, bytes);
    bodies.push({ cid, sha256, sha512: createHash('sha512').update(bytes).digest() });
  }
  const entries: DecodedEntry[] = [];
  for (let i = 0; i < N; i++) {
    const key = computeRequestKey({ method: 'GET', url: urlOf(i), headers: {} });
    const body = bodies[i % BODIES]!;
    const record: FetchRecord = {
      v: 1,
      request: { method: key.method, url: key.url, headers: key.variant },
      response: { status: 200, headers: [['content-type', 'application/octet-stream'], ['etag', `"${i}"`], ['content-length', '4096']], body: body.cid, size: 4096, sha256: body.sha256, sha512: body.sha512 },
      fetchedAt: '2026-01-01T00:00:00.000Z',
      oracle: signer.publicKey,
    };
    const block = await encodeRecord(record);
    await store.put(block.cid, block.bytes);
    entries.push({ key: key.id, signed: await signer.sign(block.cid), record });
    if (i % 10000 === 9999) process.stderr.write(`  ${i + 1} records\n`);
  }
  const file = await writeNetlockFile(netlockPath, entries, store);
  process.stdout.write(`generated ${N} entries (${BODIES} bodies) in ${((performance.now() - started) / 1000).toFixed(1)} s: netlock ${file.netlock}\n`);
}

async function existingCount(): Promise<number | undefined> {
  try {
    return (JSON.parse(await readFile(netlockPath, 'utf8')) as { count: number }).count;
  } catch {
    return undefined;
  }
}

if ((await existingCount()) !== N) await generate();
else process.stdout.write(`reusing ${netlockPath} (${N} entries, ${((await stat(netlockPath)).size / 1e6).toFixed(1)} MB)\n`);

const lua = join(dir, 'random.lua');
await writeFile(
  lua,
  `math.randomseed(15)
local n = ${N}
request = function()
  local i = math.random(0, n - 1)
  local path = string.format("${ORIGIN}/@scope-%d/package-number-%d/-/package-number-%d-1.%d.%d.tgz", i % 97, i, i, i % 50, i % 7)
  return wrk.format("GET", path, { Host = "registry.example:8080" })
end
done = function(summary, latency)
  io.write(string.format("WRK %d requests, %d non-2xx/3xx, p50 %.2f ms, p99 %.2f ms\\n", summary.requests, summary.errors.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
`,
);

const env = { PATH: process.env['PATH'] ?? '', HOME: dir };
const t0 = performance.now();
const daemon = await startDaemon(['replay', '--listen', '127.0.0.1:0', '--data', dataDir, '--netlock', netlockPath], env);
const startup = performance.now() - t0;
const pid = daemon.child.pid!;
const rss = async (): Promise<string> => {
  const s = await readFile(`/proc/${pid}/status`, 'utf8');
  return `RSS ${(Number(/VmRSS:\s+(\d+)/.exec(s)?.[1]) / 1024).toFixed(0)} MB, peak ${(Number(/VmHWM:\s+(\d+)/.exec(s)?.[1]) / 1024).toFixed(0)} MB`;
};
process.stdout.write(`replay listening after ${startup.toFixed(0)} ms; ${await rss()}\n`);
const proxy = daemon.url.replace(/\/$/, '');
const probe = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', proxy, urlOf(N - 1)], { env });
if (probe.stdout !== '200') throw new Error(`probe answered ${probe.stdout}: ${probe.stderr}`);
/** The soak's sampler: runs beside wrk until `done`, one row per sample. */
async function soak(done: Promise<unknown>): Promise<void> {
  const every = Number(values.sample) * 1000;
  const started = performance.now();
  const rows = ['| t (s) | RSS (MB) | a missing URL: status, time | a tampered body block |', '|---:|---:|---|---|'];
  let finished = false;
  void done.then(() => (finished = true));
  let tampered = false;
  while (!finished) {
    await Promise.race([done, new Promise((r) => setTimeout(r, every))]);
    if (finished) break;
    const t = (performance.now() - started) / 1000;
    const missing = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}, %{time_total} s', '-x', proxy, `${ORIGIN}/not-recorded-${Math.round(t)}`], { env });
    let tamper = '';
    if (!tampered && t >= Number(values.seconds) / 2) {
      tampered = true;
      // Entry 7's body is body 7 (i % BODIES); its block file is blocks/<last two>/<cid>.
      const cid = rawLeafCid(createHash('sha256').update(Buffer.alloc(4096, `body ${7 % BODIES} `)).digest()).toString();
      const file = join(dataDir, 'blocks', cid.slice(-2), cid);
      const good = await readFile(file);
      const bad = Buffer.from(good);
      bad[100] = bad[100]! ^ 0xff;
      // In place (same inode): the replay may hold the file open, and must see the change on its next read.
      await writeFile(file, bad);
      const got = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', proxy, urlOf(7)], { env });
      await writeFile(file, good);
      const again = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', proxy, urlOf(7)], { env });
      tamper = `answered ${got.stdout || got.stderr.trim()} (${got.stdout === '200' ? 'SERVED: WRONG' : 'refused'}); restored: ${again.stdout}`;
    }
    const s = await readFile(`/proc/${pid}/status`, 'utf8');
    rows.push(`| ${t.toFixed(0)} | ${(Number(/VmRSS:\s+(\d+)/.exec(s)?.[1]) / 1024).toFixed(0)} | ${missing.stdout} | ${tamper} |`);
  }
  process.stdout.write(`${rows.join('\n')}\n`);
}

const wrkRun = new Promise<string>((resolve) => {
  const child = spawn('wrk', ['-t1', `-c${values.connections}`, `-d${values.seconds}s`, '-s', lua, proxy], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.on('close', () => resolve(out));
});
if (values.soak) await soak(wrkRun);
const wrk = await wrkRun;
const reqs = /Requests\/sec:\s+([\d.]+)/.exec(wrk)?.[1] ?? '?';
process.stdout.write(`${/WRK .*/.exec(wrk)?.[0] ?? wrk}\nrandom entries of ${N}: ${reqs} req/s over ${values.connections} connections; ${await rss()}\n`);
const miss = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{time_total}', '-x', proxy, `${ORIGIN}/not-recorded`], { env });
process.stdout.write(`a missing URL: ${miss.stdout} (status, seconds)\n`);
await daemon.stop();
if (!values.keep && values.dir === undefined) await rm(dir, { recursive: true, force: true });
