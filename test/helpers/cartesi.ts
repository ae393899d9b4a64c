/**
 * The real Cartesi Machine for tests: the emulator and kernel of `<repo>/../shared/cartesi` (or
 * FETCH_ORACLE_CARTESI_DIR), passed to the product with --emulator and --kernel as a user would, and a root
 * file system image (FETCH_ORACLE_MACHINE_IMAGE, else built once with `fetch-oracle machine image`).
 * Missing parts skip the suites that need them, with the reason in their title, except under CI, where
 * they fail.
 */
import { existsSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { cli, ROOT, run } from './run.ts';

export const IN_CI = process.env['CI'] === 'true' || process.env['CI'] === '1';

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
 * A root file system with the current guest bundle and init: FETCH_ORACLE_MACHINE_IMAGE, or one built by
 * `fetch-oracle machine image` into a cache directory (kept between runs: the builder is reproducible).
 */
export async function machineImage(): Promise<{ image: string } | { problem: string }> {
  const fromEnv = process.env['FETCH_ORACLE_MACHINE_IMAGE'];
  if (fromEnv !== undefined && fromEnv !== '') {
    return (await stat(fromEnv).catch(() => undefined)) === undefined ? { problem: `FETCH_ORACLE_MACHINE_IMAGE=${fromEnv} does not exist` } : { image: resolve(fromEnv) };
  }
  const built = await run('bash', [join(ROOT, 'guest', 'build.sh'), 'all'], { timeoutMs: 300_000 });
  if (built.code !== 0) return { problem: `guest/build.sh all failed: ${built.stderr.trim().split('\n').slice(-3).join(' ')}` };
  const dir = join(tmpdir(), 'fetch-oracle-test-machine-image');
  await mkdir(dir, { recursive: true });
  const image = join(dir, 'rootfs.ext2');
  const r = await cli(['machine', 'image', '--out', image, '--data', join(dir, 'data')], { timeoutMs: 900_000 });
  if (r.code !== 0) return { problem: `no machine image: set FETCH_ORACLE_MACHINE_IMAGE, or fix \`fetch-oracle machine image\` (exit ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' ')})` };
  return { image };
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
