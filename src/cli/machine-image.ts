/**
 * `fetch-oracle machine image`: builds the Cartesi Machine's root file system (src/machine/rootfs/), its
 * package downloads recorded through the oracle (or replayed offline from a netlock).
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Command, CommandContext } from './command.ts';
import { parseCommandLine, parseTrustedKeys, reportingErrors, stderrLogger, UsageError } from './common.ts';
import { ORACLE_VERSION } from './enclave.ts';
import { ImageBuildError } from '../errors.ts';
import { BASE_TAR_PACKAGES, buildBaseTar } from '../machine/rootfs/base-tar.ts';
import { buildMachineImage, DEFAULT_FREE_MIB, DEFAULT_IMAGE_PACKAGES, DEFAULT_MIRROR, DEFAULT_SUITE } from '../machine/rootfs/build-image.ts';
import type { ImageOracle } from '../machine/rootfs/build-image.ts';
import { findGuestFiles, GUEST_DIST_NAMES, GUEST_INIT_NAME, GUEST_PATHS, IMAGE_METADATA_PATH } from '../machine/rootfs/layout.ts';
import { findImageTools } from '../machine/rootfs/tools.ts';
import { readUpstreamCaPem } from '../upstream/fetcher.ts';

export const MACHINE_IMAGE_HELP = `Usage: fetch-oracle machine image --out FILE [--packages LIST] [--netlock FILE] [options]
       fetch-oracle machine image --out FILE [--packages LIST] --replay FILE [options]
       fetch-oracle machine image --base-tar --out rootfs.tar [--packages LIST] [--netlock F | --replay F]

Builds the Cartesi Machine's root file system, an ext2 image, from Debian ${DEFAULT_SUITE} riscv64 packages:
${DEFAULT_IMAGE_PACKAGES.join(', ')} and the --packages, with every dependency (no recommends). apt
runs on this host with a private configuration (riscv64, an empty dpkg status, the Debian archive keys) and
downloads everything through fetch-oracle's proxy on a free loopback port. The packages are unpacked (no
maintainer scripts) with merged-/usr and busybox's applet links and /var/lib/dpkg/status; then come the
guest shim (/${GUEST_PATHS.shim.path}),
the cmio helper (/${GUEST_PATHS.cmioHelper.path}), the init (/${GUEST_PATHS.init.path}) and
/${IMAGE_METADATA_PATH} (packages and versions, epoch, netlock root).

Record (default): new downloads are fetched once and recorded; the netlock is written to FILE (default
OUT.netlock.json). Replay (--replay FILE): only FILE is served, offline; a download it lacks fails the build
with the miss explained. The same netlock, packages, guest files and options give a byte-identical image.

--base-tar writes a Debian riscv64 base as a tar instead (for a Dockerfile's \`FROM scratch\` + \`ADD rootfs.tar /\`
built by \`fetch-oracle build --machine\`): it stands in for a minbase debootstrap (${BASE_TAR_PACKAGES.length} packages:
Priority required, apt and curl, plus --packages), unpacked the same way, with /etc/passwd, /etc/group and apt's
sources written; no guest files, no busybox links. Sorted, numeric owners, every time --epoch: reproducible.
It is slim, as Debian's -slim images: no manuals, documentation (copyright files kept) or translations, dpkg
configured to skip them in later installs, and apt to keep no binary caches or .debs in the image (every byte
of the base is tarred and hashed by buildah in the emulated CPU); --keep-docs keeps them.

Options:
  --out FILE             the image to write (atomically: a temporary file beside it, then renamed)
  --packages LIST        more packages (comma- or space-separated, repeatable; NAME or NAME=VERSION)
  --base-tar             write a base tar (see above) instead of the machine's ext2
  --keep-docs            --base-tar: keep manuals, documentation and translations (not slim)
  --netlock FILE         record: where to write the netlock (default OUT.netlock.json)
  --replay FILE          build offline from FILE instead of recording
  --data DIR             data directory: blocks, records, keys (default $FETCH_ORACLE_DATA or
                         ~/.local/share/fetch-oracle)
  --trust KEY            replay: trust records signed by this ed25519 public key (hex; repeatable; default: the
                         data directory's own oracle key)
  --upstream-ca FILE     record: also trust this PEM CA for upstream TLS (repeatable)
  --mirror URL           the Debian mirror (default ${DEFAULT_MIRROR})
  --suite NAME           the Debian suite (default ${DEFAULT_SUITE})
  --free-mib N           free space in the image beyond its content, MiB (default ${DEFAULT_FREE_MIB})
  --epoch SECONDS        every timestamp in the image (default 0: 1970-01-01, where the machine's clock starts)
  --guest-dir DIR        take ${GUEST_DIST_NAMES.shim} and ${GUEST_DIST_NAMES.cmioHelper} (and ${GUEST_INIT_NAME}
                         if there) from DIR (default: this checkout's guest/dist, built by \`bash guest/build.sh all\`)
  -v, --verbose          also log the proxy's lines (one per request)
  -h, --help             show this help

Needs apt-get (apt), dpkg-deb (dpkg), mke2fs (e2fsprogs), qemu-riscv64-static (qemu-user-static), the Debian
archive keyring (debian-archive-keyring) and, unless run as root, unshare (util-linux) with user namespaces.

Exit status: 0 ok; 1 the build failed (an unknown package, a replay miss, apt, dpkg-deb or mke2fs); 2 usage;
125 a program it needs or the guest files are missing.
`;

const OPTIONS = {
  out: { type: 'string' },
  'base-tar': { type: 'boolean' },
  'keep-docs': { type: 'boolean' },
  packages: { type: 'string', multiple: true },
  netlock: { type: 'string' },
  replay: { type: 'string' },
  data: { type: 'string' },
  trust: { type: 'string', multiple: true },
  'upstream-ca': { type: 'string', multiple: true },
  mirror: { type: 'string' },
  suite: { type: 'string' },
  'free-mib': { type: 'string' },
  epoch: { type: 'string' },
  'guest-dir': { type: 'string' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Exit status when the host lacks a program or the guest files (as `build` and `run` use 125). */
export const MACHINE_IMAGE_SETUP_FAILED = 125;

/** A Debian package name (Policy §5.6.1), optionally `=VERSION`: nothing apt could read as an option. */
const PACKAGE = /^[a-z0-9][a-z0-9+.-]+(?:=[A-Za-z0-9.+~:-]+)?$/;

/** `--packages` values: split on commas and white space, each checked. */
export function parsePackages(values: readonly string[]): string[] {
  const names = values.flatMap((v) => v.split(/[\s,]+/)).filter((n) => n !== '');
  for (const n of names) if (!PACKAGE.test(n)) throw new UsageError(`--packages: ${JSON.stringify(n)} is not a Debian package name (lower case letters, digits, + - .; optionally =VERSION)`);
  return names;
}

function parseInteger(text: string | undefined, flag: string, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) > max) throw new UsageError(`${flag} expects a whole number from 0 to ${max}, got ${JSON.stringify(text)}`);
  return Number(text);
}

/** The checkout (or installed package) this module runs from: the nearest parent with package.json and guest/. */
function packageRoot(): string | undefined {
  for (let dir = import.meta.dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'guest'))) return dir;
    if (dirname(dir) === dir) return undefined;
  }
}

/** --guest-dir, or this checkout's guest/dist; the init from the same directory if it holds one, else guest/init. */
function guestLocations(guestDir: string | undefined): { dist: string; init: string } {
  const root = packageRoot() ?? process.cwd();
  const packaged = join(root, 'guest', 'init', GUEST_INIT_NAME);
  if (guestDir === undefined) return { dist: join(root, 'guest', 'dist'), init: packaged };
  const dist = resolve(guestDir);
  return { dist, init: existsSync(join(dist, GUEST_INIT_NAME)) ? join(dist, GUEST_INIT_NAME) : packaged };
}

async function runParsed(args: string[], context: CommandContext): Promise<number> {
  const { values } = parseCommandLine({ args, options: OPTIONS, allowPositionals: false, strict: true }, MACHINE_IMAGE_HELP);
  if (values.help === true) {
    context.stdout.write(MACHINE_IMAGE_HELP);
    return 0;
  }
  if (values.out === undefined) throw new UsageError(`machine image needs --out FILE\n\n${MACHINE_IMAGE_HELP}`);
  if (values['keep-docs'] === true && values['base-tar'] !== true) throw new UsageError('--keep-docs is a --base-tar option (the machine image keeps what its packages install)');
  const replay = values.replay;
  if (replay !== undefined) {
    for (const flag of ['netlock', 'upstream-ca'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} is a record option; with --replay FILE the netlock is FILE and nothing is fetched`);
    }
  } else if (values.trust !== undefined) {
    throw new UsageError('--trust is a replay option (use it with --replay FILE)');
  }
  const mirror = values.mirror ?? DEFAULT_MIRROR;
  if (!/^https?:\/\/[^\s"]+$/.test(mirror)) throw new UsageError(`--mirror expects an http:// or https:// URL, got ${JSON.stringify(mirror)}`);
  const suite = values.suite ?? DEFAULT_SUITE;
  if (!/^[a-z0-9][a-z0-9.-]*$/.test(suite)) throw new UsageError(`--suite expects a Debian suite or codename (e.g. ${DEFAULT_SUITE}), got ${JSON.stringify(suite)}`);
  const packages = parsePackages(values.packages ?? []);
  const freeMiB = parseInteger(values['free-mib'], '--free-mib', DEFAULT_FREE_MIB, 1024 * 1024);
  const epoch = parseInteger(values.epoch, '--epoch', 0, 2 ** 32 - 1);
  const trust = parseTrustedKeys(values.trust ?? []);
  const out = resolve(values.out);
  const logger = stderrLogger();

  let tools: ReturnType<typeof findImageTools>;
  let guest: Awaited<ReturnType<typeof findGuestFiles>> | undefined;
  try {
    tools = findImageTools();
    const where = guestLocations(values['guest-dir']);
    if (values['base-tar'] !== true) guest = await findGuestFiles(where.dist, where.init);
  } catch (err) {
    if (!(err instanceof ImageBuildError)) throw err;
    context.stderr.write(`fetch-oracle machine image: ${err.message}\n`);
    return MACHINE_IMAGE_SETUP_FAILED;
  }

  let oracle: ImageOracle;
  if (replay === undefined) {
    const upstreamCaPem = await readUpstreamCaPem(values['upstream-ca'] ?? [], process.env['NODE_EXTRA_CA_CERTS'], (m) => logger.warn('%s', m));
    oracle = { mode: 'record', netlockPath: resolve(values.netlock ?? `${out}.netlock.json`), upstreamCaPem };
  } else {
    oracle = { mode: 'replay', netlockPath: resolve(replay), ...(trust.length === 0 ? {} : { trust }) };
  }
  // SIGINT/SIGTERM stop the build: apt, tar or mke2fs is killed, the oracle closed, the temporary files removed.
  const abort = new AbortController();
  const stop = (signal: NodeJS.Signals): void => {
    logger.warn('%s: stopping the image build', signal);
    abort.abort();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  const unlisten = (): void => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  };
  const dataDir = resolve(values.data ?? context.defaultDataDir);
  const oracleLogger = stderrLogger({ quiet: values.verbose !== true }).child('oracle');
  if (guest === undefined) {
    const base = await buildBaseTar({ out, packages, oracle, dataDir, mirror, suite, epoch, keepDocs: values['keep-docs'] === true, tools, logger, oracleLogger }, { signal: abort.signal }).finally(unlisten);
    context.stdout.write(
      [
        `base tar: ${base.out}`,
        `packages: ${base.packages.length}`,
        `size: ${base.bytes} bytes`,
        `netlock: ${base.netlock.path} (${base.netlock.root}${base.netlock.count === undefined ? '' : `, ${base.netlock.count} entries`}, ${oracle.mode === 'record' ? 'recorded' : 'replayed offline'})`,
        `built in ${(base.elapsedMs / 1000).toFixed(1)} s`,
        `sha256: ${base.sha256}`,
        '',
      ].join('\n'),
    );
    return 0;
  }
  const result = await buildMachineImage({
    out,
    packages,
    oracle,
    dataDir,
    guest,
    mirror,
    suite,
    freeMiB,
    epoch,
    builderVersion: ORACLE_VERSION,
    tools,
    logger,
    oracleLogger,
  }, { signal: abort.signal }).finally(unlisten);
  const asked = result.requested.length;
  context.stdout.write(
    [
      `image: ${result.out}`,
      `packages: ${result.packages.length} (${result.requested.join(', ')} and ${result.packages.length - asked} dependencies)`,
      `size: ${result.bytes} bytes (${result.bytes / (1024 * 1024)} MiB, ${freeMiB} MiB free)`,
      `netlock: ${result.netlock.path} (${result.netlock.root}${result.netlock.count === undefined ? '' : `, ${result.netlock.count} entries`}, ${oracle.mode === 'record' ? 'recorded' : 'replayed offline'})`,
      `built in ${(result.elapsedMs / 1000).toFixed(1)} s`,
      `sha256: ${result.sha256}`,
      '',
    ].join('\n'),
  );
  return 0;
}

export const machineImageCommand: Command = {
  help: MACHINE_IMAGE_HELP,
  run: (args, context) => reportingErrors(context.stderr, 'fetch-oracle machine image', () => runParsed(args, context)),
};
