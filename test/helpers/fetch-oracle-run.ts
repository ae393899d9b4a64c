import { CLI, run } from './run.ts';
import type { RunResult } from './run.ts';

/** `fetch-oracle run ARGS…` as a separate process (the real CLI), with its own environment and directory. */
export function fetchOracleRun(args: string[], options: { env: NodeJS.ProcessEnv; cwd: string; timeoutMs?: number }): Promise<RunResult> {
  return run(process.execPath, fetchOracleRunArgv(args).slice(1), options);
}

/** The argv that starts `fetch-oracle run ARGS…` (for spawning it yourself, e.g. to signal it). */
export function fetchOracleRunArgv(args: string[]): string[] {
  return [process.execPath, CLI, 'run', ...args];
}
