/**
 * The shared machine image for tests: `testMachineImage({ packages })` builds a root file system with
 * `buildMachineImage` (downloads recorded through an oracle from the real Debian mirror) once per machine and
 * caches it under os.tmpdir(), keyed by a hash of everything that goes into it: the package list, the guest
 * files, the init and the builder's source. Concurrent callers (vitest workers) take a lock directory, so
 * one builds and the others wait; a cache entry counts only once its `done.json` was renamed into place.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ORACLE_VERSION } from '../../src/cli/enclave.ts';
import { buildMachineImage, DEFAULT_MIRROR, DEFAULT_SUITE, imagePackageList } from '../../src/machine/rootfs/build-image.ts';
import { findGuestFiles } from '../../src/machine/rootfs/layout.ts';
import type { GuestFiles } from '../../src/machine/rootfs/layout.ts';
import { findImageTools } from '../../src/machine/rootfs/tools.ts';
import { ROOT, run } from './run.ts';

/** What the end-to-end machine tests need inside: the shim's Node, busybox, curl, npm and pip. */
export const TEST_IMAGE_PACKAGES = ['nodejs', 'busybox-static', 'curl', 'ca-certificates', 'npm', 'python3-pip'] as const;

/** How long a first build may take (record ~1.5 min here for the test set); tests and hooks that call it wait this long. */
export const TEST_IMAGE_TIMEOUT_MS = 15 * 60_000;

/** Where the cache lives; FETCH_ORACLE_TEST_IMAGE_DIR moves it (e.g. to a CI cache directory). */
const CACHE_DIR = process.env['FETCH_ORACLE_TEST_IMAGE_DIR'] ?? join(tmpdir(), 'fetch-oracle-test-image');
/** A lock older than this whose owner cannot be seen is taken over (a build that died). */
const STALE_LOCK_MS = TEST_IMAGE_TIMEOUT_MS;
const POLL_MS = 500;
/** Other cache entries not rebuilt or used for this long are removed after a build (each builder change makes one). */
const PRUNE_AFTER_MS = 24 * 3600_000;

export interface TestMachineImage {
  /** The ext2 image (read-only for tests: copy it before changing it). */
  image: string;
  /** The netlock the image's packages were recorded into. */
  netlock: string;
  /** The data directory holding that netlock's blocks (and the oracle key that signed it). */
  dataDir: string;
  sha256: string;
  /** The packages asked for (defaults included), sorted. */
  packages: string[];
  /** The cache key (a hex digest of the inputs). */
  key: string;
}

/** The guest files the image is built with: this checkout's guest/dist and guest/init. */
export function testGuestFiles(): Promise<GuestFiles> {
  return findGuestFiles(join(ROOT, 'guest', 'dist'), join(ROOT, 'guest', 'init', 'fetch-oracle-init.sh'));
}

/** Every .ts file of the builder, sorted: a change to any of them makes a new image. */
async function builderSources(): Promise<string[]> {
  const dir = join(ROOT, 'src', 'machine', 'rootfs');
  return (await readdir(dir)).filter((n) => n.endsWith('.ts')).sort().map((n) => join(dir, n));
}

async function cacheKey(packages: readonly string[], guest: GuestFiles, freeMiB: number | undefined): Promise<string> {
  const h = createHash('sha256');
  h.update(JSON.stringify({ v: 1, packages, mirror: DEFAULT_MIRROR, suite: DEFAULT_SUITE, version: ORACLE_VERSION, ...(freeMiB === undefined ? {} : { freeMiB }) }));
  for (const path of [guest.shim, guest.cmioHelper, guest.init, ...(await builderSources())]) {
    h.update(`\0${path.slice(ROOT.length)}\0`);
    h.update(await readFile(path));
  }
  return h.digest('hex').slice(0, 24);
}

async function readDone(dir: string): Promise<TestMachineImage | undefined> {
  try {
    const done = JSON.parse(await readFile(join(dir, 'done.json'), 'utf8')) as TestMachineImage;
    const now = new Date();
    await utimes(join(dir, 'done.json'), now, now).catch(() => undefined); // in use: not pruned
    return done;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes `lock` (mkdir is atomic); false if another live builder holds it. A dead or stale holder's lock is taken over. */
async function tryLock(lock: string): Promise<boolean> {
  try {
    await mkdir(lock);
    await writeFile(join(lock, 'pid'), String(process.pid));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const pid = Number(await readFile(join(lock, 'pid'), 'utf8').catch(() => 'NaN'));
  const age = Date.now() - (await stat(lock).then((s) => s.mtimeMs, () => Date.now()));
  // No pid yet: its owner is between mkdir and writeFile (give it a moment); else the owner must be running.
  if ((Number.isNaN(pid) && age > 10_000) || (!Number.isNaN(pid) && !alive(pid)) || age > STALE_LOCK_MS) {
    await rm(lock, { recursive: true, force: true });
    return tryLock(lock);
  }
  return false;
}

/** Removes cache entries other than `keep` not used for PRUNE_AFTER_MS (stale builder versions), or left half-built. */
async function pruneCache(keep: string): Promise<void> {
  for (const name of await readdir(CACHE_DIR).catch(() => [] as string[])) {
    if (name === keep || !/^[0-9a-f]{24}$/.test(name)) continue;
    if (await stat(join(CACHE_DIR, `${name}.lock`)).then(() => true, () => false)) continue; // being built
    const age = Date.now() - (await stat(join(CACHE_DIR, name, 'done.json')).then((s) => s.mtimeMs, () => 0));
    if (age > PRUNE_AFTER_MS) await rm(join(CACHE_DIR, name), { recursive: true, force: true });
  }
}

async function build(dir: string, key: string, packages: string[], guest: GuestFiles, freeMiB: number | undefined): Promise<TestMachineImage> {
  // A half-done earlier attempt: start clean (a record run would keep its netlock's entries).
  for (const name of ['data', 'netlock.json', 'netlock.journal', 'image.ext2']) await rm(join(dir, name), { recursive: true, force: true });
  const image = join(dir, 'image.ext2');
  const netlock = join(dir, 'netlock.json');
  const dataDir = join(dir, 'data');
  const result = await buildMachineImage({
    out: image,
    packages,
    oracle: { mode: 'record', netlockPath: netlock },
    dataDir,
    guest,
    builderVersion: ORACLE_VERSION,
    tools: findImageTools(),
    ...(freeMiB === undefined ? {} : { freeMiB }),
  });
  const done: TestMachineImage = { image, netlock, dataDir, sha256: result.sha256, packages: result.requested, key };
  await writeFile(join(dir, 'done.json.tmp'), JSON.stringify(done, null, 2));
  await rename(join(dir, 'done.json.tmp'), join(dir, 'done.json'));
  await pruneCache(key);
  process.stderr.write(`testMachineImage: built ${image} (${result.packages.length} packages, ${result.bytes} bytes) in ${(result.elapsedMs / 1000).toFixed(1)} s\n`);
  return done;
}

/**
 * The test image for `packages` (default TEST_IMAGE_PACKAGES; the defaults of `machine image` are always
 * in), built once per machine and inputs. Resolves when it is complete; throws if the build fails.
 */
export async function testMachineImage(options: { packages?: readonly string[]; freeMiB?: number } = {}): Promise<TestMachineImage> {
  const packages = imagePackageList(options.packages ?? TEST_IMAGE_PACKAGES);
  const guest = await testGuestFiles();
  const key = await cacheKey(packages, guest, options.freeMiB);
  const dir = join(CACHE_DIR, key);
  await mkdir(dir, { recursive: true });
  const deadline = Date.now() + TEST_IMAGE_TIMEOUT_MS;
  for (;;) {
    const done = await readDone(dir);
    if (done !== undefined) return done;
    const lock = join(CACHE_DIR, `${key}.lock`);
    if (await tryLock(lock)) {
      try {
        return (await readDone(dir)) ?? (await build(dir, key, packages, guest, options.freeMiB));
      } finally {
        await rm(lock, { recursive: true, force: true });
      }
    }
    if (Date.now() > deadline) throw new Error(`testMachineImage: gave up waiting for another process to build ${dir} (lock ${lock})`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/**
 * Why the image tests cannot run here, or undefined: a program the build needs, the guest files, or the
 * Debian mirror (a first build records from it). Tests skip on it outside CI and fail under CI.
 */
export async function machineImageProblem(): Promise<string | undefined> {
  try {
    findImageTools();
    await testGuestFiles();
  } catch (err) {
    return (err as Error).message.split('\n')[0];
  }
  const r = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '20', `${DEFAULT_MIRROR}/dists/${DEFAULT_SUITE}/InRelease`]).catch((e: Error) => ({ code: 1, stdout: '', stderr: e.message }));
  if (r.code === 0 && r.stdout.trim() === '200') return undefined;
  return `the Debian mirror ${DEFAULT_MIRROR} is not reachable (curl exit ${r.code}, HTTP ${r.stdout.trim() || '-'}: ${r.stderr.trim()})`;
}

export const IN_CI = process.env['CI'] === 'true' || process.env['CI'] === '1';
