import { execFile, spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const HELPER_SOURCE = join(ROOT, 'guest', 'cmio', 'cmio-helper.c');
export const HOST_SIM_HELPER = join(ROOT, 'guest', 'dist', 'cmio-helper-host-sim');

/** Builds the host-simulation helper (guest/cmio/build.sh host) when it is missing or older than its source. */
export async function ensureHostSimHelper(): Promise<string> {
  const stale = !existsSync(HOST_SIM_HELPER) || statSync(HOST_SIM_HELPER).mtimeMs < statSync(HELPER_SOURCE).mtimeMs;
  if (stale) await promisify(execFile)('bash', [join(ROOT, 'guest', 'cmio', 'build.sh'), 'host'], { cwd: ROOT });
  return HOST_SIM_HELPER;
}

export interface HelperReply {
  status: number;
  data: Buffer;
}

/**
 * The cmio helper as a child process, driven frame by frame exactly as the guest shim drives it:
 * request `u32 BE length ‖ id`, reply `u32 BE status ‖ u32 BE length ‖ bytes`.
 */
export class HelperProcess {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<number | null>;
  stderr = '';
  #buffer = Buffer.alloc(0);
  #wake: (() => void) | undefined;
  #ended = false;

  constructor(path: string, env: NodeJS.ProcessEnv) {
    this.child = spawn(path, [], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = new Promise((r) => this.child.once('exit', (code) => r(code)));
    this.child.stdout.on('data', (d: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, d]);
      this.#notify();
    });
    this.child.stdout.on('end', () => {
      this.#ended = true;
      this.#notify();
    });
    this.child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.child.stdin.on('error', () => {});
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  async #read(n: number): Promise<Buffer> {
    while (this.#buffer.byteLength < n) {
      if (this.#ended) throw new Error(`helper stdout ended (stderr: ${this.stderr})`);
      await new Promise<void>((r) => (this.#wake = r));
    }
    const out = this.#buffer.subarray(0, n);
    this.#buffer = this.#buffer.subarray(n);
    return out;
  }

  /** Writes the request frame for `id` (or a raw frame) and reads one reply frame. */
  async request(id: Uint8Array, rawFrame?: Buffer): Promise<HelperReply> {
    let frame = rawFrame;
    if (frame === undefined) {
      frame = Buffer.alloc(4 + id.byteLength);
      frame.writeUInt32BE(id.byteLength, 0);
      frame.set(id, 4);
    }
    this.child.stdin.write(frame);
    const head = await this.#read(8);
    const data = Buffer.from(await this.#read(head.readUInt32BE(4)));
    return { status: head.readUInt32BE(0), data };
  }

  /** EOF on stdin; resolves with the exit code. */
  async end(): Promise<number | null> {
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}
