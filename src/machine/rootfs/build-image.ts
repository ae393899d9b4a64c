/**
 * `fetch-oracle machine image`: the Cartesi Machine's root file system from Debian riscv64 packages, every
 * download through an oracle on a loopback port (recording a netlock, or replaying one offline), unpacked,
 * completed with the guest files and written as a byte-reproducible ext2 image.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ReplayMissError, throwIfAborted } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { NOOP_LOGGER } from '../../log.ts';
import { netlockRootOf, readNetlockRoot } from '../../netlock/file.ts';
import type { WrittenNetlock } from '../../netlock/file.ts';
import { Oracle } from '../../oracle/oracle.ts';
import type { AbortOptions } from '../../protocol/blocks.ts';
import { formatMissReport, recordedOrigins } from '../../run/report.ts';
import { downloadPackages, IMAGE_ARCHITECTURE } from './apt.ts';
import { writeExt2 } from './ext2.ts';
import { completeLayout, IMAGE_METADATA_PATH } from './layout.ts';
import type { GuestFiles, LayoutSummary } from './layout.ts';
import { DEBIAN_KEYRING, findImageTools } from './tools.ts';
import type { ImageTools } from './tools.ts';
import { unpackPackages } from './unpack.ts';
import type { ImagePackage } from './unpack.ts';

/** What every image holds: the shim's Node, the init's shell and tools, and the clients a build uses first. */
export const DEFAULT_IMAGE_PACKAGES = ['nodejs', 'busybox-static', 'curl', 'ca-certificates'] as const;
export const DEFAULT_MIRROR = 'http://deb.debian.org/debian';
export const DEFAULT_SUITE = 'trixie';
export const DEFAULT_FREE_MIB = 512;

/** The oracle the package downloads go through. */
export type ImageOracle =
  | { mode: 'record'; netlockPath: string; upstreamCaPem?: readonly string[] }
  | { mode: 'replay'; netlockPath: string; /** @default the data directory's key */ trust?: readonly Uint8Array[] };

export interface MachineImageInit {
  out: string;
  /** The packages besides DEFAULT_IMAGE_PACKAGES (duplicates are dropped; the list is sorted). */
  packages: readonly string[];
  oracle: ImageOracle;
  dataDir: string;
  guest: GuestFiles;
  /** @default DEFAULT_MIRROR */
  mirror?: string;
  /** @default DEFAULT_SUITE */
  suite?: string;
  /** @default DEFAULT_FREE_MIB */
  freeMiB?: number;
  /** Every timestamp in the image, seconds since 1970. @default 0 */
  epoch?: number;
  /** Written into the metadata (the CLI passes its version). */
  builderVersion: string;
  /** @default the programs found on PATH (findImageTools) */
  tools?: ImageTools;
  /** @default os.tmpdir() */
  workDir?: string;
  /** @default NOOP_LOGGER */
  logger?: Logger;
  /** The oracle's own log (one line per request). @default logger.child('oracle') */
  oracleLogger?: Logger;
}

/** /etc/fetch-oracle/image.json: what the image is made of. */
export interface ImageMetadata {
  v: 1;
  builder: { name: 'fetch-oracle'; version: string };
  distribution: { mirror: string; suite: string; architecture: string };
  /** The netlock the packages were downloaded through (its root CID). */
  netlock: string;
  epoch: number;
  /** What was asked for (defaults + --packages), sorted. */
  requested: string[];
  packages: Array<{ name: string; version: string; architecture: string }>;
  /** sha256 of each of our files. */
  guest: LayoutSummary['guest'];
}

export interface MachineImageResult {
  out: string;
  bytes: number;
  sha256: string;
  packages: ImagePackage[];
  requested: string[];
  /** The netlock's path and root CID. */
  netlock: { path: string; root: string; count?: number };
  metadata: ImageMetadata;
  elapsedMs: number;
}

/** The defaults plus `extra`, without duplicates, sorted (so the order given changes nothing). */
export function imagePackageList(extra: readonly string[]): string[] {
  return [...new Set([...DEFAULT_IMAGE_PACKAGES, ...extra])].sort();
}

/** Runs apt through an oracle; returns the .debs and the netlock root used. A replay miss explains itself. */
async function downloadThroughOracle(init: Pick<MachineImageInit, 'oracle' | 'dataDir' | 'mirror' | 'suite' | 'oracleLogger'>, tools: ImageTools, aptDir: string, requested: readonly string[], logger: Logger, options: AbortOptions): Promise<{ debs: string[]; netlock: MachineImageResult['netlock'] }> {
  if (init.oracle.mode === 'replay') await netlockRootOf(init.oracle.netlockPath); // a bad path fails before anything starts
  else await mkdir(dirname(init.oracle.netlockPath), { recursive: true });
  const oracle = new Oracle({ ...init.oracle, dataDir: init.dataDir, listen: { host: '127.0.0.1', port: 0 }, logger: init.oracleLogger ?? logger.child('oracle') });
  let debs: string[] | undefined;
  let failure: unknown;
  let file: WrittenNetlock | undefined;
  try {
    await oracle.start();
    const proxyUrl = `http://127.0.0.1:${oracle.proxyAddress().port}/`;
    const apt = { dir: aptDir, packages: requested, mirror: init.mirror ?? DEFAULT_MIRROR, suite: init.suite ?? DEFAULT_SUITE, proxyUrl, aptGet: tools.aptGet, keyring: DEBIAN_KEYRING, logger };
    debs = await downloadPackages(apt, options).catch((err: unknown) => {
      failure = err;
      return undefined;
    });
    // A replay that missed fails with the misses explained, whatever apt made of the 504s it got.
    const report = await oracle.replayReport();
    if (report !== undefined && report.misses.length > 0) {
      const words = { who: 'apt (downloading the packages)', rerecord: '`fetch-oracle machine image --netlock FILE` (without --replay)' };
      throw new ReplayMissError(formatMissReport(report, await recordedOrigins(init.oracle.netlockPath, oracle.store), init.oracle.netlockPath, words).trimEnd());
    }
  } finally {
    // Also when apt failed: a recording keeps what was fetched, for a look at what went wrong.
    file = await oracle.close();
    if (file !== undefined) logger.info('netlock %s (%d entries) written to %s', file.netlock, file.count, init.oracle.netlockPath);
  }
  if (debs === undefined) throw failure;
  if (file !== undefined) return { debs, netlock: { path: init.oracle.netlockPath, root: file.netlock, count: file.count } };
  const read = await readNetlockRoot(init.oracle.netlockPath);
  return { debs, netlock: { path: init.oracle.netlockPath, root: read.root.toString(), ...(read.file === undefined ? {} : { count: read.file.count }) } };
}

/**
 * Downloads `requested` and its dependencies through the oracle and unpacks them into `work/root` (no
 * maintainer scripts): the start of both the machine image and the base tar.
 */
export async function downloadAndUnpack(init: Pick<MachineImageInit, 'oracle' | 'dataDir' | 'mirror' | 'suite' | 'oracleLogger'>, tools: ImageTools, work: string, requested: readonly string[], logger: Logger, options: AbortOptions): Promise<{ root: string; packages: ImagePackage[]; netlock: MachineImageResult['netlock'] }> {
  const { debs, netlock } = await downloadThroughOracle(init, tools, join(work, 'apt'), requested, logger, options);
  const root = join(work, 'root');
  await mkdir(root);
  logger.info('unpacking %d packages', debs.length);
  return { root, packages: await unpackPackages(tools, debs, root, options), netlock };
}

/** Builds the image (see the module comment); `init.out` appears only when it is complete. */
export async function buildMachineImage(init: MachineImageInit, options: AbortOptions = {}): Promise<MachineImageResult> {
  throwIfAborted(options.signal);
  const started = performance.now();
  const logger = init.logger ?? NOOP_LOGGER;
  const tools = init.tools ?? findImageTools();
  const requested = imagePackageList(init.packages);
  const epoch = init.epoch ?? 0;
  const work = await mkdtemp(join(init.workDir ?? tmpdir(), 'fetch-oracle-image-'));
  try {
    const { root, packages, netlock } = await downloadAndUnpack(init, tools, work, requested, logger, options);
    const layout = await completeLayout(tools, root, init.guest, options);
    const metadata: ImageMetadata = {
      v: 1,
      builder: { name: 'fetch-oracle', version: init.builderVersion },
      distribution: { mirror: init.mirror ?? DEFAULT_MIRROR, suite: init.suite ?? DEFAULT_SUITE, architecture: IMAGE_ARCHITECTURE },
      netlock: netlock.root,
      epoch,
      requested,
      packages: packages.map(({ name, version, architecture }) => ({ name, version, architecture })),
      guest: layout.guest,
    };
    await writeFile(join(root, IMAGE_METADATA_PATH), `${JSON.stringify(metadata, null, 2)}\n`);
    await chmod(join(root, IMAGE_METADATA_PATH), 0o644);
    logger.info('writing the ext2 image (%d busybox applet links)', layout.busyboxApplets);
    await mkdir(dirname(init.out), { recursive: true });
    const ext2 = await writeExt2({ tools, root, out: init.out, epoch, freeMiB: init.freeMiB ?? DEFAULT_FREE_MIB }, options);
    return { out: init.out, bytes: ext2.bytes, sha256: ext2.sha256, packages, requested, netlock, metadata, elapsedMs: Math.round(performance.now() - started) };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
