// Issue #6 benchmark: the guest shim over the SIMULATED dehashing device (unix socket; the real cmio
// helper framing, the real host responder). Prints bytes per round trip, round trips per MiB of body,
// block fetches per lookup in a 100,000-entry netlock, and requests/s for 4 KiB bodies, guest vs host replay.
// Usage: node bin/run-ts.js bench/guest.ts [--small 500 --big-mib 64]
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { ProxyAgent, request } from 'undici';
import { startGioSimulator } from '../src/machine/sim/gio-simulator.ts';
import { CachingBlockSource } from '../src/protocol/blocks.ts';
import { buildNetlock, NetlockReader } from '../src/netlock/dag.ts';
import { FsBlockStore } from '../src/store/fs-block-store.ts';
import { MemoryBlockStore } from '../src/store/memory-block-store.ts';
import { startTestOracle } from '../test/helpers/oracle.ts';
import { startOrigin } from '../test/helpers/origin.ts';
import { ROOT, run } from '../test/helpers/run.ts';

const { values } = parseArgs({ options: { small: { type: 'string', default: '500' }, 'big-mib': { type: 'string', default: '64' } } });
const SMALL = Number(values.small);
const BIG = Number(values['big-mib']) * 1024 * 1024;
const dir = await mkdtemp(join(tmpdir(), 'fo-bench-guest-'));
const built = await run('bash', [join(ROOT, 'guest', 'build.sh'), 'host']);
if (built.code !== 0) throw new Error(built.stderr);

const origin = await startOrigin();
const small = Buffer.alloc(4096, 3);
origin.route('/small', (_q, r) => {
  r.writeHead(200, { 'content-length': '4096' });
  r.end(small);
});
origin.route('/big', async (_q, r) => {
  r.writeHead(200, { 'content-length': String(BIG) });
  const block = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < BIG; i += block.length) {
    block.writeUInt32BE(i / block.length, 0);
    if (!r.write(Buffer.from(block))) await new Promise((d) => r.once('drain', d));
  }
  r.end();
});
const data = join(dir, 'data');
const netlockPath = join(dir, 'g.json');
const rec = await startTestOracle({ mode: 'record', dataDir: data, netlockPath });
await rec.fetch(`${origin.url}/big`);
for (let i = 0; i < SMALL; i++) await rec.fetch(`${origin.url}/small?i=${i}`);
const file = (await rec.oracle.close())!;
await rec.close();

const sim = await startGioSimulator({ socketPath: join(dir, 'gio.sock'), source: new FsBlockStore(data) });
const guest = spawn(process.execPath, [join(ROOT, 'guest', 'dist', 'fetch-oracle-guest.mjs'), 'serve', '--netlock-root', file.netlock, '--trust', file.oracles[0]!, '--ca-dir', join(data, 'ca'), '--listen', '127.0.0.1:0', '--helper', join(ROOT, 'guest', 'dist', 'cmio-helper-host-sim')], {
  env: { ...process.env, CMIO_SIM_SOCKET: sim.socketPath },
  stdio: ['ignore', 'pipe', 'inherit'],
});
const guestUrl = await new Promise<string>((resolve) => guest.stdout.once('data', (d: Buffer) => resolve(/listening (\S+)/.exec(d.toString())![1]!)));

async function get(proxy: ProxyAgent, url: string): Promise<number> {
  const res = await request(url, { dispatcher: proxy });
  let n = 0;
  for await (const c of res.body) n += (c as Buffer).byteLength;
  return n;
}

const agent = new ProxyAgent({ uri: guestUrl, proxyTunnel: false, connections: 8 });
let before = { ...sim.stats };
const t = performance.now();
const got = await get(agent, `${origin.url}/big`);
const bigSeconds = (performance.now() - t) / 1000;
const bigTrips = sim.stats.requests - before.requests;
const bigBytes = sim.stats.bytes - before.bytes;
if (got !== BIG) throw new Error(`guest served ${got} of ${BIG} bytes`);

async function manySmall(proxyUrl: string): Promise<number> {
  const a = new ProxyAgent({ uri: proxyUrl, proxyTunnel: false, connections: 8 });
  const start = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < SMALL) await get(a, `${origin.url}/small?i=${next++}`);
  }));
  await a.close();
  return SMALL / ((performance.now() - start) / 1000);
}
before = { ...sim.stats };
const guestRps = await manySmall(guestUrl);
const smallTrips = (sim.stats.requests - before.requests) / SMALL;
const host = await startTestOracle({ mode: 'replay', dataDir: data, netlockPath });
const hostRps = await manySmall(host.proxyUrl);
await host.close();

// Lookup cost in a 100,000-entry netlock, through the same reader and cache the guest uses (cold cache).
const mem = new MemoryBlockStore();
const entries = [];
for (let i = 0; i < 100_000; i++) {
  entries.push({ key: `https://registry.example/pkg-${String(i).padStart(6, '0')}\nGET\naccept=*/*\nbody=`, signed: { record: CID.createV1(0x71, await sha256.digest(Buffer.from(String(i)))), signature: new Uint8Array(64) } });
}
const big = await buildNetlock(entries, [], mem);
const cold = new CachingBlockSource(mem, 64 * 1024 * 1024);
const reader = new NetlockReader(big.root, cold);
await reader.lookup(entries[0]!.key);
const firstLookup = cold.fetches;
await reader.lookup(entries[77_777]!.key);
const secondLookup = cold.fetches - firstLookup;

guest.kill('SIGTERM');
await new Promise((r) => guest.once('exit', r));
await sim.close();
await origin.close();
await rm(dir, { recursive: true, force: true });
process.stdout.write(`guest shim over the simulated device (${SMALL} x 4 KiB, one ${BIG / 1048576} MiB body)

big body: ${(BIG / 1e6 / bigSeconds).toFixed(0)} MB/s, ${bigTrips} round trips, ${(bigBytes / bigTrips / 1024).toFixed(0)} KiB per round trip, ${(bigTrips / (BIG / 1048576)).toFixed(3)} round trips per MiB (target: 1 per MiB + O(log n))
4 KiB requests: guest ${guestRps.toFixed(0)} req/s vs host replay ${hostRps.toFixed(0)} req/s; ${smallTrips.toFixed(2)} round trips per request (record + body + index pages until cached)
100,000-entry netlock: ${firstLookup} block fetches for the first lookup (root + index levels + leaf), ${secondLookup} for the next (upper levels cached)
`);
