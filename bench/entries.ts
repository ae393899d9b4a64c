// Issue #15 benchmark: peak RSS and time of every command over one netlock of N entries (default 100,000),
// against the target "peak RSS <= 200 MB whatever the number of entries". A package-lock.json of N entries
// (4 KiB distinct bodies from a local origin, sha512 integrity) is seeded, and the netlock it makes is then
// replayed to its first answer, verified, listed (lockfile), exported as a CAR, imported into a fresh data directory with its readable
// file (import --netlock), collected (gc --dry-run) and shown (report --html).
// Usage: npm run bench:entries [-- --entries 100000 --concurrency 16 --keep DIR]
//
// Each command runs as users run it (`bin/fetch-oracle.js`: the bundle `npm ci` builds, or the sources
// through tsx when src/ is newer: the output says which), in its own process; its peak RSS and CPU time are
// the whole process's, start to exit (exit-usage.mjs: its own, not what it inherits from this one). The
// origin runs in a process of its own.
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, readFileSync } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { bundleIsFresh } from '../bin/bundle.js';
import { ProxyAgent, request } from 'undici';
import { CLI, peakRssMb, runFetchOracle, startBenchOrigin } from './cli-run.ts';
import type { CliRun } from './cli-run.ts';
import { entryBytes } from './package-bytes.ts';

const { values } = parseArgs({
  options: {
    entries: { type: 'string', default: '100000' },
    concurrency: { type: 'string', default: '16' },
    keep: { type: 'string' },
  },
});
const COUNT = Number(values.entries);
const TARGET_MB = 200;

interface Run extends CliRun {
  command: string;
  seconds: number;
}

/** `fetch-oracle ARGS` in its own process; its wall time, and its peak RSS and CPU from exit-usage.mjs. */
async function fetchOracle(dir: string, args: string[]): Promise<Run> {
  const started = performance.timeOrigin + performance.now();
  const run = await runFetchOracle(args, join(dir, 'usage.json'));
  return { ...run, command: args[0]!, seconds: (run.exitedAt - started) / 1000 };
}

/**
 * `fetch-oracle replay` of the netlock as a build starts it: the time from its start to its first answer (a
 * store opening its packs, the netlock's root read), that answer checked byte for byte, then stopped.
 */
async function replayFirstAnswer(netlock: string, data: string, url: string, body: Buffer): Promise<Run> {
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, 'replay', '--netlock', netlock, '--data', data, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let log = '';
    const proxy = await new Promise<string>((resolve, reject) => {
      const seen = (d: Buffer): void => {
        log += d.toString();
        const m = /replay proxy on (http:\/\/\S+)/.exec(log);
        if (m !== null) resolve(m[1]!);
      };
      child.stdout.on('data', seen);
      child.stderr.on('data', seen);
      child.once('exit', (code) => reject(new Error(`replay exited ${code} before it listened: ${log.slice(-2000)}`)));
    });
    const answer = await request(url, { dispatcher: new ProxyAgent(proxy) });
    const got = Buffer.from(await answer.body.arrayBuffer());
    if (answer.statusCode !== 200 || !got.equals(body)) throw new Error(`replay answered ${answer.statusCode} with ${got.byteLength} bytes that are not the recorded body`);
    const seconds = (performance.now() - started) / 1000;
    return { command: 'replay', seconds, out: '', exitedAt: 0, maxRssMb: await peakRssMb(child.pid!), cpuSeconds: cpuSecondsOf(child.pid!) };
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await once(child, 'exit');
  }
}

/** CPU time so far of a running process (utime + stime from /proc, in clock ticks of 1/100 s). */
function cpuSecondsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A file's SHA-256, read as a stream (two netlock files of 200,000 entries are 180 MB). */
async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The package-lock.json of COUNT entries; its own function, so that this process does not hold it while the commands run. */
async function writeLockfile(path: string, origin: string): Promise<void> {
  const packages: Record<string, unknown> = { '': { name: 'bench', version: '1.0.0' } };
  for (let i = 0; i < COUNT; i++) {
    packages[`node_modules/p${i}`] = { version: '1.0.0', resolved: `${origin}/entry/p${i}/-/p${i}-1.0.0.tgz`, integrity: `sha512-${createHash('sha512').update(entryBytes(i)).digest('base64')}` };
  }
  await writeFile(path, JSON.stringify({ name: 'bench', version: '1.0.0', lockfileVersion: 3, requires: true, packages }, null, 2));
}

const dir = values.keep ?? (await mkdtemp(join(tmpdir(), 'fo-bench-entries-')));
const { url: origin, process: originProc } = await startBenchOrigin();
try {
  const lockfile = join(dir, 'package-lock.json');
  await writeLockfile(lockfile, origin);
  const netlock = join(dir, 'netlock.json');
  const data = join(dir, 'data');
  const car = join(dir, 'netlock.car');
  const imported = join(dir, 'imported');
  await rm(data, { recursive: true, force: true });
  await rm(imported, { recursive: true, force: true });
  process.stdout.write(`fetch-oracle commands over one netlock of ${COUNT} entries (4 KiB bodies, distinct), Node ${process.version}\n`);
  process.stdout.write(`(${bundleIsFresh() ? 'the bundle, as installed' : 'the sources through tsx: src/ is newer than the bundle (npm run build)'})\n\n`);
  const runs: Run[] = [];
  const run = async (args: string[]): Promise<Run> => {
    const r = await fetchOracle(dir, args);
    runs.push(r);
    process.stdout.write(`${r.command.padEnd(9)} ${r.seconds.toFixed(2).padStart(7)} s   peak RSS ${r.maxRssMb.toFixed(0).padStart(4)} MB   CPU ${r.cpuSeconds.toFixed(2).padStart(6)} s\n`);
    return r;
  };
  const seeded = await run(['seed', '--netlock', netlock, '--data', data, '--concurrency', values.concurrency, '--json', lockfile]);
  const summary = JSON.parse(seeded.out) as { count: number };
  if (summary.count !== COUNT) throw new Error(`the netlock holds ${summary.count} of ${COUNT} entries`);
  // A build's replay starts by opening the store (its packs) and reading the netlock's root: until its first answer.
  const replayed = await replayFirstAnswer(netlock, data, `${origin}/entry/p0/-/p0-1.0.0.tgz`, entryBytes(0));
  runs.push(replayed);
  process.stdout.write(`${'replay'.padEnd(9)} ${replayed.seconds.toFixed(2).padStart(7)} s   peak RSS ${replayed.maxRssMb.toFixed(0).padStart(4)} MB   CPU ${replayed.cpuSeconds.toFixed(2).padStart(6)} s   (start to first answer)\n`);
  const verified = await run(['verify', netlock, '--data', data]);
  if (!/^OK: every signature, block and body verified/m.test(verified.out)) throw new Error(`verify: ${verified.out}`);
  await run(['lockfile', netlock, '--data', data, '--format', 'json', '--out', join(dir, 'pinned.json')]);
  await run(['export', '--car', car, netlock, '--data', data]);
  const carBytes = (await stat(car)).size;
  // With its readable file, as a user imports a netlock to replay it: the same bytes as the seeded one.
  const importedNetlock = join(dir, 'imported.netlock.json');
  await run(['import', car, '--data', imported, '--netlock', importedNetlock]);
  if ((await fileSha256(importedNetlock)) !== (await fileSha256(netlock))) throw new Error('import --netlock wrote another file than the netlock it imported');
  const gc = await run(['gc', '--dry-run', '--data', data]);
  if (!/would remove: 0 unreferenced block/.test(gc.out)) throw new Error(`gc would remove blocks of the netlock: ${gc.out}`);
  await run(['report', netlock, '--data', data, '--html', join(dir, 'report.html')]);
  const over = runs.filter((r) => r.maxRssMb > TARGET_MB);
  process.stdout.write(`\nCAR ${(carBytes / 1e6).toFixed(0)} MB. Peak RSS target <= ${TARGET_MB} MB: ${over.length === 0 ? 'met by every command' : `over it: ${over.map((r) => `${r.command} ${r.maxRssMb.toFixed(0)} MB`).join(', ')}`}\n`);
} finally {
  originProc.kill();
  if (values.keep === undefined) await rm(dir, { recursive: true, force: true });
}
