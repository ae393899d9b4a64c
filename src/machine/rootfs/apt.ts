/**
 * The APT driver: a private APT configuration (its own state, lists, cache and sources; nothing read from the
 * host's /etc/apt or dpkg database) that resolves PACKAGES for Debian riscv64 from an empty dpkg status and
 * downloads the .debs through the oracle's proxy. apt checks the mirror's InRelease signature against the
 * Debian archive keys, and every index and .deb then against the checksums that signed file lists.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ImageBuildError, InvalidConfigError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { AbortOptions } from '../../protocol/blocks.ts';
import { lastLines, runTool } from './tools.ts';

/** The guest's architecture: the Cartesi Machine is RV64GC. */
export const IMAGE_ARCHITECTURE = 'riscv64';

export interface AptInit {
  /** An empty directory apt may own: its configuration, lists and package cache. */
  dir: string;
  packages: readonly string[];
  /** e.g. http://deb.debian.org/debian */
  mirror: string;
  /** e.g. trixie */
  suite: string;
  /** The oracle's proxy, `http://127.0.0.1:PORT/`: every download goes through it. */
  proxyUrl: string;
  aptGet: string;
  /** The keyring InRelease must be signed by. */
  keyring: string;
  logger: Logger;
}

/** A value inside an APT configuration string: it may hold neither a quote nor a newline. */
function quoted(value: string): string {
  if (/["\n]/.test(value)) throw new InvalidConfigError(`Invalid value for the APT configuration: ${JSON.stringify(value)}`);
  return `"${value}"`;
}

/**
 * The private configuration. Each setting pins something that would otherwise come from the host or vary:
 * - Dir, Dir::State::status, Dir::Etc::*: apt reads no host file (APT_CONFIG is read first, and names the rest);
 * - APT::Architectures: riscv64 only, not the host's; the empty status makes apt pull every dependency;
 * - Install-Recommends false: the smallest closure, as --no-install-recommends;
 * - Languages none: no Translation files to fetch (and none to record);
 * - Check-Valid-Until false: the netlock pins the index; a replay next year must still read it (the signature
 *   is still checked);
 * - Pipeline-Depth 0 and Retries 0: one request at a time per connection, and a replay miss fails at once
 *   instead of after apt's back-off;
 * - Sandbox::User root: as root, apt would hand the download directories to `_apt`; they are ours.
 */
export function aptConfiguration(init: Pick<AptInit, 'dir' | 'proxyUrl'>): string {
  const d = (p: string): string => quoted(join(init.dir, p));
  return [
    `Dir ${quoted(`${init.dir}/`)};`,
    `Dir::State ${d('state')};`,
    `Dir::State::status ${d('state/status')};`,
    `Dir::Cache ${d('cache')};`,
    `Dir::Etc ${d('etc')};`,
    `Dir::Etc::main ${d('etc/apt.conf')};`,
    `Dir::Etc::Parts ${d('etc/apt.conf.d')};`,
    `Dir::Etc::SourceList ${d('etc/sources.list')};`,
    `Dir::Etc::SourceParts ${d('etc/sources.list.d')};`,
    `Dir::Etc::Preferences ${d('etc/preferences')};`,
    `Dir::Etc::PreferencesParts ${d('etc/preferences.d')};`,
    `Dir::Etc::Trusted ${d('etc/trusted.gpg')};`,
    `Dir::Etc::TrustedParts ${d('etc/trusted.gpg.d')};`,
    `Dir::Log ${d('log')};`,
    `APT::Architecture ${quoted(IMAGE_ARCHITECTURE)};`,
    `APT::Architectures { ${quoted(IMAGE_ARCHITECTURE)}; };`,
    'APT::Install-Recommends "false";',
    'APT::Install-Suggests "false";',
    'APT::Sandbox::User "root";',
    'Acquire::Languages "none";',
    'Acquire::Check-Valid-Until "false";',
    'Acquire::Retries "0";',
    'Acquire::http::Pipeline-Depth "0";',
    `Acquire::http::Proxy ${quoted(init.proxyUrl)};`,
    `Acquire::https::Proxy ${quoted(init.proxyUrl)};`,
    '',
  ].join('\n');
}

/** The one sources.list line: `signed-by` pins the keys this source's InRelease must be signed by. */
export function aptSource(init: Pick<AptInit, 'mirror' | 'suite' | 'keyring'>): string {
  return `deb [arch=${IMAGE_ARCHITECTURE} signed-by=${init.keyring}] ${init.mirror} ${init.suite} main\n`;
}

/** The names apt could not find, from its error lines. */
export function unknownPackages(aptOutput: string): string[] {
  const names = new Set<string>();
  for (const line of aptOutput.split('\n')) {
    const m = /^E: Unable to locate package (\S+)/.exec(line) ?? /^E: Package '?([^'\s]+)'? has no installation candidate/.exec(line);
    if (m !== null) names.add(m[1]!);
  }
  return [...names];
}

/**
 * Resolves and downloads `packages` and every dependency (no recommends) for riscv64; resolves to the paths
 * of the downloaded .debs, sorted by file name (name_version_arch.deb), the order they are unpacked in.
 */
export async function downloadPackages(init: AptInit, options: AbortOptions = {}): Promise<string[]> {
  for (const sub of ['state/lists/partial', 'cache/archives/partial', 'etc/apt.conf.d', 'etc/sources.list.d', 'etc/preferences.d', 'etc/trusted.gpg.d', 'log']) {
    await mkdir(join(init.dir, sub), { recursive: true });
  }
  await writeFile(join(init.dir, 'state/status'), '');
  await writeFile(join(init.dir, 'etc/sources.list'), aptSource(init));
  const config = join(init.dir, 'apt.conf');
  await writeFile(config, aptConfiguration(init));
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', APT_CONFIG: config, LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive' };
  // -o on the command line too: the proxy must win over anything, and it is what the log shows.
  const common = ['-q', '-o', `Acquire::http::Proxy=${init.proxyUrl}`, '-o', `Acquire::https::Proxy=${init.proxyUrl}`];

  init.logger.info('apt-get update: %s %s (%s) through %s', init.mirror, init.suite, IMAGE_ARCHITECTURE, init.proxyUrl);
  const update = await runTool([init.aptGet, ...common, 'update'], { env, ...options });
  // apt-get update exits 0 even when an index failed to download; its "W:"/"E:" lines say so.
  const failed = /^(?:E:|W: (?:Failed to fetch|Some index files failed))/m.test(update.stderr);
  if (update.code !== 0 || failed) throw new ImageBuildError(`apt-get update failed (exit ${update.code}):\n${lastLines(`${update.stdout}\n${update.stderr}`)}`);

  init.logger.info('apt-get install --download-only: %s', init.packages.join(' '));
  const install = await runTool([init.aptGet, ...common, 'install', '-y', '--download-only', '--no-install-recommends', '--', ...init.packages], { env, ...options });
  if (install.code !== 0) {
    const unknown = unknownPackages(install.stderr);
    if (unknown.length > 0) {
      throw new InvalidConfigError(`--packages: ${unknown.map((n) => JSON.stringify(n)).join(', ')}: no such package in Debian ${init.suite} ${IMAGE_ARCHITECTURE} (main) at ${init.mirror}`);
    }
    throw new ImageBuildError(`apt-get install --download-only failed (exit ${install.code}):\n${lastLines(`${install.stdout}\n${install.stderr}`)}`);
  }
  const archives = join(init.dir, 'cache/archives');
  const debs = (await readdir(archives)).filter((n) => n.endsWith('.deb')).sort();
  return debs.map((n) => join(archives, n));
}
