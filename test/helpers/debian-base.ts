import { existsSync } from 'node:fs';
import { mkdir, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inject } from 'vitest';
import { cleanEnv } from './client-session.ts';
import { fetchOracleRun } from './fetch-oracle-run.ts';
import { run } from './run.ts';
import type { RunResult } from './run.ts';

/**
 * The base root file system of the build tests: `debootstrap --variant=minbase` of Debian bookworm from the
 * real mirror, recorded through `fetch-oracle run` and packed as a tar. Recording takes about a minute, so one
 * recording serves every test file of a run (test/image/build.test.ts, test/build/*.test.ts): the first file
 * that asks records it into the run's shared directory (test/global-setup.ts) under a lock, the others wait
 * for it. FETCH_ORACLE_TEST_BASE_DIR=DIR keeps it in DIR across runs instead (local iteration).
 * The recorded base is read-only for its users: each test works on its own data directory, storage and context.
 */

export const DEBIAN_MIRROR = 'http://deb.debian.org/debian';
export const DEBIAN_SUITE = 'bookworm';

export interface RecordedBase {
  /** The netlock of the debootstrap run. */
  netlock: string;
  /** The data directory that holds its records and blocks. */
  data: string;
  /** The packed root file system (rootfs.tar for a `FROM scratch` + `ADD rootfs.tar /` Dockerfile). */
  tar: string;
}

export function debootstrapArgs(target: string): string[] {
  return ['debootstrap', '--variant=minbase', '--include=curl,ca-certificates', DEBIAN_SUITE, target, DEBIAN_MIRROR];
}

/** Why the build tests cannot run here (no buildah, no mirror), or undefined. CI must fail, not skip, on it. */
export async function debianMirrorProblem(): Promise<string | undefined> {
  const r = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '20', `${DEBIAN_MIRROR}/dists/${DEBIAN_SUITE}/Release`], { env: cleanEnv('/tmp') }).catch((e: Error) => ({ code: 1, stdout: '', stderr: e.message }));
  if (r.code === 0 && r.stdout.trim() === '200') return undefined;
  return `the Debian mirror ${DEBIAN_MIRROR} is not reachable from this machine (curl exit ${r.code}, HTTP ${r.stdout.trim() || '-'}: ${r.stderr.trim()})`;
}

/** Packs a root file system the way environment.md §5 measured: sorted, mtimes 0, numeric owners. */
export async function packRootfs(rootfs: string, out: string): Promise<void> {
  // debootstrap's logs and ldconfig's aux-cache carry wall-clock times and inode numbers: the only paths
  // that differ between two debootstraps of the same packages (measured), so they stay out of the base.
  const r = await run('tar', ['--sort=name', '--mtime=@0', '--numeric-owner', '--exclude=./var/log/*', '--exclude=./var/cache/ldconfig/aux-cache', '-C', rootfs, '-cf', out, '.'], { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`tar failed: ${r.stderr}`);
}

export const explainRun = (r: RunResult): string => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr.split('\n').filter((l) => !/^busybox: /.test(l)).slice(-80).join('\n')}`;

async function record(dir: string, base: RecordedBase): Promise<void> {
  const rootfs = join(dir, 'rootfs-record');
  const env = cleanEnv(dir, { DEBIAN_FRONTEND: 'noninteractive' });
  const once = async (): Promise<RunResult> => {
    await rm(rootfs, { recursive: true, force: true });
    return fetchOracleRun(['--data', base.data, '--netlock', base.netlock, '--', ...debootstrapArgs(rootfs)], { env, cwd: dir, timeoutMs: 600_000 });
  };
  let r = await once();
  // The real mirror is the one network dependency here: a transient failure gets one more run, which
  // reuses what the first recorded and fetches the rest (record mode fetches a failed request again).
  if (r.code !== 0) r = await once();
  if (r.code !== 0) throw new Error(`recording the base with debootstrap failed: ${explainRun(r)}`);
  await packRootfs(rootfs, `${base.tar}.partial`);
  await rename(`${base.tar}.partial`, base.tar);
  await rm(rootfs, { recursive: true, force: true });
}

/** The recorded base, recording it first unless this run (or FETCH_ORACLE_TEST_BASE_DIR) already has it. */
export async function recordedDebianBase(): Promise<RecordedBase> {
  const dir = process.env['FETCH_ORACLE_TEST_BASE_DIR'] ?? join(inject('sharedDir'), 'debian-base');
  await mkdir(dir, { recursive: true });
  const base: RecordedBase = { netlock: join(dir, 'base.netlock.json'), data: join(dir, 'data'), tar: join(dir, 'rootfs-record.tar') };
  const lock = join(dir, 'recording.lock');
  const deadline = Date.now() + 1_200_000;
  for (;;) {
    if (existsSync(base.tar) && existsSync(base.netlock)) return base;
    // mkdir is atomic: the file that makes the lock directory records, the others poll for the tar.
    const mine = await mkdir(lock).then(
      () => true,
      () => false,
    );
    if (mine) {
      try {
        await writeFile(join(lock, 'pid'), String(process.pid));
        if (!existsSync(base.tar)) await record(dir, base);
        return base;
      } finally {
        await rm(join(lock, 'pid'), { force: true });
        await rmdir(lock);
      }
    }
    if (Date.now() > deadline) throw new Error(`waited 20 minutes for another test file to record the base in ${dir}`);
    await new Promise((r) => setTimeout(r, 2000));
    // A lock left by a run that was killed (its directory older than the deadline) does not block forever.
    const age = await stat(lock).then((s) => Date.now() - s.mtimeMs, () => 0);
    if (age > 1_200_000) await rm(lock, { recursive: true, force: true });
  }
}
