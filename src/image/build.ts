import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { writeCombinedBundle } from '../tls/client-env.ts';
import type { Logger } from '../log.ts';
import { Oracle } from '../oracle/oracle.ts';
import type { ReplayReport } from '../oracle/oracle.ts';
import type { WrittenNetlock } from '../netlock/file.ts';
import { runForwardingSignals } from '../run/child.ts';
import type { ChildExit } from '../run/child.ts';
import { recordedOrigins } from '../run/report.ts';
import { withReplaySandbox } from '../run/replay-sandbox.ts';
import { NAMESPACE_PROXY_PORT } from '../run/sandbox.ts';
import { BUILDAH_ISOLATION, DEFAULT_TIMESTAMP, removeContainers, storageArgs } from './buildah.ts';
import type { BuildahStorage } from './buildah.ts';
import { deriveDockerfile } from './derive.ts';
import type { KeptVariable, StageVariable } from './derive.ts';
import { AUTO_BUILD_ARGS, declaredArgs, dockerfileCandidates, fileCandidates, fileOptions, userBuildArgs } from './dockerfile.ts';
import { scrubVariables, scrubVolumes } from './scrub.ts';

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
  netlock?: WrittenNetlock;
  /** Replay: misses, unused entries, stats. */
  report?: ReplayReport;
  /** Replay: the origins the netlock holds anything for (for the miss report). */
  recordedOrigins?: Set<string>;
  /** Wall-clock time of this half, oracle start to close (for reports and bench/build.ts). */
  elapsedMs: number;
  /** What the derived Dockerfile gave every RUN step (see derive.ts). */
  variables: StageVariables;
}

/** What `build` did to give every RUN step SOURCE_DATE_EPOCH (and the scrub profiles' variables). */
export interface StageVariables {
  /** The variables, with their values. */
  given: StageVariable[];
  /** `stage N: ARG NAME=VALUE` lines inserted into the derived Dockerfile(s). */
  inserted: string[];
  /** Where the Dockerfile sets a variable itself (kept). */
  kept: KeptVariable[];
  /** Dockerfiles that could not be derived (stdin, a URL, a cpp `.in` file), and why: they reach buildah as they are. */
  notDerived: string[];
  /** Names passed as --build-arg instead (for a Dockerfile that could not be derived). */
  buildArgs: string[];
}

/** What `build` says about the variables RUN steps see (one line each). */
export function describeStageVariables(v: StageVariables, buildahArgs: readonly string[]): string[] {
  if (v.given.length === 0) return [];
  const set = userBuildArgs(buildahArgs);
  const lines: string[] = [];
  const shown = v.given.map((g) => (set.has(g.name) ? `${g.name} (your --build-arg)` : `${g.name}=${g.value}`)).join(', ');
  const stages = new Set(v.inserted.map((l) => l.split(':')[0])).size;
  if (v.inserted.length > 0) lines.push(`RUN steps see ${shown}: a derived Dockerfile declares them in ${stages} stage(s); yours is not changed`);
  for (const k of v.kept) lines.push(`${k.stage === 0 ? 'the global scope' : `stage ${k.stage}`} sets ${k.name} itself (${k.instruction.length > 80 ? `${k.instruction.slice(0, 77)}...` : k.instruction}): its value is kept from there on`);
  for (const d of v.notDerived) lines.push(`${d}: passed as it is; ${v.buildArgs.length === 0 ? 'your --build-args' : v.buildArgs.map((n) => `--build-arg ${n}`).join(', ')} reach only the stages that declare them with ARG`);
  return lines;
}

/** The argv of one `buildah build` and what the derived Dockerfiles did. */
export interface BuildahInvocation {
  argv: string[];
  variables: StageVariables;
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

/** The first of `candidates` that can be read, with its text. */
async function readFirst(candidates: readonly string[]): Promise<{ path: string; text: string } | undefined> {
  for (const path of candidates) {
    const text = await readFile(path, 'utf8').catch(() => undefined);
    if (text !== undefined) return { path, text };
  }
  return undefined;
}

/**
 * The buildah options with every Dockerfile replaced by a derived copy in `dir` that declares `given` in each
 * stage (derive.ts). The user's files are read, never written. A Dockerfile that cannot be read here (stdin,
 * a URL, a missing file: buildah then says why) or that buildah would run through cpp (`*.in`) is passed as
 * it is, and `given` goes to buildah as --build-args instead: they reach only the stages that declare them.
 */
async function withDerivedDockerfiles(init: Pick<BuildInit, 'buildahArgs' | 'context'>, given: readonly StageVariable[], dir: string): Promise<{ args: string[]; variables: StageVariables }> {
  const variables: StageVariables = { given: [...given], inserted: [], kept: [], notDerived: [], buildArgs: [] };
  const args = [...init.buildahArgs];
  const options = fileOptions(args);
  const sources = options.length > 0 ? options.map((o) => ({ option: o, candidates: fileCandidates(o.value, init.context), shown: o.value })) : [{ option: undefined, candidates: dockerfileCandidates([], init.context), shown: 'CONTEXT/Containerfile or Dockerfile' }];
  let n = 0;
  for (const source of sources) {
    const found = await readFirst(source.candidates);
    if (found === undefined || found.path.endsWith('.in')) {
      variables.notDerived.push(`${source.shown}: ${found === undefined ? 'not readable by fetch-oracle' : 'preprocessed by cpp in buildah'}`);
      continue;
    }
    const derived = deriveDockerfile(found.text, given);
    const out = join(dir, String(++n), basename(found.path));
    await mkdir(join(out, '..'), { recursive: true });
    await writeFile(out, derived.text);
    // Newer buildahs also read an ignore file named after the Dockerfile, next to it: it goes along.
    for (const suffix of ['.containerignore', '.dockerignore']) await copyFile(`${found.path}${suffix}`, `${out}${suffix}`).catch(() => undefined);
    variables.inserted.push(...derived.inserted);
    variables.kept.push(...derived.kept);
    if (source.option === undefined) args.push('--file', out);
    else args[source.option.index] = `${source.option.prefix}${out}`;
  }
  if (variables.notDerived.length > 0) {
    const set = userBuildArgs(init.buildahArgs);
    for (const v of given.filter((x) => !set.has(x.name))) {
      args.push('--build-arg', `${v.name}=${v.value}`);
      variables.buildArgs.push(v.name);
    }
  }
  return { args, variables };
}

/** The `buildah … build …` argv for one half of a build (without the namespace wrapper). */
export async function buildahArgv(init: Pick<BuildInit, 'buildah' | 'storage' | 'buildahArgs' | 'context' | 'scrub' | 'caTarget'>, files: { iidfile: string; caCert: string; scratch: string; dockerfiles: string }): Promise<BuildahInvocation> {
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
  const set = userBuildArgs(init.buildahArgs);
  if (init.caTarget !== undefined) {
    for (const name of AUTO_BUILD_ARGS) if (declared.has(name) && !set.has(name)) argv.push('--build-arg', `${name}=${init.caTarget}`);
  }
  // SOURCE_DATE_EPOCH is the build's timestamp, as buildah's --source-date-epoch would set it.
  const given = [{ name: 'SOURCE_DATE_EPOCH', value: timestamp ?? DEFAULT_TIMESTAMP }, ...scrubVariables(init.scrub)];
  const { args, variables } = await withDerivedDockerfiles(init, given, files.dockerfiles);
  argv.push(...args, init.context);
  return { argv, variables };
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
    let netlock: WrittenNetlock | undefined;
    let report: ReplayReport | undefined;
    let origins: Set<string> | undefined;
    let variables: StageVariables | undefined;
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
      const invocation = await buildahArgv(init, { iidfile, caCert: oracle.caCertPath, scratch: join(sandbox.dir, 'scrub'), dockerfiles: join(sandbox.dir, 'dockerfiles') });
      const argv = invocation.argv;
      variables = invocation.variables;
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
      variables: variables ?? { given: [], inserted: [], kept: [], notDerived: [], buildArgs: [] },
      exit,
      digest: digest === '' || digest === undefined ? undefined : digest,
      bridge,
      ...(netlock === undefined ? {} : { netlock }),
      ...(report === undefined ? {} : { report }),
      ...(origins === undefined ? {} : { recordedOrigins: origins }),
    };
  });
}
