// What the benchmarks that run commands in processes of their own share: the benchmark origin
// (bench/origin-server.ts), a node process run to its exit, and `fetch-oracle` run as users run it
// (`bin/fetch-oracle.js`) with its whole process's peak RSS and CPU time (bench/exit-usage.mjs).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const EXIT_USAGE = pathToFileURL(join(import.meta.dirname, 'exit-usage.mjs')).href;
export const CLI = join(import.meta.dirname, '..', 'bin', 'fetch-oracle.js');
export const RUN_TS = join(import.meta.dirname, '..', 'bin', 'run-ts.js');

/** bench/origin-server.ts in a process of its own: its URL, and the process, to kill when done. */
export async function startBenchOrigin(): Promise<{ url: string; process: ChildProcess }> {
  const child = spawn(process.execPath, [RUN_TS, join(import.meta.dirname, 'origin-server.ts'), '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(/listening (\S+)/.exec(d.toString())![1]!)));
  return { url, process: child };
}

/** Runs `node FLAGS ARGS`; its stdout, and when it exited (ms since the epoch). A failed exit rejects with its stderr's end. */
export function runNode(args: string[], env: NodeJS.ProcessEnv = process.env, flags: readonly string[] = []): Promise<{ out: string; exitedAt: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...flags, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.on('exit', (code) => {
      const exitedAt = performance.timeOrigin + performance.now();
      if (code === 0) resolve({ out, exitedAt });
      else reject(new Error(`node ${args.join(' ')} exited ${code}: ${err}`));
    });
  });
}

/**
 * Peak RSS in MB of process `pid` (`self`: this one): VmHWM of its memory map. Not `maxRSS` of
 * `resourceUsage()`: for a spawned process Linux keeps the larger of its own peak and its parent's RSS at the
 * spawn (exit-usage.mjs says more).
 */
export async function peakRssMb(pid: number | 'self'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

export interface CliRun {
  out: string;
  exitedAt: number;
  maxRssMb: number;
  /** CPU time of the process (every thread), start to exit. */
  cpuSeconds: number;
}

/** `fetch-oracle ARGS` in a process of its own; `usageFile` is where exit-usage.mjs writes its usage. */
export async function runFetchOracle(args: string[], usageFile: string, flags: readonly string[] = []): Promise<CliRun> {
  await rm(usageFile, { force: true });
  const { out, exitedAt } = await runNode(['--import', EXIT_USAGE, CLI, ...args], { ...process.env, FO_BENCH_USAGE_FILE: usageFile }, flags);
  const usage = JSON.parse(await readFile(usageFile, 'utf8')) as { maxRssMb: number; cpuSeconds: number };
  return { out, exitedAt, ...usage };
}
