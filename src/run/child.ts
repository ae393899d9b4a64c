import { spawn } from 'node:child_process';
import { constants } from 'node:os';

/** Signals `fetch-oracle run` passes on to the command instead of dying from them. */
export const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const;

export interface ChildExit {
  /** The exit code a shell would report: the code, or 128 + signal number if a signal ended the command. */
  code: number;
  signal: NodeJS.Signals | null;
  /** The command could not be started at all (ENOENT, EACCES…): code is then 127 or 126. */
  spawnError?: Error;
}

export function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0));
}

/**
 * Runs `command` with inherited stdio and `env`, forwarding SIGINT/SIGTERM/SIGHUP/SIGQUIT to it while it
 * runs (this process does not die from them meanwhile), and resolves with its exit status.
 */
export function runForwardingSignals(
  command: readonly string[],
  env: NodeJS.ProcessEnv,
  onSignal?: (signal: NodeJS.Signals) => void,
  /** Where the command's stdout goes: inherited, or this process's stderr (fd 2) when stdout is kept for a result. @default 'inherit' */
  stdout: 'inherit' | 'stderr' = 'inherit',
): Promise<ChildExit> {
  const [file, ...args] = command;
  if (file === undefined) return Promise.reject(new Error('No command to run'));
  return new Promise((resolve) => {
    // The handlers before the spawn: a signal between the two killed this process, not the command, which
    // may already be running. Their callbacks run once this block is done, so the child is there.
    const handlers = new Map<NodeJS.Signals, () => void>();
    for (const signal of FORWARDED_SIGNALS) {
      const handler = (): void => {
        onSignal?.(signal);
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      };
      handlers.set(signal, handler);
      process.on(signal, handler);
    }
    const child = spawn(file, args, { stdio: stdout === 'inherit' ? 'inherit' : ['inherit', 2, 'inherit'], env });
    const done = (exit: ChildExit): void => {
      for (const [signal, handler] of handlers) process.off(signal, handler);
      resolve(exit);
    };
    child.once('error', (err: NodeJS.ErrnoException) => done({ code: err.code === 'ENOENT' ? 127 : 126, signal: null, spawnError: err }));
    child.once('exit', (code, signal) => done({ code: exitCodeOf(code, signal), signal }));
  });
}
