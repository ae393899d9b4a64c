/**
 * One `cartesi-jsonrpc-machine` process per run, on 127.0.0.1 and a port the kernel picks. The server says
 * which (`remote machine server bound to HOST:PORT` at log level info); the guest's console comes out of
 * its stdout (runtime_config console `to_stdout`) and goes to `console`. The server runs in its own process
 * group, which `kill()` ends as a whole; a process exit handler does the same, so no emulator outlives
 * the run on any failure.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';
import { throwIfAborted } from '../errors.ts';
import type { Logger } from '../log.ts';
import { MachineRpcError } from './machine-rpc-error.ts';

/** How long the server may take to say where it listens. */
export const SERVER_START_TIMEOUT_MS = 15_000;
const BOUND = /remote machine server bound to (\d+\.\d+\.\d+\.\d+):(\d+)/;

export interface JsonRpcServerInit {
  /** Path of cartesi-jsonrpc-machine. */
  emulator: string;
  /** Where the guest's console goes (the user's stderr). */
  console: Writable;
  logger: Logger;
  signal?: AbortSignal;
}

export class JsonRpcServer {
  readonly url: string;
  readonly pid: number;
  /** Resolves with the exit code (or signal name) when the server process has exited. */
  readonly exited: Promise<number | string>;
  readonly #child: ChildProcess;
  readonly #onExit: () => void;
  #killed = false;

  private constructor(child: ChildProcess, url: string, exited: Promise<number | string>, onExit: () => void) {
    this.#child = child;
    this.pid = child.pid!;
    this.url = url;
    this.exited = exited;
    this.#onExit = onExit;
  }

  /** Starts the server and waits until it listens. */
  static async start(init: JsonRpcServerInit): Promise<JsonRpcServer> {
    throwIfAborted(init.signal);
    const child = spawn(init.emulator, ['--server-address=127.0.0.1:0', '--log-level=info'], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const killGroup = (): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    process.on('exit', killGroup);
    const exited = new Promise<number | string>((r) => child.once('exit', (code, signal) => r(signal ?? code ?? -1)));
    void exited.then(() => process.off('exit', killGroup));
    child.stdout.pipe(init.console, { end: false });
    let said = '';
    const url = await new Promise<string>((resolvePromise, reject) => {
      let pending = '';
      const fail = (err: Error): void => {
        clearTimeout(timer);
        killGroup();
        reject(err);
      };
      const timer = setTimeout(() => fail(new MachineRpcError('spawn', `${init.emulator} did not start listening within ${SERVER_START_TIMEOUT_MS} ms: ${said.trim()}`)), SERVER_START_TIMEOUT_MS);
      child.once('error', (err) => fail(new MachineRpcError('spawn', `Cannot run ${init.emulator}: ${err.message}`, { cause: err })));
      void exited.then((how) => fail(new MachineRpcError('spawn', `${init.emulator} exited (${how}) before it listened: ${said.trim() || 'no message'}`)));
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (text: string) => {
        pending += text;
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) {
          said += `${line}\n`;
          const m = BOUND.exec(line);
          if (m !== null) {
            clearTimeout(timer);
            resolvePromise(`http://${m[1]}:${m[2]}`);
          } else if (!/ info /.test(line) && line.trim() !== '') {
            init.logger.warn('%s', line);
          }
        }
      });
      init.signal?.addEventListener('abort', () => fail(new MachineRpcError('spawn', 'aborted while the emulator started')), { once: true });
    });
    return new JsonRpcServer(child, url, exited, killGroup);
  }

  /** Kills the server's whole process group at once. Idempotent. */
  kill(): void {
    if (this.#killed) return;
    this.#killed = true;
    this.#onExit();
  }

  /** Kills the server and waits until it has exited. Idempotent. */
  async close(): Promise<void> {
    this.kill();
    if (this.#child.exitCode === null && this.#child.signalCode === null) await this.exited;
  }
}
