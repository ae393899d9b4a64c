import { join } from 'node:path';
import { ROOT, run } from './run.ts';
import type { RunResult } from './run.ts';

/** The entry that runs `fetch-oracle run` from the sources (see run-entry.ts). */
export const RUN_ENTRY = join(ROOT, 'test', 'helpers', 'run-entry.ts');
const RUN_TS = join(ROOT, 'bin', 'run-ts.js');

/** `fetch-oracle run ARGS…` as a separate process (node + tsx), with its own environment and directory. */
export function fetchOracleRun(args: string[], options: { env: NodeJS.ProcessEnv; cwd: string; timeoutMs?: number }): Promise<RunResult> {
  return run(process.execPath, [RUN_TS, RUN_ENTRY, ...args], options);
}

/** The argv that starts `fetch-oracle run ARGS…` (for spawning it yourself, e.g. to signal it). */
export function fetchOracleRunArgv(args: string[]): string[] {
  return [process.execPath, RUN_TS, RUN_ENTRY, ...args];
}
