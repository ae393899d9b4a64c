/**
 * The independent verifier: `in_toto_verify.py` over the in-toto and securesystemslib packages from PyPI
 * (scripts/setup.sh installs them). Without them the suites that need them skip, except under CI.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { IN_CI } from '../helpers/machine-image.ts';
import { run } from '../helpers/run.ts';
import type { RunResult } from '../helpers/run.ts';

export const PYTHON = process.env['PYTHON'] ?? 'python3';
export const VERIFY_SCRIPT = join(import.meta.dirname, 'in_toto_verify.py');

const probe = spawnSync(PYTHON, ['-c', 'import in_toto, securesystemslib; print(securesystemslib.__version__)'], { encoding: 'utf8' });
/** Whether python3 can import in_toto and securesystemslib. */
export const IN_TOTO_AVAILABLE = probe.status === 0;
export const IN_TOTO_MISSING_REASON = IN_TOTO_AVAILABLE ? '' : `python3 cannot import in_toto/securesystemslib (${(probe.stderr || probe.error?.message || '').trim().split('\n').at(-1)}); run scripts/setup.sh`;
export { IN_CI };

/** Runs the independent verifier on an `.intoto.jsonl` file with a public key (hex). */
export function inTotoVerify(path: string, publicKeyHex: string): Promise<RunResult> {
  return run(PYTHON, [VERIFY_SCRIPT, path, publicKeyHex]);
}
