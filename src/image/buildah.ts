import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { AbortOptions } from '../protocol/blocks.ts';

/**
 * The buildah settings every `fetch-oracle build` uses (environment.md §5): chroot isolation (the OCI
 * runtime crun fails on these hosts' hybrid cgroups; chroot needs no runtime), the vfs storage driver (no
 * overlay or fuse needed) and a fixed creation time, without which no two builds have the same digest
 * (buildah 1.28 ignores SOURCE_DATE_EPOCH).
 */
export const BUILDAH_ISOLATION = 'chroot';
export const BUILDAH_STORAGE_DRIVER = 'vfs';
export const DEFAULT_TIMESTAMP = '0';

/** The command that installs buildah on Debian/Ubuntu, for the message when it is missing. */
export const BUILDAH_INSTALL = 'apt-get install -y buildah';

/** Where `buildah` is on PATH, or undefined. */
export function findBuildah(env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env['PATH'] ?? '').split(delimiter).filter((d) => d !== '')) {
    const path = join(dir, 'buildah');
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function buildahMissingMessage(): string {
  return `buildah was not found on PATH: fetch-oracle build runs buildah (${BUILDAH_ISOLATION} isolation, ${BUILDAH_STORAGE_DRIVER} storage) to build the image. Install it (Debian/Ubuntu: sudo ${BUILDAH_INSTALL}) and try again.`;
}

/** One buildah storage: its image store (`--root`) and run-time state (`--runroot`). */
export interface BuildahStorage {
  root: string;
  runroot: string;
}

export function storageOf(dir: string): BuildahStorage {
  return { root: join(dir, 'root'), runroot: join(dir, 'runroot') };
}

/** The global options that select a storage (they go before the buildah sub-command). */
export function storageArgs(storage: BuildahStorage): string[] {
  return ['--root', storage.root, '--runroot', storage.runroot, '--storage-driver', BUILDAH_STORAGE_DRIVER];
}

export interface CapturedRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs buildah with `args` to completion, capturing its output (for inspect, push, rm: small outputs). */
export function buildahCapture(buildah: string, args: readonly string[], options: AbortOptions & { env?: NodeJS.ProcessEnv } = {}): Promise<CapturedRun> {
  options.signal?.throwIfAborted();
  return new Promise((resolve, reject) => {
    const child = spawn(buildah, args, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env, ...(options.signal === undefined ? {} : { signal: options.signal }) });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code: code ?? 128 + (signal === null ? 0 : 1), stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
  });
}

/** The parts of an OCI image configuration the digest comparison looks at. */
export interface ImageConfig {
  rootfs?: { diff_ids?: string[] };
  history?: Array<{ created_by?: string; empty_layer?: boolean; comment?: string }>;
  [key: string]: unknown;
}

/** The OCI configuration of `image` (an ID or name) in `storage`, as `buildah inspect` reports it. */
export async function inspectImage(buildah: string, storage: BuildahStorage, image: string, options: AbortOptions = {}): Promise<ImageConfig> {
  const r = await buildahCapture(buildah, [...storageArgs(storage), 'inspect', '--type', 'image', image], options);
  if (r.code !== 0) throw new Error(`buildah inspect ${image} failed (exit ${r.code}): ${r.stderr.trim()}`);
  const outer = JSON.parse(r.stdout) as { Config?: unknown; OCIv1?: unknown };
  // "Config" is the configuration exactly as stored (the bytes the image ID hashes); OCIv1 is a re-encoding.
  if (typeof outer.Config === 'string') return JSON.parse(outer.Config) as ImageConfig;
  if (typeof outer.OCIv1 === 'object' && outer.OCIv1 !== null) return outer.OCIv1 as ImageConfig;
  throw new Error(`buildah inspect ${image}: no image configuration in its output`);
}

/**
 * Copies `image` to an OCI layout directory with uncompressed layers, so that each layer blob is the very
 * tar its diff_id names (`blobs/sha256/<diff_id hex>`).
 */
export async function pushUncompressed(buildah: string, storage: BuildahStorage, image: string, dir: string, options: AbortOptions = {}): Promise<void> {
  const r = await buildahCapture(buildah, [...storageArgs(storage), 'push', '--quiet', '--disable-compression', image, `oci:${dir}`], options);
  if (r.code !== 0) throw new Error(`buildah push ${image} oci:${dir} failed (exit ${r.code}): ${r.stderr.trim()}`);
}

/** Removes every working container of `storage` (a build interrupted half-way leaves some behind). */
export async function removeContainers(buildah: string, storage: BuildahStorage, options: AbortOptions = {}): Promise<void> {
  await buildahCapture(buildah, [...storageArgs(storage), 'rm', '--all'], options).catch(() => undefined);
}
