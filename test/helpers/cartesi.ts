/**
 * The real Cartesi Machine for tests: the emulator and kernel of `<repo>/../shared/cartesi` (or
 * FETCH_ORACLE_CARTESI_DIR), passed to the product with --emulator and --kernel as a user would, and a root
 * file system image (FETCH_ORACLE_MACHINE_IMAGE, else built once with `fetch-oracle machine image`).
 * Missing parts skip the suites that need them, with the reason in their title, except under CI, where
 * they fail.
 */
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { machineImageProblem, testMachineImage } from './machine-image.ts';
import { ROOT } from './run.ts';

export { IN_CI } from './machine-image.ts';

function fixtureDir(): string {
  const fromEnv = process.env['FETCH_ORACLE_CARTESI_DIR'];
  if (fromEnv !== undefined && fromEnv !== '') return resolve(fromEnv);
  const beside = resolve(ROOT, '../shared/cartesi');
  return existsSync(beside) ? beside : '/work/shared/cartesi';
}

export const CARTESI_DIR = fixtureDir();
export const EMULATOR_DIR = CARTESI_DIR;
export const KERNEL = join(CARTESI_DIR, 'images', 'linux.bin');
/** The flags that point the product at the fixture. */
export const MACHINE_FLAGS = ['--emulator', EMULATOR_DIR, '--kernel', KERNEL];

/** Why the emulator fixture cannot be used, or undefined. */
export function cartesiProblem(): string | undefined {
  if (!existsSync(join(CARTESI_DIR, 'bin', 'cartesi-jsonrpc-machine'))) return `no Cartesi Machine emulator in ${CARTESI_DIR} (set FETCH_ORACLE_CARTESI_DIR)`;
  if (!existsSync(KERNEL)) return `no kernel at ${KERNEL}`;
  return undefined;
}

/**
 * A root file system with the current guest bundle and init: FETCH_ORACLE_MACHINE_IMAGE, or the shared test
 * image (`testMachineImage`: built once per machine and inputs by `machine image`, cached between runs).
 */
export async function machineImage(): Promise<{ image: string } | { problem: string }> {
  const fromEnv = process.env['FETCH_ORACLE_MACHINE_IMAGE'];
  if (fromEnv !== undefined && fromEnv !== '') {
    return (await stat(fromEnv).catch(() => undefined)) === undefined ? { problem: `FETCH_ORACLE_MACHINE_IMAGE=${fromEnv} does not exist` } : { image: resolve(fromEnv) };
  }
  const problem = await machineImageProblem();
  if (problem !== undefined) return { problem };
  return { image: (await testMachineImage()).image };
}

/** Whether a process is alive (signal 0). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
