/**
 * `fetch-oracle machine image --base-tar`: a Debian riscv64 base as a tar, for a Dockerfile's `FROM scratch` +
 * `ADD rootfs.tar /` built inside the machine (`build --machine`). It stands in for a debootstrap: the same
 * packages a minbase debootstrap installs (Priority: required, plus apt), downloaded through the oracle,
 * unpacked without maintainer scripts (as `machine image` does), with the few files those scripts would have
 * written (/etc/passwd and /etc/group from base-passwd, apt's sources), and written as a reproducible tar:
 * sorted, owned by root, every time `epoch`.
 */
import { chmod, copyFile, mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
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
