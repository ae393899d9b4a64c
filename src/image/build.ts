import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeCombinedBundle } from '../tls/client-env.ts';
import type { Logger } from '../log.ts';
import { Oracle } from '../oracle/oracle.ts';
import type { ReplayReport } from '../oracle/oracle.ts';
import type { NetlockFile } from '../netlock/file.ts';
import { runForwardingSignals } from '../run/child.ts';
import type { ChildExit } from '../run/child.ts';
import { recordedOrigins } from '../run/report.ts';
import { withReplaySandbox } from '../run/replay-sandbox.ts';
import { NAMESPACE_PROXY_PORT } from '../run/sandbox.ts';
import { BUILDAH_ISOLATION, DEFAULT_TIMESTAMP, removeContainers, storageArgs } from './buildah.ts';
import type { BuildahStorage } from './buildah.ts';
import { AUTO_BUILD_ARGS, declaredArgs, dockerfileCandidates, userBuildArgs } from './dockerfile.ts';
import { scrubVolumes } from './scrub.ts';

/** Where the oracle's CA certificate is bind-mounted in every RUN step unless `--ca-path` says otherwise. */
export const DEFAULT_CA_TARGET = '/etc/ssl/certs/ca-certificates.crt';

/** Proxy variables a build must not inherit from the caller: the sandbox's own replace them. */
const PROXY_VARIABLES = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'ftp_proxy', 'FTP_PROXY', 'no_proxy', 'NO_PROXY', 'all_proxy', 'ALL_PROXY'];

/** The oracle a build goes through: one that records (the netlock it writes) or one that replays a netlock. */
export type BuildOracle =
  | { mode: 'record'; netlockPath: string; /** PEM CAs the upstream client trusts besides the system's. */ upstreamCaPem?: readonly string[] }
  | { mode: 'replay'; netlockPath: string; /** Trusted oracle keys. @default the data directory's key */ trust?: readonly Uint8Array[] };

/** What the log says a build is doing, by its oracle's mode. */
const DOING = { record: 'recording', replay: 'replaying offline' } as const;

export interface BuildInit {
  oracle: BuildOracle;
  /** Path of the buildah executable. */
  buildah: string;
  /** Path of iproute2's `ip` (the bridge brings `lo` up with it). */
  ip: string;
  dataDir: string;
  context: string;
  /** buildah build options passed through as given (after ours, so that they win where both are given). */
  buildahArgs: readonly string[];
  storage: BuildahStorage;
  /** `--scrub` profiles (see scrub.ts). */
  scrub: readonly string[];
  /** Where RUN steps see the oracle's CA certificate; undefined = not mounted. */
  caTarget: string | undefined;
  logger: Logger;
}

export interface BuildOutcome {
  /** How buildah (inside the namespace) ended. */
  exit: ChildExit;
  /** Image ID (`sha256:…`) from buildah's --iidfile; undefined if the build failed. */
  digest: string | undefined;
  /** How the namespace bridge fared (see ReplaySandbox.bridgeStatus). */
  bridge: { state: 'started' } | { state: 'failed' | 'missing'; message: string };
  /** Record: the netlock written. */
  netlock?: NetlockFile;
  /** Replay: misses, unused entries, stats. */
  report?: ReplayReport;
  /** Replay: the origins the netlock holds anything for (for the miss report). */
  recordedOrigins?: Set<string>;
  /** Wall-clock time of this half, oracle start to close (for reports and bench/build.ts). */
  elapsedMs: number;
}

/** The value of `--timestamp` among the user's buildah options, if any. */
function userTimestamp(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--timestamp') return args[i + 1];
    if (a.startsWith('--timestamp=')) return a.slice('--timestamp='.length);
  }
  return undefined;
}

/** The `buildah … build …` argv for one half of a build (without the namespace wrapper). */
export async function buildahArgv(init: BuildInit, files: { iidfile: string; caCert: string; scratch: string }): Promise<string[]> {
  const timestamp = userTimestamp(init.buildahArgs);
  const argv = [
    init.buildah,
    ...storageArgs(init.storage),
    'build',
    '--isolation',
    BUILDAH_ISOLATION,
    // With --layers (the user's choice: one layer per instruction, so that a mismatch names its instruction,
    // but every layer is a full copy under vfs, about 5x slower here) a cached step would make no requests: the
    // netlock would lack them and the replay would rebuild nothing.
    '--no-cache',
    '--iidfile',
    files.iidfile,
    ...(timestamp === undefined ? ['--timestamp', DEFAULT_TIMESTAMP] : []),
  ];
  if (init.caTarget !== undefined) argv.push('--volume', `${files.caCert}:${init.caTarget}:ro`);
  argv.push(...(await scrubVolumes(init.scrub, files.scratch)));
  const declared = await declaredArgs(dockerfileCandidates(init.buildahArgs, init.context));
  const given = userBuildArgs(init.buildahArgs);
  for (const name of AUTO_BUILD_ARGS) {
    if (!declared.has(name) || given.has(name)) continue;
    if (name === 'SOURCE_DATE_EPOCH') argv.push('--build-arg', `${name}=${timestamp ?? DEFAULT_TIMESTAMP}`);
    else if (init.caTarget !== undefined) argv.push('--build-arg', `${name}=${init.caTarget}`);
  }
  argv.push(...init.buildahArgs, init.context);
  return argv;
}


/**
 * Runs one `buildah build` inside a new network namespace that has only a loopback interface, whose only way
 * out is a bridge to the oracle's unix socket: a recording oracle (record) or one serving a netlock (replay).
 * Both halves see the very same network (the proxy at 127.0.0.1:NAMESPACE_PROXY_PORT, nothing else), so a
 * step that bypasses the proxy fails while recording already, and the proxy address a step may write into
 * the image is the same in both. RUN steps get the proxy through buildah's predefined proxy ARGs (it passes
 * its own HTTP(S)_PROXY on), the oracle's CA as a read-only bind mount at `caTarget`, and buildah's own
 * image pulls go through the same proxy.
 */
export async function buildInNamespace(init: BuildInit): Promise<BuildOutcome> {
  await mkdir(init.storage.root, { recursive: true });
  const started = performance.now();
  return withReplaySandbox(async (sandbox) => {
    const oracle = new Oracle({ ...init.oracle, dataDir: init.dataDir, listen: { path: sandbox.socketPath }, logger: init.logger });
    let exit: ChildExit;
    let netlock: NetlockFile | undefined;
    let report: ReplayReport | undefined;
    let origins: Set<string> | undefined;
    const iidfile = join(sandbox.dir, 'iid');
    try {
      await oracle.start();
      const bundle = join(sandbox.dir, 'ca-bundle.pem');
      await writeCombinedBundle(await readFile(oracle.caCertPath, 'utf8'), bundle);
      const proxyUrl = `http://127.0.0.1:${NAMESPACE_PROXY_PORT}`;
      const env: NodeJS.ProcessEnv = { ...process.env };
      for (const v of PROXY_VARIABLES) delete env[v];
      // buildah passes these four on to every RUN step (--http-proxy, on by default) and uses them itself to
      // pull base images; SSL_CERT_FILE makes its (Go) registry client trust the oracle for those pulls.
      Object.assign(env, { HTTP_PROXY: proxyUrl, http_proxy: proxyUrl, HTTPS_PROXY: proxyUrl, https_proxy: proxyUrl, SSL_CERT_FILE: bundle });
      // RUN steps trust only the oracle's CA: every TLS connection they can make goes through it, and the file
      // they see is then the same on every host (the host's own bundle never enters a step).
      const argv = await buildahArgv(init, { iidfile, caCert: oracle.caCertPath, scratch: join(sandbox.dir, 'scrub') });
      init.logger.info('%s: %s', DOING[init.oracle.mode], argv.join(' '));
      exit = await runForwardingSignals(sandbox.commandLine(argv, init.ip), env, (s) => init.logger.info('%s: forwarded to buildah', s), 'stderr');
      // A replaying oracle reports its misses (a recording one has none to report).
      report = await oracle.replayReport();
      if (report !== undefined && report.misses.length > 0) origins = await recordedOrigins(init.oracle.netlockPath, oracle.store);
    } finally {
      // Also when the build failed: the netlock holds what it fetched, for a look at what went wrong.
      netlock = await oracle.close();
      await removeContainers(init.buildah, init.storage);
    }
    const text = exit.code === 0 ? await readFile(iidfile, 'utf8').catch(() => undefined) : undefined;
    const digest = text?.trim().replace(/^(?!sha256:)/, 'sha256:');
    const bridge = await sandbox.bridgeStatus();
    await rm(join(sandbox.dir, 'scrub'), { recursive: true, force: true });
    return {
      elapsedMs: Math.round(performance.now() - started),
      exit,
      digest: digest === '' || digest === undefined ? undefined : digest,
      bridge,
      ...(netlock === undefined ? {} : { netlock }),
      ...(report === undefined ? {} : { report }),
      ...(origins === undefined ? {} : { recordedOrigins: origins }),
    };
  });
}
