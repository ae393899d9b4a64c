import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readNetlockRoot } from '../../src/netlock/file.ts';
import type { NetlockFileEntry } from '../../src/netlock/file.ts';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const CLI = join(ROOT, 'bin', 'fetch-oracle.js');

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, capturing output (bytes as latin1-safe strings via utf8). */
export function run(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { env: options.env ?? process.env, cwd: options.cwd ?? ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
    child.stdin.on('error', () => {}); // a child that never reads its stdin
    child.stdin.end(options.input ?? '');
  });
}

export function cli(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return run(process.execPath, [CLI, ...args], options);
}

/** A long-running CLI process (record/replay) that has printed its `listening` line. */
export interface Daemon {
  child: ChildProcess;
  url: string;
  admin: string | undefined;
  stderr(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** `under`: a command that runs the CLI's node process (e.g. strace and its flags); `stop` then signals that command. */
export function startDaemon(args: string[], env: NodeJS.ProcessEnv = process.env, under: readonly string[] = []): Promise<Daemon> {
  return new Promise((resolvePromise, reject) => {
    const argv = [...under, process.execPath, CLI, ...args];
    const child = spawn(argv[0]!, argv.slice(1), { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let settled = false;
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening (\S+)\n/.exec(out);
      const a = /admin (\S+)\n/.exec(out);
      if (m !== null && !settled && (a !== null || !args.includes('--admin'))) {
        settled = true;
        resolvePromise({
          child,
          url: m[1]!,
          admin: a?.[1],
          stderr: () => err,
          stop: async (signal = 'SIGTERM') => {
            if (child.exitCode === null) child.kill(signal);
            return exited;
          },
        });
      }
    });
    child.on('exit', (code) => {
      if (!settled) reject(new Error(`fetch-oracle ${args[0]} exited ${code} before listening:\n${err}`));
    });
  });
}

export async function tempDir(prefix = 'fo-test-'): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** The readable lines of the netlock file at `path` (a written netlock returns only its head). */
export async function netlockLines(path: string): Promise<NetlockFileEntry[]> {
  const { file } = await readNetlockRoot(path);
  if (file === undefined) throw new Error(`${path} holds no netlock file`);
  return file.entries;
}
