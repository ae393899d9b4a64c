import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readUpstreamCaPem } from '../upstream/fetcher.ts';
import { join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import type { Command } from './command.ts';
import { MACHINE_BUILD_HELP, runMachineBuild } from './build-machine.ts';
import { MACHINE_SETUP_OPTIONS } from './machine-flags.ts';
import { parseCommandLine, parseTrustedKeys, reportingErrors, stderrLogger, UsageError } from './common.ts';
import { BUILDAH_INSTALL, buildahMissingMessage, findBuildah, storageOf } from '../image/buildah.ts';
import { DEFAULT_CA_TARGET, buildInNamespace, describeStageVariables } from '../image/build.ts';
import type { BuildInit, BuildOracle, BuildOutcome } from '../image/build.ts';
import { compareImages, formatImageDifference } from '../image/image-diff.ts';
import type { ImageDifference } from '../image/image-diff.ts';
import { parseScrub, scrubNames } from '../image/scrub.ts';
import { netlockRootOf } from '../netlock/file.ts';
import { PROVENANCE_FLAG_HELP, writeBuildProvenance } from './provenance.ts';
import { formatMissReport, groupMisses } from '../run/report.ts';
import { NAMESPACE_PROXY_PORT, findIp, unshareProblem } from '../run/sandbox.ts';
import { SYNC_HELP, SYNC_OPTIONS, syncInitFromFlags } from './front-flags.ts';

export const DEFAULT_BUILD_NETLOCK = 'fetch-oracle.netlock.json';

export const BUILD_HELP = `Usage: fetch-oracle build [--netlock FILE] [options] [buildah build options] CONTEXT
       fetch-oracle build --replay FILE [options] [buildah build options] CONTEXT
       fetch-oracle build --check [--netlock FILE] [options] [buildah build options] CONTEXT
       fetch-oracle build --machine [--replay FILE | --check] [--image FILE] [--out FILE] [options] CONTEXT

Builds the unmodified Dockerfile in CONTEXT with buildah (--isolation chroot --storage-driver vfs --timestamp 0
--no-cache), with buildah itself inside a network namespace that has only a loopback interface: the
only way out is fetch-oracle's proxy (127.0.0.1:${NAMESPACE_PROXY_PORT} in the namespace). RUN steps get the proxy
through buildah's predefined proxy build arguments (HTTP_PROXY, HTTPS_PROXY and lower case) and trust the
oracle's CA through a read-only bind mount of it at --ca-path (the Dockerfile is not edited; neither enters the
image's history). Every RUN step sees SOURCE_DATE_EPOCH (the --timestamp, 0 by default): buildah hands a RUN step
only the ARGs its stage declares, so buildah gets a derived copy of the Dockerfile with \`ARG SOURCE_DATE_EPOCH=0\`
after each FROM (the history shows it, as for any ARG); a stage that sets SOURCE_DATE_EPOCH itself (ARG with a
value, ENV) keeps its value, and --build-arg SOURCE_DATE_EPOCH=N wins everywhere. Prints the image ID (sha256:…: the digest of the image configuration, which names every
layer's content) on stdout; buildah's own output goes to stderr.

Record (default): a recording proxy; the netlock of every request the build made is written to FILE (default
./${DEFAULT_BUILD_NETLOCK}), also if the build failed. The image stays in --storage.
Replay (--replay FILE): a proxy that serves only FILE; a request not in it fails (504) and is reported by host
and URL after the build, which then exits 1 even if buildah succeeded.
Check (--check): records, then rebuilds offline from the new netlock, each half in its own empty storage (so
base images too come through the proxy), and exits 1 unless both give the same image ID, naming the first
layer that differs, the instructions that made it and the paths that differ in it (buildah puts a stage's
instructions in one layer unless you pass --layers, which names the very instruction but is slower on vfs).

Options:
  --netlock FILE         record/check: where to write the netlock (default ./${DEFAULT_BUILD_NETLOCK})
  --replay FILE          rebuild offline from FILE instead of recording
  --check                record, rebuild offline, compare the two image IDs
  --data DIR             data directory: blocks, records, keys, CA (default $FETCH_ORACLE_DATA or
                         ~/.local/share/fetch-oracle)
  --storage DIR          buildah storage (--root DIR/root, --runroot DIR/runroot; default DATA/buildah);
                         --check uses two fresh storages under it and removes them afterwards
  --keep-storage         check: keep the two storages (their paths are printed)
  --scrub LIST           keep logs and caches RUN steps write out of the layers by mounting an empty scratch
                         directory over them in every RUN step, or by telling the tool not to write them
                         (comma-separated, repeatable):
                         ${scrubNames()} (default: none); docs/reproducible-builds.md
                         lists what each covers
  --ca-path PATH         where RUN steps see the oracle's CA certificate (default ${DEFAULT_CA_TARGET});
                         none: do not mount it (plain-HTTP builds). Build arguments SSL_CERT_FILE,
                         NODE_EXTRA_CA_CERTS, PIP_CERT, … are set to it for you when the Dockerfile
                         declares them with ARG
  --upstream-ca FILE     record: also trust this PEM CA for upstream TLS (repeatable)
${SYNC_HELP}  --trust KEY            replay: trust records signed by this ed25519 public key (hex; repeatable)
  --iidfile FILE         also write the image ID to FILE
${PROVENANCE_FLAG_HELP}; its subject is the
                         image ID (the build ran in a namespace whose only way out was the proxy, so record,
                         replay and check all qualify; check writes it only when the two IDs agree)
  --report FILE          write a JSON report (digests, netlock, misses, differences)
  --allow-misses         replay: do not fail a successful build that made requests outside the netlock
  -v, --verbose          also log the proxy's info lines to stderr
  -h, --help             show this help

Everything else before CONTEXT goes to \`buildah build\` as given (-f FILE, -t NAME, --build-arg A=B, …), except
--isolation, --storage-driver, --root, --runroot, --network and --http-proxy, which fetch-oracle sets.
Needs root (a network namespace), buildah (${BUILDAH_INSTALL}), unshare (util-linux) and ip (iproute2).

${MACHINE_BUILD_HELP}
Exit status: 0 ok; buildah's exit code if the build failed; 1 if --check found different image IDs or a replay
made requests outside the netlock; 2 usage; 125 if the sandbox could not be set up or buildah is missing.
`;

const OPTIONS = {
  netlock: { type: 'string' },
  replay: { type: 'string' },
  check: { type: 'boolean' },
  data: { type: 'string' },
  storage: { type: 'string' },
  'keep-storage': { type: 'boolean' },
  scrub: { type: 'string', multiple: true },
  'ca-path': { type: 'string' },
  'upstream-ca': { type: 'string', multiple: true },
  ...SYNC_OPTIONS,
  trust: { type: 'string', multiple: true },
  iidfile: { type: 'string' },
  provenance: { type: 'string' },
  report: { type: 'string' },
  'allow-misses': { type: 'boolean' },
  machine: { type: 'boolean' },
  ...MACHINE_SETUP_OPTIONS,
  out: { type: 'string' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** buildah options fetch-oracle sets itself: a user value would break the sandbox or the digest. */
const RESERVED = ['--isolation', '--storage-driver', '--root', '--runroot', '--network', '--net', '--http-proxy'];

export const BUILD_SETUP_FAILED = 125;
export const BUILD_NOT_REPRODUCIBLE = 1;

/**
 * Splits the arguments into fetch-oracle's own options (wherever they appear), the buildah options (in
 * their order) and CONTEXT (the last argument, as for `buildah build`).
 */
export function splitBuildArgs(args: readonly string[]): { own: string[]; buildah: string[]; context: string | undefined } {
  const own: string[] = [];
  const buildah: string[] = [];
  const valued = new Set(Object.entries(OPTIONS).filter(([, o]) => o.type === 'string').map(([n]) => `--${n}`));
  const flags = new Set([...Object.entries(OPTIONS).filter(([, o]) => o.type === 'boolean').map(([n]) => `--${n}`), '-v', '-h']);
  const rest = [...args];
  const context = rest.length > 0 && !rest[rest.length - 1]!.startsWith('-') ? rest.pop() : undefined;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    const name = a.split('=')[0]!;
    if (valued.has(name)) {
      own.push(a);
      if (!a.includes('=') && i + 1 < rest.length) own.push(rest[++i]!);
    } else if (flags.has(a)) own.push(a);
    else buildah.push(a);
  }
  return { own, buildah, context };
}

function say(text: string): void {
  process.stderr.write(`fetch-oracle build: ${text}\n`);
}

/** `fetch-oracle build …`: returns the exit code. */
export async function runBuild(args: string[], dataDirDefault: string, io: { stdout?: Writable; stderr?: Writable } = {}): Promise<number> {
  return reportingErrors(io.stderr ?? process.stderr, 'fetch-oracle', () => buildParsed(args, dataDirDefault, io.stdout ?? process.stdout));
}

interface Plan {
  base: Omit<BuildInit, 'oracle' | 'storage'>;
  /** The recording and the replaying oracle of this build's halves. */
  recordOracle: BuildOracle;
  replayOracle: BuildOracle;
  storageDir: string;
  netlockPath: string;
  replay: string | undefined;
  check: boolean;
  keepStorage: boolean;
  allowMisses: boolean;
  iidfile: string | undefined;
  provenance: string | undefined;
  startedOn: Date;
  reportPath: string | undefined;
}

async function buildParsed(args: string[], dataDirDefault: string, stdout: Writable): Promise<number> {
  const { own, buildah: buildahArgs, context } = splitBuildArgs(args);
  const { values } = parseCommandLine({ args: own, options: OPTIONS, allowPositionals: false, strict: true }, BUILD_HELP);
  if (values.help === true) {
    stdout.write(BUILD_HELP);
    return 0;
  }
  if (context === undefined) throw new UsageError(`build needs a CONTEXT directory (the last argument)\n\n${BUILD_HELP}`);
  const reserved = buildahArgs.filter((a) => RESERVED.includes(a.split('=')[0]!));
  if (reserved.length > 0) throw new UsageError(`${reserved.join(' ')}: fetch-oracle build sets this buildah option itself (see --help)`);
  if (values.replay !== undefined && values.check === true) throw new UsageError('--replay and --check exclude each other (--check records and replays by itself)');
  if (values.replay !== undefined) {
    for (const flag of ['netlock', 'upstream-ca', 'sync'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} is a record option; with --replay FILE the netlock is FILE and nothing is fetched`);
    }
  }
  const sync = syncInitFromFlags(values);
  let scrub: string[];
  try {
    scrub = parseScrub(values.scrub ?? []);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const trust = parseTrustedKeys(values.trust ?? []);
  const caPath = values['ca-path'] ?? DEFAULT_CA_TARGET;
  if (caPath !== 'none' && !caPath.startsWith('/')) throw new UsageError(`--ca-path expects an absolute path in the image or none, got ${JSON.stringify(caPath)}`);

  if (values.machine === true) {
    for (const flag of ['storage', 'keep-storage', 'allow-misses', 'report'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} is an option of the host build, not of --machine`);
    }
    const init = { context: resolve(context), buildahArgs, scrub, caTarget: caPath === 'none' ? undefined : caPath };
    const { scrub: _s, ...rest } = values;
    return runMachineBuild({ ...rest, scrub, caTarget: init.caTarget, trust }, init, dataDirDefault, { stdout, stderr: process.stderr });
  }
  for (const flag of ['image', 'out', 'time', 'ram-mib', 'input-mib', 'output-mib', 'max-mcycle', 'no-snapshot', 'emulator', 'kernel'] as const) {
    if (values[flag] !== undefined) throw new UsageError(`--${flag} is an option of build --machine`);
  }
  const buildah = findBuildah();
  if (buildah === undefined) {
    say(buildahMissingMessage());
    return BUILD_SETUP_FAILED;
  }
  const ip = findIp();
  const problem = unshareProblem(ip);
  if (problem !== undefined || ip === undefined) {
    say((problem ?? '`ip` was not found').replace(/run --replay/g, 'build'));
    return BUILD_SETUP_FAILED;
  }
  const dataDir = resolve(values.data ?? dataDirDefault);
  const logger = stderrLogger({ quiet: values.verbose !== true });
  const netlockPath = resolve(values.replay ?? values.netlock ?? DEFAULT_BUILD_NETLOCK);
  const plan: Plan = {
    base: {
      buildah,
      ip,
      dataDir,
      context: resolve(context),
      buildahArgs,
      scrub,
      caTarget: caPath === 'none' ? undefined : caPath,
      logger,
    },
    recordOracle: { mode: 'record', netlockPath, upstreamCaPem: await readUpstreamCaPem(values['upstream-ca'] ?? [], process.env['NODE_EXTRA_CA_CERTS'], (m) => logger.warn('%s', m)), ...sync },
    replayOracle: { mode: 'replay', netlockPath, ...(trust.length === 0 ? {} : { trust }) },
    storageDir: resolve(values.storage ?? join(dataDir, 'buildah')),
    netlockPath,
    replay: values.replay,
    check: values.check === true,
    keepStorage: values['keep-storage'] === true,
    allowMisses: values['allow-misses'] === true,
    iidfile: values.iidfile === undefined ? undefined : resolve(values.iidfile),
    provenance: values.provenance === undefined ? undefined : resolve(values.provenance),
    startedOn: new Date(),
    reportPath: values.report === undefined ? undefined : resolve(values.report),
  };
  if (plan.replay !== undefined) await netlockRootOf(plan.netlockPath); // a missing or malformed netlock fails before anything starts
  if (plan.check) return check(plan);
  const outcome = await buildInNamespace({ ...plan.base, oracle: plan.replay === undefined ? plan.recordOracle : plan.replayOracle, storage: storageOf(plan.storageDir) });
  const code = conclude(outcome, plan, plan.replay === undefined ? 'record' : 'replay');
  if (code === 0 && outcome.digest !== undefined) {
    process.stdout.write(`${outcome.digest}\n`);
    if (plan.iidfile !== undefined) await writeFile(plan.iidfile, outcome.digest);
    await writeProvenanceOf(plan, outcome.digest, outcome);
  }
  await writeReport(plan, { mode: plan.replay === undefined ? 'record' : 'replay', exitCode: code, ...summary(outcome) });
  return code;
}

function summary(o: BuildOutcome): Record<string, unknown> {
  return {
    digest: o.digest ?? null,
    buildahExitCode: o.exit.code,
    elapsedMs: o.elapsedMs,
    variables: o.variables,
    ...(o.netlock === undefined ? {} : { netlock: o.netlock.netlock, count: o.netlock.count }),
    ...(o.report === undefined ? {} : { replay: o.report }),
  };
}

/** `--provenance FILE`: the image ID as subject, every netlock entry as a dependency. */
async function writeProvenanceOf(plan: Plan, imageId: string, outcome: BuildOutcome): Promise<void> {
  if (plan.provenance === undefined) return;
  // --allow-misses lets a build with misses succeed, but its network input was then not all in the netlock.
  const misses = outcome.report?.misses.length ?? 0;
  if (misses > 0) {
    say(`no provenance written: the build made ${misses} request(s) outside the netlock`);
    return;
  }
  say(await writeBuildProvenance({ out: plan.provenance, netlockPath: plan.netlockPath, dataDir: plan.base.dataDir, imageIds: [imageId], tool: 'build', startedOn: plan.startedOn }));
}

async function writeReport(plan: Plan, report: Record<string, unknown>): Promise<void> {
  if (plan.reportPath !== undefined) await writeFile(plan.reportPath, `${JSON.stringify({ context: plan.base.context, ...report }, null, 2)}\n`);
}

/** Reports one half's outcome on stderr and returns its exit code (0 only for a clean build). */
function conclude(o: BuildOutcome, plan: Plan, half: 'record' | 'replay'): number {
  if (o.exit.spawnError !== undefined) {
    say(`cannot run unshare: ${o.exit.spawnError.message}`);
    return BUILD_SETUP_FAILED;
  }
  if (o.bridge.state === 'missing') say(`${o.bridge.message} (unshare exited ${o.exit.code})`);
  if (o.bridge.state !== 'started') return BUILD_SETUP_FAILED; // a failed bridge has said why on stderr
  // Both halves give the same variables: said once, by the first.
  if (half === 'record' || plan.replay !== undefined) for (const line of describeStageVariables(o.variables, plan.base.buildahArgs)) say(line);
  if (o.netlock !== undefined) say(`recorded ${o.netlock.count} request(s): netlock ${o.netlock.netlock} written to ${plan.netlockPath}`);
  const misses = o.report?.misses ?? [];
  if (o.report !== undefined && misses.length > 0) {
    process.stderr.write(formatMissReport(o.report, o.recordedOrigins ?? new Set(), plan.netlockPath, { who: 'fetch-oracle build', rerecord: '`fetch-oracle build` (without --replay)' }));
  }
  if (o.exit.code !== 0) {
    say(`buildah build failed (exit ${o.exit.code}) while ${half === 'record' ? 'recording' : 'rebuilding offline'}${misses.length > 0 ? `; it made ${groupMisses(misses).length} request(s) outside the netlock (above)` : ''}`);
    return o.exit.code;
  }
  if (o.digest === undefined) {
    say('buildah succeeded but wrote no image ID');
    return BUILD_SETUP_FAILED;
  }
  const errors = o.report?.stats.errors ?? 0;
  if (errors > 0) say(`${errors} request(s) failed in the replay proxy itself (bad requests, or records/blocks that did not verify: see the warnings above)`);
  if (misses.length > 0 && !plan.allowMisses) {
    say(`the build succeeded but made ${groupMisses(misses).length} request(s) outside the netlock: failing (--allow-misses to accept that)`);
    return BUILD_NOT_REPRODUCIBLE;
  }
  say(`${half === 'record' ? 'built' : 'rebuilt offline'}: image ${o.digest}`);
  return 0;
}

async function check(plan: Plan): Promise<number> {
  await mkdir(plan.storageDir, { recursive: true });
  const dir = await mkdtemp(join(plan.storageDir, 'check-'));
  const record = storageOf(join(dir, 'record'));
  const replay = storageOf(join(dir, 'replay'));
  try {
    say(`1/2 recording into ${plan.netlockPath}`);
    const rec = await buildInNamespace({ ...plan.base, oracle: plan.recordOracle, storage: record });
    const recCode = conclude(rec, plan, 'record');
    if (recCode !== 0) {
      await writeReport(plan, { mode: 'check', exitCode: recCode, record: summary(rec) });
      return recCode;
    }
    say('2/2 rebuilding offline from the netlock, in an empty storage');
    const rep = await buildInNamespace({ ...plan.base, oracle: plan.replayOracle, storage: replay });
    const repCode = conclude(rep, plan, 'replay');
    if (repCode !== 0) {
      await writeReport(plan, { mode: 'check', exitCode: repCode, record: summary(rec), replay: summary(rep) });
      return repCode;
    }
    let difference: ImageDifference | undefined;
    let code = 0;
    if (rec.digest === rep.digest) {
      say(`reproducible: the offline rebuild gave the recorded image ${rec.digest}`);
      process.stdout.write(`${rec.digest}\n`);
      if (plan.iidfile !== undefined) await writeFile(plan.iidfile, rec.digest!);
      await writeProvenanceOf(plan, rec.digest!, rep);
    } else {
      code = BUILD_NOT_REPRODUCIBLE;
      difference = await compareImages(plan.base.buildah, { storage: record, image: rec.digest! }, { storage: replay, image: rep.digest! }, dir);
      process.stderr.write(formatImageDifference(difference, { record: rec.digest!, replay: rep.digest! }));
    }
    await writeReport(plan, { mode: 'check', exitCode: code, reproducible: code === 0, record: summary(rec), replay: summary(rep), ...(difference === undefined ? {} : { difference }) });
    return code;
  } finally {
    if (plan.keepStorage) say(`storages kept: record ${record.root}, replay ${replay.root} (buildah --root DIR --runroot … --storage-driver vfs)`);
    else await rm(dir, { recursive: true, force: true });
  }
}

export const buildCommand: Command = {
  help: BUILD_HELP,
  run: (args, context) => runBuild(args, context.defaultDataDir, context),
};
