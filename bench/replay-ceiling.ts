// Issue #15: how far one core can go. Serves the harness's objects (4 KiB, 10 MiB, 100 MiB) from nginx (its
// own files, sendfile: the origin column of `../shared/bench/anchors`) and from a bare Node `http` server
// (`ceiling-server.mjs`) in three modes: from memory, read from the file, and read + SHA-256 of every 1 MiB
// piece (what replay must do to check every block against its CID on every read). Same placement as the
// harness: each server on CPU 0, wrk on CPU 1. Prints a markdown table, medians of --reps, ratios to nginx.
// Usage: node bin/run-ts.js bench/replay-ceiling.ts [--seconds 5] [--reps 2]   (needs nginx, wrk, taskset)
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, reps: { type: 'string', default: '2' } } });
const SECONDS = Number(values.seconds);
const REPS = Number(values.reps);
const PORT = 18950;
const MIB = 1024 * 1024;
const OBJECTS = [
  { name: 'f4k', bytes: 4096, conns: [1, 16, 64], unit: 'req/s' },
  { name: 'f10m', bytes: 10 * MIB, conns: [1, 4], unit: 'MB/s' },
  { name: 'f100m', bytes: 100 * MIB, conns: [1, 4], unit: 'MB/s' },
] as const;
const SERVERS = ['nginx', 'node mem', 'node read', 'node verify'] as const;
type ServerName = (typeof SERVERS)[number];

const dir = await mkdtemp(join(tmpdir(), 'fo-ceiling-'));
await chmod(dir, 0o755); // nginx's workers run as another user
const data = join(dir, 'data');
await mkdir(data, { mode: 0o755 });
const digests = new Map<string, string>();
for (const o of OBJECTS) {
  const bytes = randomBytes(o.bytes);
  digests.set(o.name, createHash('sha256').update(bytes).digest('hex'));
  await writeFile(join(data, o.name), bytes, { mode: 0o644 });
}
const conf = join(dir, 'nginx.conf');
// The harness's static server (conf/nginx-static.conf.in), trimmed to what serving files needs.
await writeFile(conf, `worker_processes 1; daemon off; master_process on; pid ${dir}/nginx.pid; error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http { default_type application/octet-stream; access_log off; sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 65; keepalive_requests 1000000; client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  server { listen 127.0.0.1:${PORT}; root ${data}; } }
`);
const lua = join(dir, 'report.lua');
await writeFile(lua, `function done(s, l, r) io.write(string.format('RESULT %d %d %.0f\\n', s.requests, s.duration, s.bytes)) end\n`);

function start(server: ServerName): ChildProcess {
  const argv = server === 'nginx' ? ['nginx', '-c', conf] : [process.execPath, join(import.meta.dirname, 'ceiling-server.mjs'), server.slice(5), data, String(PORT)];
  return spawn('taskset', ['-c', '0', ...argv], { stdio: ['ignore', 'ignore', 'inherit'] });
}

async function listening(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(PORT, '127.0.0.1', () => (s.end(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${PORT}`);
}

/** Every object served whole and byte for byte before a server is measured (an error page is fast too). */
async function verifyServed(server: ServerName): Promise<void> {
  for (const o of OBJECTS) {
    const res = await fetch(`http://127.0.0.1:${PORT}/${o.name}`);
    const got = createHash('sha256').update(Buffer.from(await res.arrayBuffer())).digest('hex');
    if (res.status !== 200 || got !== digests.get(o.name)) throw new Error(`${server} served ${o.name} wrong: status ${res.status}, sha256 ${got}`);
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

interface Result {
  requests: number;
  seconds: number;
  bytes: number;
}

async function wrk(name: string, conns: number): Promise<Result> {
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn('taskset', ['-c', '1', 'wrk', '-t1', `-c${conns}`, `-d${SECONDS}s`, '--timeout', '60s', '-s', lua, `http://127.0.0.1:${PORT}/${name}`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.on('error', reject);
    child.on('exit', () => resolve(text));
  });
  const m = /RESULT (\d+) (\d+) (\d+)/.exec(out);
  if (m === null) throw new Error(`wrk gave no result for ${name} c=${conns}:\n${out}`);
  return { requests: Number(m[1]), seconds: Number(m[2]) / 1e6, bytes: Number(m[3]) };
}

const results = new Map<string, number[]>();
const key = (server: ServerName, name: string, conns: number): string => `${server}|${name}|${conns}`;
try {
  for (let rep = 0; rep < REPS; rep++) {
    // Interleaved like the harness: one server at a time, every case, then the next.
    for (const server of rep % 2 === 0 ? SERVERS : [...SERVERS].reverse()) {
      const child = start(server);
      try {
        await listening();
        await verifyServed(server);
        await wrk('f4k', 16); // warm-up (JIT)
        for (const o of OBJECTS) {
          for (const c of o.conns) {
            const r = await wrk(o.name, c);
            const value = o.unit === 'req/s' ? r.requests / r.seconds : r.bytes / r.seconds / 1e6;
            const k = key(server, o.name, c);
            results.set(k, [...(results.get(k) ?? []), value]);
          }
        }
      } finally {
        await stop(child);
      }
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (x: number): string => Math.round(x).toLocaleString('en-US');
process.stdout.write(`One core per server (CPU 0), wrk on CPU 1, ${SECONDS} s per run, median of ${REPS}; (ratio to nginx)\n\n`);
process.stdout.write(`| object | ${SERVERS.join(' | ')} |\n|---|${SERVERS.map(() => '---:').join('|')}|\n`);
for (const o of OBJECTS) {
  for (const c of o.conns) {
    const base = median(results.get(key('nginx', o.name, c))!);
    const cells = SERVERS.map((s) => {
      const v = median(results.get(key(s, o.name, c))!);
      return s === 'nginx' ? fmt(v) : `${fmt(v)} (${(v / base).toFixed(2)})`;
    });
    process.stdout.write(`| ${o.name} ${o.unit}, ${c} conn${c > 1 ? 's' : ''} | ${cells.join(' | ')} |\n`);
  }
}
