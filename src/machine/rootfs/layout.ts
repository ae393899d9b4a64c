/**
 * What the image holds besides the packages' files: the merged-/usr links, busybox's applet links, the
 * directories the init mounts over, the few /etc files a system without maintainer scripts lacks, and our
 * own files (the guest shim, the cmio helper, the init), at the paths of the machine contract.
 */
import { createHash } from 'node:crypto';
import { chmod, copyFile, lstat, mkdir, readdir, readFile, rename, rmdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ImageBuildError } from '../../errors.ts';
import type { AbortOptions } from '../../protocol/blocks.ts';
import { runStep } from './tools.ts';
import type { ImageTools } from './tools.ts';

/** The guest files, as `bash guest/build.sh all` writes them and the image installs them. */
export interface GuestFiles {
  /** guest/dist/fetch-oracle-guest.mjs */
  shim: string;
  /** guest/dist/cmio-helper-riscv64 */
  cmioHelper: string;
  /** guest/init/fetch-oracle-init.sh */
  init: string;
}

/** The file names `guest/build.sh` writes into guest/dist (the init is a source file, guest/init/). */
export const GUEST_DIST_NAMES = { shim: 'fetch-oracle-guest.mjs', cmioHelper: 'cmio-helper-riscv64' } as const;
export const GUEST_INIT_NAME = 'fetch-oracle-init.sh';

/**
 * The guest files of `distDir` (the shim and the riscv64 cmio helper) and the init `initFile`, checked to
 * exist: a missing build output fails with what to run.
 */
export async function findGuestFiles(distDir: string, initFile: string): Promise<GuestFiles> {
  const files: GuestFiles = { shim: join(distDir, GUEST_DIST_NAMES.shim), cmioHelper: join(distDir, GUEST_DIST_NAMES.cmioHelper), init: initFile };
  const missing: string[] = [];
  for (const path of [files.shim, files.cmioHelper, files.init]) if ((await lstat(path).catch(() => undefined))?.isFile() !== true) missing.push(path);
  if (missing.length > 0) {
    throw new ImageBuildError(
      `the guest files are missing: ${missing.join(', ')}. Build them with \`bash guest/build.sh all\` in the fetch-oracle checkout (the riscv64 cmio helper needs gcc-riscv64-linux-gnu), or name a directory holding ${GUEST_DIST_NAMES.shim} and ${GUEST_DIST_NAMES.cmioHelper} with --guest-dir`,
    );
  }
  return files;
}

/** Where the contract puts each of our files in the image, and its mode. */
export const GUEST_PATHS = {
  shim: { path: 'usr/lib/fetch-oracle/fetch-oracle-guest.mjs', mode: 0o644 },
  cmioHelper: { path: 'usr/bin/cmio-helper', mode: 0o755 },
  init: { path: 'sbin/fetch-oracle-init', mode: 0o755 },
} as const;

/** Where the image describes itself (packages, versions, epoch, netlock). */
export const IMAGE_METADATA_PATH = 'etc/fetch-oracle/image.json';

/** The usr-merged top-level directories of a Debian riscv64 system (`/lib` holds the dynamic loader). */
const MERGED_USR = ['bin', 'sbin', 'lib'] as const;

/** Directories the init mounts over or a build writes to, with their modes. */
const DIRECTORIES: ReadonlyArray<[string, number]> = [
  ['proc', 0o555],
  ['sys', 0o555],
  ['dev', 0o755],
  ['run', 0o755],
  ['tmp', 0o1777],
  ['root', 0o700],
  ['mnt', 0o755],
  ['mnt/input', 0o755],
  ['mnt/output', 0o755],
  ['etc', 0o755],
  ['etc/fetch-oracle', 0o755],
  ['usr/lib/fetch-oracle', 0o755],
  ['var/tmp', 0o1777],
];

/** /etc files a Debian system gets from base-files, base-passwd and netbase; written only if no package did. */
const ETC_DEFAULTS: ReadonlyArray<[string, string]> = [
  ['etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n'],
  ['etc/group', 'root:x:0:\nnogroup:x:65534:\n'],
  ['etc/hosts', '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n'],
  ['etc/hostname', 'cartesi\n'],
];

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/**
 * `/bin`, `/sbin`, `/lib` → `usr/…` (relative links, as Debian's usrmerge makes them). A package that still
 * ships files under one of them has them moved into /usr first (none of trixie's should).
 */
export async function mergeUsr(root: string): Promise<void> {
  for (const dir of MERGED_USR) {
    const top = join(root, dir);
    const st = await lstat(top).catch(() => undefined);
    if (st?.isSymbolicLink() === true) continue;
    if (st?.isDirectory() === true) {
      await mkdir(join(root, 'usr', dir), { recursive: true });
      for (const name of (await readdir(top)).sort()) {
        if (await exists(join(root, 'usr', dir, name))) throw new ImageBuildError(`/${dir}/${name} and /usr/${dir}/${name} both exist: cannot merge /${dir} into /usr`);
        await rename(join(top, name), join(root, 'usr', dir, name));
      }
      await rmdir(top);
    } else if (st !== undefined) {
      throw new ImageBuildError(`/${dir} is neither a directory nor a link in the unpacked packages`);
    }
    await mkdir(join(root, 'usr', dir), { recursive: true });
    await symlink(`usr/${dir}`, top);
  }
}

/**
 * A link to /usr/bin/busybox for every applet busybox lists (`--list-full`: `usr/bin/awk`, `sbin/poweroff`, …)
 * whose path no package provides. Busybox is riscv64, so qemu-user runs it (binfmt_misc may not be mounted).
 */
async function linkBusyboxApplets(tools: ImageTools, root: string, options: AbortOptions): Promise<number> {
  const busybox = join(root, 'usr/bin/busybox');
  if (!(await exists(busybox))) throw new ImageBuildError('the packages provide no /usr/bin/busybox (is busybox-static among them?)');
  const { stdout } = await runStep('qemu-riscv64-static busybox --list-full', [tools.qemu, busybox, '--list-full'], options);
  let linked = 0;
  for (const applet of stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '').sort()) {
    if (applet.startsWith('/') || applet.split('/').includes('..')) throw new ImageBuildError(`busybox lists an applet path outside the image: ${JSON.stringify(applet)}`);
    const path = join(root, applet);
    if (await exists(path)) continue; // through the merged-/usr links: bin/sh is usr/bin/sh
    await mkdir(dirname(path), { recursive: true });
    await symlink('/usr/bin/busybox', path);
    linked++;
  }
  return linked;
}

/**
 * /etc/ssl/certs/ca-certificates.crt as update-ca-certificates (ca-certificates' postinst, which is not run)
 * writes it: every certificate under /usr/share/ca-certificates, in path order, each ending in a newline.
 */
async function writeCaBundle(root: string): Promise<boolean> {
  const share = join(root, 'usr/share/ca-certificates');
  const bundle = join(root, 'etc/ssl/certs/ca-certificates.crt');
  if (!(await exists(share)) || (await exists(bundle))) return false;
  const certs = (await readdir(share, { recursive: true })).filter((p) => p.endsWith('.crt')).sort();
  const parts: string[] = [];
  for (const cert of certs) {
    const pem = await readFile(join(share, cert), 'utf8');
    parts.push(pem.endsWith('\n') ? pem : `${pem}\n`);
  }
  await mkdir(dirname(bundle), { recursive: true });
  await writeFile(bundle, parts.join(''));
  await chmod(bundle, 0o644);
  return true;
}

async function install(source: string, root: string, target: { path: string; mode: number }): Promise<void> {
  const path = join(root, target.path);
  await mkdir(dirname(path), { recursive: true });
  await copyFile(source, path);
  await chmod(path, target.mode);
}

/** sha256 of a file, hex (the metadata names each guest file by it). */
export async function sha256File(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

/** What completeLayout did, for the metadata and the report. */
export interface LayoutSummary {
  busyboxApplets: number;
  caBundle: boolean;
  guest: { shim: string; cmioHelper: string; init: string };
}

/** Turns the unpacked packages in `root` into a bootable tree for the machine (everything but the metadata). */
export async function completeLayout(tools: ImageTools, root: string, guest: GuestFiles, options: AbortOptions = {}): Promise<LayoutSummary> {
  await mergeUsr(root);
  const busyboxApplets = await linkBusyboxApplets(tools, root, options);
  for (const [dir, mode] of DIRECTORIES) {
    await mkdir(join(root, dir), { recursive: true });
    await chmod(join(root, dir), mode);
  }
  for (const [path, text] of ETC_DEFAULTS) {
    if (await exists(join(root, path))) continue;
    await writeFile(join(root, path), text);
    await chmod(join(root, path), 0o644);
  }
  const caBundle = await writeCaBundle(root);
  for (const key of ['shim', 'cmioHelper', 'init'] as const) await install(guest[key], root, GUEST_PATHS[key]);
  return {
    busyboxApplets,
    caBundle,
    guest: { shim: await sha256File(guest.shim), cmioHelper: await sha256File(guest.cmioHelper), init: await sha256File(guest.init) },
  };
}
