/**
 * `fetch-oracle machine image --base-tar`: a Debian riscv64 base as a tar, for a Dockerfile's `FROM scratch` +
 * `ADD rootfs.tar /` built inside the machine (`build --machine`). It stands in for a debootstrap: the same
 * packages a minbase debootstrap installs (Priority: required, plus apt), downloaded through the oracle,
 * unpacked without maintainer scripts (as `machine image` does), with the few files those scripts would have
 * written (/etc/passwd and /etc/group from base-passwd, apt's sources), and written as a reproducible tar:
 * sorted, owned by root, every time `epoch`.
 */
import { chmod, copyFile, lstat, mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ImageBuildError, throwIfAborted } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { NOOP_LOGGER } from '../../log.ts';
import type { AbortOptions } from '../../protocol/blocks.ts';
import { DEFAULT_MIRROR, DEFAULT_SUITE, downloadAndUnpack } from './build-image.ts';
import type { MachineImageInit, MachineImageResult } from './build-image.ts';
import { sha256Stream } from './ext2.ts';
import { mergeUsr } from './layout.ts';
import { asRoot, findImageTools, runStep } from './tools.ts';
import type { ImageTools } from './tools.ts';
import type { ImagePackage } from './unpack.ts';

/**
 * What a minbase debootstrap of trixie installs (its Priority: required packages and apt), plus curl: the
 * smallest base in which `apt-get update && apt-get install -y PKG` and an HTTPS download work.
 */
export const BASE_TAR_PACKAGES = [
  'apt', 'base-files', 'base-passwd', 'bash', 'coreutils', 'curl', 'dash', 'debconf', 'debian-archive-keyring', 'debianutils', 'diffutils',
  'dpkg', 'findutils', 'grep', 'gzip', 'hostname', 'init-system-helpers', 'libc-bin', 'login', 'mawk', 'ncurses-base', 'perl-base',
  'sed', 'sysvinit-utils', 'tar', 'util-linux',
] as const;

export interface BaseTarInit extends Pick<MachineImageInit, 'oracle' | 'dataDir' | 'mirror' | 'suite' | 'oracleLogger'> {
  out: string;
  /** Packages besides BASE_TAR_PACKAGES. */
  packages: readonly string[];
  /** Every time in the tar. @default 0 */
  epoch?: number;
  /** Keep manuals, documentation and translations (by default the base is slim: see SLIM_DPKG_EXCLUDES). */
  keepDocs?: boolean;
  tools?: ImageTools;
  workDir?: string;
  logger?: Logger;
}

export interface BaseTarResult {
  out: string;
  bytes: number;
  sha256: string;
  packages: ImagePackage[];
  netlock: MachineImageResult['netlock'];
  elapsedMs: number;
}

/**
 * The slim base (as Debian's `-slim` container images): no manuals, documentation (copyright files kept) or
 * translations, and dpkg told to skip them for later installs too. Every byte in the base is a byte buildah
 * tars and hashes with the emulated CPU (~1.5 MB/s of SHA-256) when it commits the image (`build --machine`).
 */
export const SLIM_DPKG_EXCLUDES = `# fetch-oracle base tar: a slim base (machine image --base-tar --keep-docs keeps these)
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
`;

/**
 * apt keeps no binary caches or downloaded .debs (as Debian's container images do): pkgcache.bin and
 * srcpkgcache.bin are tens of MB written into the layer by every `apt-get update`, rebuilt in memory anyway.
 */
export const APT_CLEAN_CONF = `// fetch-oracle base tar: keep no caches in the image's layers
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
`;

/** Removes what SLIM_DPKG_EXCLUDES excludes from an unpacked root (the packages were unpacked without dpkg). */
async function slim(root: string): Promise<void> {
  for (const dir of ['usr/share/man', 'usr/share/info', 'usr/share/lintian']) await rm(join(root, dir), { recursive: true, force: true });
  const locale = join(root, 'usr/share/locale');
  for (const name of await readdir(locale).catch(() => [])) if (name !== 'locale.alias') await rm(join(locale, name), { recursive: true, force: true });
  const doc = join(root, 'usr/share/doc');
  for (const pkg of await readdir(doc).catch(() => [])) {
    const dir = join(doc, pkg);
    if (!(await lstat(dir)).isDirectory()) continue; // a link to another package's docs stays
    for (const name of await readdir(dir)) if (name !== 'copyright') await rm(join(dir, name), { recursive: true, force: true });
  }
  await mkdir(join(root, 'etc/dpkg/dpkg.cfg.d'), { recursive: true });
  await writeFile(join(root, 'etc/dpkg/dpkg.cfg.d/fetch-oracle-slim'), SLIM_DPKG_EXCLUDES);
  await mkdir(join(root, 'etc/apt/apt.conf.d'), { recursive: true });
  await writeFile(join(root, 'etc/apt/apt.conf.d/fetch-oracle-clean'), APT_CLEAN_CONF);
}

/** The files maintainer scripts would have written that apt and dpkg need. */
async function completeBase(root: string, mirror: string, suite: string): Promise<void> {
  await mergeUsr(root);
  for (const [from, to] of [['usr/share/base-passwd/passwd.master', 'etc/passwd'], ['usr/share/base-passwd/group.master', 'etc/group']] as const) {
    await copyFile(join(root, from), join(root, to)).catch((err: NodeJS.ErrnoException) => {
      throw new ImageBuildError(`the base has no /${from} (base-passwd): ${err.message}`);
    });
    await chmod(join(root, to), 0o644);
  }
  const sources = join(root, 'etc/apt/sources.list.d/debian.sources');
  await mkdir(dirname(sources), { recursive: true });
  await writeFile(sources, `Types: deb\nURIs: ${mirror}\nSuites: ${suite}\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`);
  // dpkg's own postinst makes these; dpkg refuses to run without them.
  for (const dir of ['var/lib/dpkg/info', 'var/lib/dpkg/updates', 'var/lib/dpkg/triggers', 'var/lib/dpkg/alternatives', 'var/cache/apt/archives/partial', 'var/lib/apt/lists/partial', 'tmp', 'root', 'proc', 'sys', 'dev', 'run']) {
    await mkdir(join(root, dir), { recursive: true });
  }
  await writeFile(join(root, 'var/lib/dpkg/available'), '');
  await chmod(join(root, 'tmp'), 0o1777);
  await chmod(join(root, 'root'), 0o700);
}

/** Builds the base tar (module comment); `init.out` appears only when complete. */
export async function buildBaseTar(init: BaseTarInit, options: AbortOptions = {}): Promise<BaseTarResult> {
  throwIfAborted(options.signal);
  const started = performance.now();
  const logger = init.logger ?? NOOP_LOGGER;
  const tools = init.tools ?? findImageTools();
  const requested = [...new Set([...BASE_TAR_PACKAGES, ...init.packages])].sort();
  const epoch = init.epoch ?? 0;
  const work = await mkdtemp(join(init.workDir ?? tmpdir(), 'fetch-oracle-base-'));
  const tmp = join(dirname(init.out), `.${basename(init.out)}.${process.pid}.tmp`);
  try {
    const { root, packages, netlock } = await downloadAndUnpack(init, tools, work, requested, logger, options);
    await completeBase(root, init.mirror ?? DEFAULT_MIRROR, init.suite ?? DEFAULT_SUITE);
    if (init.keepDocs !== true) await slim(root);
    await mkdir(dirname(init.out), { recursive: true });
    const argv = [tools.tar, '-c', '-f', tmp, '-C', root, '--sort=name', '--format=gnu', '--numeric-owner', `--mtime=@${epoch}`, '.'];
    await runStep('tar -c (the base)', asRoot(tools, argv), { env: { ...process.env, LC_ALL: 'C' }, ...options });
    const bytes = (await stat(tmp)).size;
    const sha256 = await sha256Stream(tmp, options);
    await rename(tmp, init.out);
    return { out: init.out, bytes, sha256, packages, netlock, elapsedMs: Math.round(performance.now() - started) };
  } finally {
    await rm(tmp, { force: true });
    await rm(work, { recursive: true, force: true });
  }
}
