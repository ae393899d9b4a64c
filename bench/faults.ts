// Fault and load probe (issue #13's long cases; the fast ones are tests in test/faults/). Prints markdown tables
// for docs/reliability.md. Everything talks to 127.0.0.1 only, and every loop is bounded in count and time.
//   node bin/run-ts.js bench/faults.ts [--kills 100] [--load-seconds 60] [--clients 64] [--malformed 10000]
//                                      [--only kills,load,malformed,tamper]
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { cp, mkdtemp, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as dagPb from '@ipld/dag-pb';
import { CID } from 'multiformats/cid';
import { ProxyAgent, request } from 'undici';
import { pseudoRandomChunks, startOrigin } from '../test/helpers/origin.ts';
import type { Origin } from '../test/helpers/origin.ts';
import { cli, startDaemon } from '../test/helpers/run.ts';
import type { Daemon } from '../test/helpers/run.ts';
import { createTestCa } from '../test/helpers/test-ca.ts';
import { peakRssMb } from './cli-run.ts';

const { values } = parseArgs({
  options: {
    kills: { type: 'string', default: '100' },
    'load-seconds': { type: 'string', default: '60' },
    clients: { type: 'string', default: '64' },
    malformed: { type: 'string', default: '10000' },
    only: { type: 'string', default: 'kills,load,malformed,tamper' },
  },
});
const ONLY = new Set(values.only.split(','));
const out = (s: string): void => void process.stdout.write(s);
const dir = await mkdtemp(join(tmpdir(), 'fo-faults-'));
const env = { PATH: process.env['PATH'] ?? '', HOME: dir };

// Origins: every path /b/SIZE/SEED answers SIZE pseudo-random bytes of SEED, so any client can check a body.
const ca = await createTestCa();
const caFile = join(dir, 'origin-ca.pem');
await writeFile(caFile, ca.caPem);
const origins: Origin[] = [await startOrigin(), await startOrigin(await ca.leafFor(['127.0.0.1']))];
const digests = new Map<string, string>();
function expectedSha(size: number, seed: number): string {
  const id = `${size}/${seed}`;
  let d = digests.get(id);
  if (d === undefined) {
    const h = createHash('sha256');
    for (const c of pseudoRandomChunks(size, seed)) h.update(c);
    d = h.digest('hex');
    digests.set(id, d);
  }
  return d;
}
// Bodies are served by each origin's catch-all route.
for (const o of origins) {
  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const m = /^\/b\/(\d+)\/(\d+)/.exec(req.url ?? '');
    if (m === null) {
      res.writeHead(404).end();
      return;
    }
    const size = Number(m[1]);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
    for (const chunk of pseudoRandomChunks(size, Number(m[2]))) if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
    res.end();
  };
  o.route('*', route);
}
function bodyUrl(https: boolean, size: number, seed: number): string {
  return `${origins[https ? 1 : 0]!.url}/b/${size}/${seed}`;
}

interface Fetched {
  status: number;
  sha: string;
  bytes: number;
  ms: number;
}
async function fetchVia(agent: ProxyAgent, url: string, signal?: AbortSignal): Promise<Fetched> {
  const t = performance.now();
  const res = await request(url, { dispatcher: agent, ...(signal === undefined ? {} : { signal }) });
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of res.body) {
    h.update(c as Buffer);
    bytes += (c as Buffer).byteLength;
  }
  return { status: res.statusCode, sha: h.digest('hex'), bytes, ms: performance.now() - t };
}
function agentFor(daemon: Daemon, proxyCaPem: string, connections = 8): ProxyAgent {
  return new ProxyAgent({ uri: daemon.url, connections, requestTls: { ca: [proxyCaPem] } });
}
function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
let seedCounter = 1_000;

async function recordDaemon(data: string, netlock: string, extra: string[] = []): Promise<Daemon> {
  return startDaemon(['record', '--listen', '127.0.0.1:0', '--data', data, '--netlock', netlock, '--upstream-ca', caFile, ...extra], env);
}

// ---- 1. kill -9 mid-record ------------------------------------------------------------------------------
async function killTrials(n: number): Promise<void> {
  const data = join(dir, 'kill-data');
  const totals = { trials: 0, completed: 0, recovered: 0, missing: 0, wrongRecord: 0, wrongReplay: 0, verifyFailed: 0, recoverFailed: 0, noNetlock: 0 };
  const started = performance.now();
  for (let t = 0; t < n; t++) {
    const https = t % 2 === 1;
    const large = t % 3 === 0;
    const netlock = join(dir, `kill-${t}.netlock.json`);
    const rec = await recordDaemon(data, netlock);
    const proxyCa = await readFile(join(data, 'ca', 'ca-cert.pem'), 'utf8');
    const agent = agentFor(rec, proxyCa);
    const sizes = large ? [16 * 1024 * 1024, 16 * 1024 * 1024, 4096, 4096, 65536, 4096] : [4096, 16384, 65536, 4096, 16384, 4096];
    const reqs = sizes.map((size) => ({ size, seed: seedCounter++, url: '' }));
    for (const r of reqs) r.url = bodyUrl(https, r.size, r.seed);
    const done: Array<{ url: string; ok: boolean }> = [];
    const inflight = reqs.map(async (r, i) => {
      await sleep(i * 3);
      try {
        const f = await fetchVia(agent, r.url);
        const complete = f.status === 200 && f.bytes === r.size;
        if (complete && f.sha !== expectedSha(r.size, r.seed)) totals.wrongRecord++;
        done.push({ url: r.url, ok: complete && f.sha === expectedSha(r.size, r.seed) });
      } catch {
        done.push({ url: r.url, ok: false });
      }
    });
    // Small bodies complete within tens of ms, the 16 MiB ones within about a second: kills land before, during and after.
    await sleep(Math.floor(Math.random() * (large ? 2500 : 150)));
    rec.child.kill('SIGKILL');
    await rec.stop();
    await Promise.allSettled(inflight);
    await agent.close().catch(() => undefined);
    const completed = done.filter((d) => d.ok).map((d) => d.url);
    totals.trials++;
    totals.completed += completed.length;
    const recovered = await cli(['recover', '--netlock', netlock, '--data', data], { env });
    if (recovered.code !== 0 && !/nothing to recover/.test(recovered.stderr)) totals.recoverFailed++;
    let file: { entries: Array<{ url: string }> } | undefined;
    try {
      file = JSON.parse(await readFile(netlock, 'utf8')) as { entries: Array<{ url: string }> };
    } catch {
      file = undefined;
    }
    if (file === undefined) {
      totals.noNetlock += completed.length > 0 ? 1 : 0;
      totals.missing += completed.length;
      continue;
    }
    const verified = await cli(['verify', netlock, '--data', data], { env });
    if (verified.code !== 0) totals.verifyFailed++;
    const inFile = new Set(file.entries.map((e) => e.url));
    for (const u of completed) if (!inFile.has(u)) totals.missing++;
    const rep = await startDaemon(['replay', '--listen', '127.0.0.1:0', '--data', data, '--netlock', netlock], env);
    const ragent = agentFor(rep, proxyCa);
    for (const r of reqs) {
      if (!inFile.has(r.url)) continue;
      const f = await fetchVia(ragent, r.url).catch(() => undefined);
      if (f !== undefined && f.status === 200 && f.sha !== expectedSha(r.size, r.seed)) totals.wrongReplay++;
      else if (f !== undefined && f.status === 200 && completed.includes(r.url)) totals.recovered++;
    }
    await ragent.close();
    await rep.stop();
  }
  out(`\n### kill -9 mid-record (${n} trials, ${((performance.now() - started) / 1000).toFixed(0)} s)\n\n`);
  out('| trials | requests complete before the kill | of those in the recovered netlock and replayed byte-exact | missing | wrong bytes (record) | wrong bytes (replay) | verify failures | recover failures |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n');
  out(`| ${totals.trials} | ${totals.completed} | ${totals.recovered} | ${totals.missing} | ${totals.wrongRecord} | ${totals.wrongReplay} | ${totals.verifyFailed} | ${totals.recoverFailed} |\n`);
}

// ---- 2. 64 clients x 60 s, record then replay ---------------------------------------------------------
async function load(clients: number, seconds: number): Promise<void> {
  const data = join(dir, 'load-data');
  const netlock = join(dir, 'load.netlock.json');
  const pool = Array.from({ length: 2_000 }, (_, i) => ({ https: i % 4 === 0, size: [4096, 16384, 65536][i % 3]!, seed: 50_000 + i }));
  out(`\n### ${clients} clients x ${seconds} s (pool of ${pool.length} URLs, 4-64 KiB, a quarter over HTTPS)\n\n`);
  out('| mode | requests | req/s | errors | wrong bytes | p50 ms | p99 ms | peak RSS MB |\n|---|---:|---:|---:|---:|---:|---:|---:|\n');
  const recorded = new Set<number>();
  for (const mode of ['record', 'replay'] as const) {
    // Replay asks only for what the record phase completed: anything else is an (explained) miss by design.
    const urls = mode === 'record' ? pool.map((_, k) => k) : [...recorded];
    const daemon = mode === 'record' ? await recordDaemon(data, netlock) : await startDaemon(['replay', '--listen', '127.0.0.1:0', '--data', data, '--netlock', netlock], env);
    const proxyCa = await readFile(join(data, 'ca', 'ca-cert.pem'), 'utf8');
    const agent = agentFor(daemon, proxyCa, clients);
    const deadline = performance.now() + seconds * 1000;
    const lat: number[] = [];
    let errors = 0;
    let wrong = 0;
    let i = 0;
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (performance.now() < deadline) {
          const k = urls[(i++ * 7919) % urls.length]!;
          const p = pool[k]!;
          try {
            const f = await fetchVia(agent, bodyUrl(p.https, p.size, p.seed), AbortSignal.timeout(30_000));
            if (f.status !== 200) errors++;
            else if (f.sha !== expectedSha(p.size, p.seed)) wrong++;
            else recorded.add(k);
            lat.push(f.ms);
          } catch {
            errors++;
          }
        }
      }),
    );
    lat.sort((a, b) => a - b);
    const rss = await peakRssMb(daemon.child.pid!);
    await agent.close();
    await daemon.stop('SIGTERM');
    out(`| ${mode} | ${lat.length} | ${(lat.length / seconds).toFixed(0)} | ${errors} | ${wrong} | ${percentile(lat, 50).toFixed(1)} | ${percentile(lat, 99).toFixed(1)} | ${rss.toFixed(0)} |\n`);
  }
}

// ---- 3. malformed and hostile requests ------------------------------------------------------------------
const MALFORMED: Array<(n: number) => string | Buffer> = [
  () => 'GET\r\n\r\n',
  () => 'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
  () => 'GET http://127.0.0.1:1/ HTTP/1.1\r\n\r\n',
  () => `GET http://${'a'.repeat(70_000)}/ HTTP/1.1\r\n\r\n`,
  () => `GET http://127.0.0.1/ HTTP/1.1\r\n${'x-h: 1\r\n'.repeat(400)}\r\n`,
  () => 'CONNECT nowhere HTTP/1.1\r\n\r\n',
  () => 'CONNECT 127.0.0.1:99999 HTTP/1.1\r\n\r\n',
  () => 'CONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n\x16\x03\x01\x00\x05hello',
  () => 'CONNECT 127.0.0.1:80 HTTP/1.1\r\n\r\nGARBAGE\r\n\r\n',
  () => 'POST http://127.0.0.1:1/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
  () => 'POST http://127.0.0.1:1/ HTTP/1.1\r\nContent-Length: 10\r\nContent-Length: 11\r\n\r\n0123456789',
  () => 'GET http://127.0.0.1:1/ HTTP/9.9\r\n\r\n',
  () => 'G\0T http://x/ HTTP/1.1\r\n\r\n',
  () => 'GET ftp://127.0.0.1/x HTTP/1.1\r\n\r\n',
  () => 'GET http://[::1/ HTTP/1.1\r\n\r\n',
  () => 'GET http://127.0.0.1:1/%zz%00 HTTP/1.1\r\n\r\n',
  (n) => Buffer.from(Array.from({ length: 64 + (n % 512) }, (_, i) => (i * 131 + n * 17) & 0xff)),
  () => 'GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: a\r\nHost: b\r\nExpect: 100-continue\r\n\r\n',
  () => 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
  () => '\r\n\r\n\r\n',
];
async function malformed(total: number): Promise<void> {
  const data = join(dir, 'malformed-data');
  const rec = await recordDaemon(data, join(dir, 'malformed.netlock.json'));
  const { port } = new URL(rec.url);
  const rssBefore = await peakRssMb(rec.child.pid!);
  const answers = MALFORMED.map(() => new Map<string, number>());
  let sent = 0;
  const started = performance.now();
  const deadline = started + 10 * 60 * 1000;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (sent < total && performance.now() < deadline && rec.child.exitCode === null) {
        const n = sent++;
        const payload = MALFORMED[n % MALFORMED.length]!(n);
        const first = await new Promise<string>((resolve) => {
          const s = connect(Number(port), '127.0.0.1');
          let got = '';
          const finish = (what: string): void => {
            s.destroy();
            resolve(what);
          };
          s.setTimeout(2_000, () => finish(got === '' ? 'no answer (2 s)' : got));
          s.on('data', (d: Buffer) => {
            got = /^HTTP\/1\.1 (\d{3})/.exec(d.toString('latin1'))?.[1] ?? 'bytes';
            if (got !== '200') finish(got);
          });
          s.on('error', () => finish(got === '' ? 'reset' : got));
          s.on('close', () => finish(got === '' ? 'closed' : got));
          s.write(payload);
        });
        const kind = answers[n % MALFORMED.length]!;
        kind.set(first, (kind.get(first) ?? 0) + 1);
      }
    }),
  );
  const crashed = rec.child.exitCode !== null;
  const proxyCa = await readFile(join(data, 'ca', 'ca-cert.pem'), 'utf8');
  const agent = agentFor(rec, proxyCa);
  const after = crashed ? undefined : await fetchVia(agent, bodyUrl(false, 4096, 7)).catch(() => undefined);
  await agent.close();
  const rssAfter = await peakRssMb(rec.child.pid!);
  await rec.stop();
  out(`\n### ${sent} malformed or hostile requests (${MALFORMED.length} kinds, 32 at a time, ${((performance.now() - started) / 1000).toFixed(0)} s)\n\n`);
  out(`| crashes | good request afterwards | peak RSS before / after MB |\n|---:|---|---|\n`);
  out(`| ${crashed ? 1 : 0} | ${after?.status === 200 && after.sha === expectedSha(4096, 7) ? '200, right bytes' : 'FAILED'} | ${rssBefore.toFixed(0)} / ${rssAfter.toFixed(0)} |\n\n`);
  out('| kind | first answers (status line, or what the socket did) |\n|---|---|\n');
  MALFORMED.forEach((make, k) => {
    const sample = make(k).toString('latin1').slice(0, 60).replace(/\r/g, '\\r').replace(/\n/g, '\\n').replace(/[^\x20-\x7e]/g, '.').replace(/\|/g, '\\|');
    out(`| \`${sample}\` | ${[...answers[k]!].map(([a, v]) => `${a}: ${v}`).join(', ')} |\n`);
  });
}

// ---- 4. tampering matrix --------------------------------------------------------------------------------
function blockPath(data: string, cid: string): string {
  return join(data, 'blocks', cid.slice(-2), cid);
}
async function flipByte(path: string, at = 0): Promise<void> {
  const bytes = await readFile(path);
  bytes[Math.min(at, bytes.byteLength - 1)]! ^= 0xff;
  await writeFile(path, bytes);
}
async function tamper(): Promise<void> {
  const base = join(dir, 'tamper-base');
  const data = join(base, 'data');
  const netlock = join(base, 'netlock.json');
  const rec = await recordDaemon(data, netlock);
  const proxyCa = await readFile(join(data, 'ca', 'ca-cert.pem'), 'utf8');
  const agent = agentFor(rec, proxyCa);
  const small = { size: 4096, seed: 901 };
  const big = { size: 3 * 1024 * 1024, seed: 902 };
  for (const b of [small, big]) await fetchVia(agent, bodyUrl(false, b.size, b.seed));
  await agent.close();
  await rec.stop('SIGTERM');
  const file = JSON.parse(await readFile(netlock, 'utf8')) as { entries: Array<{ url: string; body: string; record: string; signature: string; sha256: string }> };
  const entry = (b: { size: number; seed: number }): (typeof file.entries)[number] => file.entries.find((e) => e.url.endsWith(`/b/${b.size}/${b.seed}`))!;
  const bigRoot = CID.parse(entry(big).body);
  const leaves = dagPb.decode(await readFile(blockPath(data, bigRoot.toString()))).Links.map((l) => l.Hash.toString());
  const editJson = (edit: (e: (typeof file.entries)[number]) => void) => async (d: string, n: string): Promise<void> => {
    void d;
    const f = JSON.parse(await readFile(n, 'utf8')) as typeof file;
    edit(f.entries.find((e) => e.url.endsWith(`/b/${small.size}/${small.seed}`))!);
    await writeFile(n, JSON.stringify(f, null, 2));
  };
  const cases: Array<{ name: string; apply: (d: string, n: string) => Promise<void> }> = [
    { name: 'flip a byte of a one-block body', apply: (d) => flipByte(blockPath(d, entry(small).body), 100) },
    { name: 'flip a byte of a leaf of a 3 MiB body', apply: (d) => flipByte(blockPath(d, leaves[1]!), 5) },
    { name: 'truncate a leaf', apply: (d) => truncate(blockPath(d, leaves[2]!), 1000) },
    { name: 'delete a leaf', apply: (d) => unlink(blockPath(d, leaves[0]!)) },
    { name: 'flip a byte of the body DAG root', apply: (d) => flipByte(blockPath(d, bigRoot.toString()), 10) },
    { name: 'flip a byte of a record block', apply: (d) => flipByte(blockPath(d, entry(small).record), 20) },
    { name: 'delete a record block', apply: (d) => unlink(blockPath(d, entry(small).record)) },
    { name: 'netlock.json: other body CID', apply: editJson((e) => (e.body = entry(big).body)) },
    { name: 'netlock.json: other record CID', apply: editJson((e) => (e.record = entry(big).record)) },
    { name: 'netlock.json: other signature', apply: editJson((e) => (e.signature = entry(big).signature)) },
    { name: 'netlock.json: other sha256', apply: editJson((e) => (e.sha256 = entry(big).sha256)) },
  ];
  out('\n### Tampering matrix (a copy of the data directory and netlock per case)\n\n');
  out('| case | verify | replay of the tampered entry |\n|---|---|---|\n');
  for (const c of cases) {
    const copy = join(dir, `tamper-${cases.indexOf(c)}`);
    await cp(base, copy, { recursive: true });
    const d = join(copy, 'data');
    const n = join(copy, 'netlock.json');
    await c.apply(d, n);
    const verified = await cli(['verify', n, '--data', d], { env });
    let replay = 'not started';
    try {
      const rep = await startDaemon(['replay', '--listen', '127.0.0.1:0', '--data', d, '--netlock', n], env);
      const ragent = agentFor(rep, proxyCa);
      const results: string[] = [];
      for (const b of [small, big]) {
        const f = await fetchVia(ragent, bodyUrl(false, b.size, b.seed)).catch((err: Error) => ({ status: -1, sha: err.message, bytes: 0, ms: 0 }));
        const right = f.status === 200 && f.sha === expectedSha(b.size, b.seed);
        results.push(f.status === 200 ? (right ? '200 right bytes' : '**200 WRONG BYTES**') : f.status === -1 ? 'transfer failed' : String(f.status));
      }
      replay = results.join(' / ');
      await ragent.close();
      await rep.stop();
    } catch (err) {
      replay = `refused at start: ${(err as Error).message.split('\n').find((l) => l.includes('ORACLE_ERR')) ?? 'exited'}`;
    }
    const code = /ORACLE_ERR_[A-Z_]+/.exec(verified.stdout + verified.stderr)?.[0] ?? '';
    out(`| ${c.name} | ${verified.code === 0 ? '**OK (not detected)**' : `exit ${verified.code} ${code}`} | ${replay} |\n`);
    await rm(copy, { recursive: true, force: true });
  }
}

out(`# fetch-oracle fault and load probe, Node ${process.version}, ${new Date().toISOString()}\n`);
try {
  if (ONLY.has('kills')) await killTrials(Number(values.kills));
  if (ONLY.has('load')) await load(Number(values.clients), Number(values['load-seconds']));
  if (ONLY.has('malformed')) await malformed(Number(values.malformed));
  if (ONLY.has('tamper')) await tamper();
} finally {
  for (const o of origins) await o.close();
  await rm(dir, { recursive: true, force: true });
}
