import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import type { Command } from './command.ts';
import { readUpstreamCaPem } from '../upstream/fetcher.ts';
import { parseCommandLine, parseTrustedKeys, reportingErrors, stderrLogger, UsageError } from './common.ts';
import type { Logger } from '../log.ts';
import { clientEnvironment, writeCombinedBundle } from '../tls/client-env.ts';
import { Oracle } from '../oracle/oracle.ts';
import type { OracleInit, ReplayReport } from '../oracle/oracle.ts';
import { netlockRootOf } from '../netlock/file.ts';
import { PROVENANCE_FLAG_HELP, writeBuildProvenance } from './provenance.ts';
import { runForwardingSignals } from '../run/child.ts';
import type { ChildExit } from '../run/child.ts';
import { formatMissReport, groupMisses, recordedOrigins } from '../run/report.ts';
import { NAMESPACE_PROXY_PORT, findIp, unshareProblem } from '../run/sandbox.ts';
import { withReplaySandbox } from '../run/replay-sandbox.ts';
import { SYNC_HELP, SYNC_OPTIONS, syncInitFromFlags } from './front-flags.ts';
import type { SyncPolicy } from '../oracle/checkpoints.ts';

export const DEFAULT_RUN_NETLOCK = 'fetch-oracle.netlock.json';

export const RUN_HELP = `Usage: fetch-oracle run [--netlock FILE] [--data DIR] [--upstream-ca FILE]... -- COMMAND [ARGS...]
       fetch-oracle run --replay FILE [--data DIR] [--report FILE] [--allow-misses]
                        [--provenance FILE --subject PATH...] -- COMMAND [ARGS...]

Runs COMMAND with its network going through fetch-oracle: the proxy variables (HTTP_PROXY, HTTPS_PROXY, lower
case too, npm_config_proxy/https_proxy; NO_PROXY and npm_config_noproxy empty) and every CA variable common
clients obey (one combined system + oracle CA bundle, DIR/ca-bundle.pem) are set for it. Exits with COMMAND's
exit code; SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded to it.

Record (default): starts a recording proxy on 127.0.0.1 (a free port) in this process; every new request is
fetched once and recorded, recorded ones are answered from the record. When COMMAND ends, the netlock of every
request it made is written to FILE (default ./${DEFAULT_RUN_NETLOCK}), also if COMMAND failed.

Replay (--replay FILE): serves only what FILE names, from a proxy on a unix socket in a private temporary
directory, and runs COMMAND inside a new network namespace (unshare -n) that has only a loopback interface: a
small bridge there listens on 127.0.0.1:${NAMESPACE_PROXY_PORT} and pipes each connection to the socket. COMMAND can
reach nothing else, so a build that replays cleanly needed nothing outside the netlock. A request that is not
in FILE gets a 504 explaining the miss; when COMMAND ends, every miss (method, URL, nearest recorded request) is
listed on stderr. Needs root (or CAP_SYS_ADMIN), unshare (util-linux) and ip (iproute2).

Options:
  --netlock FILE         record: where to write this run's netlock (default ./${DEFAULT_RUN_NETLOCK})
  --replay FILE          replay FILE offline instead of recording
  --data DIR             data directory: blocks, records, keys, CA (default $FETCH_ORACLE_DATA or
                         ~/.local/share/fetch-oracle)
  --upstream-ca FILE     record: also trust this PEM CA for upstream TLS (repeatable)
${SYNC_HELP}  --trust KEY            replay: trust records signed by this ed25519 public key (hex; repeatable; default: the
                         data directory's own oracle key)
  --report FILE          write a JSON report when COMMAND ends, with its exit code (replay: misses, unused
                         netlock entries, stats; record: netlock root, entry count, stats)
  --allow-misses         replay: exit with COMMAND's code even if it made requests not in the netlock
${PROVENANCE_FLAG_HELP};
                         replay only (a recorded COMMAND is not sandboxed), written when COMMAND exits 0
                         with no miss
  --subject PATH         with --provenance: an output of COMMAND (a file, or a directory: each file under
                         it), hashed when COMMAND has ended; repeatable, at least one
  -v, --verbose          also log the proxy's info lines to stderr
  -h, --help             show this help

Exit status: COMMAND's (128 + N if signal N ended it); replay: 1 if COMMAND succeeded but made requests outside
the netlock (unless --allow-misses); 2 for a usage error; 125 if the sandbox could not be set up.
`;

const OPTIONS = {
  netlock: { type: 'string' },
  replay: { type: 'string' },
  data: { type: 'string' },
  'upstream-ca': { type: 'string', multiple: true },
  ...SYNC_OPTIONS,
  trust: { type: 'string', multiple: true },
  report: { type: 'string' },
  'allow-misses': { type: 'boolean' },
  provenance: { type: 'string' },
  subject: { type: 'string', multiple: true },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Exit code when `run` itself could not set up (as `env`, `timeout` and container runners use it). */
export const RUN_SETUP_FAILED = 125;
/** Exit code of a replay whose command succeeded but made requests outside the netlock. */
export const RUN_REPLAY_MISSED = 1;

/**
 * Splits `run`'s own options from COMMAND: everything after the first `--`, or else from the first argument
 * that is neither an option nor an option's value.
 */
export function splitCommand(args: readonly string[]): { own: string[]; command: string[] } {
  const dashes = args.indexOf('--');
  if (dashes >= 0) return { own: args.slice(0, dashes), command: args.slice(dashes + 1) };
  const takesValue = new Set(Object.entries(OPTIONS).filter(([, o]) => o.type === 'string').map(([name]) => `--${name}`));
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('-')) return { own: args.slice(0, i), command: args.slice(i) };
    if (takesValue.has(a)) i++;
  }
  return { own: [...args], command: [] };
}

function say(text: string): void {
  process.stderr.write(`fetch-oracle run: ${text}\n`);
}

/** What every command `run` starts gets on top of its own environment. */
export function runEnvironment(proxyUrl: string, bundlePath: string): Record<string, string> {
  return {
    ...Object.fromEntries(clientEnvironment({ proxyUrl, bundlePath, noProxy: '' })),
    // npm reads its own proxy settings before the variables above; a user's npm_config_* would otherwise win.
    npm_config_proxy: proxyUrl,
    npm_config_https_proxy: proxyUrl,
    npm_config_noproxy: '',
  };
}

/** `fetch-oracle run …`: returns the exit code. */
export async function runRun(args: string[], dataDirDefault: string, io: { stdout?: Writable; stderr?: Writable } = {}): Promise<number> {
  return reportingErrors(io.stderr ?? process.stderr, 'fetch-oracle', () => runParsed(args, dataDirDefault, io.stdout ?? process.stdout));
}

async function runParsed(args: string[], dataDirDefault: string, stdout: Writable): Promise<number> {
  const { own, command } = splitCommand(args);
  const { values } = parseCommandLine({ args: own, options: OPTIONS, allowPositionals: false, strict: true }, RUN_HELP);
  if (values.help === true) {
    stdout.write(RUN_HELP);
    return 0;
  }
  if (command.length === 0) throw new UsageError(`run needs a command: fetch-oracle run [options] -- COMMAND [ARGS...]\n\n${RUN_HELP}`);
  const replay = values.replay;
  if (replay !== undefined) {
    for (const flag of ['netlock', 'upstream-ca', 'sync'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} is a record option; with --replay FILE the netlock is FILE and nothing is fetched`);
    }
    if (values.provenance !== undefined && (values.subject ?? []).length === 0) throw new UsageError('--provenance needs --subject PATH (the outputs of COMMAND the statement is about)');
    if (values.subject !== undefined && values.provenance === undefined) throw new UsageError('--subject applies only with --provenance FILE');
  } else {
    for (const flag of ['trust', 'allow-misses', 'provenance', 'subject'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} is a replay option (use it with --replay FILE)`);
    }
  }
  const trust = parseTrustedKeys(values.trust ?? []);
  const common = {
    dataDir: resolve(values.data ?? dataDirDefault),
    command,
    logger: stderrLogger({ quiet: values.verbose !== true }),
    ...(values.report === undefined ? {} : { reportPath: resolve(values.report) }),
  };
  if (replay === undefined) {
    const upstreamCaPem = await readUpstreamCaPem(values['upstream-ca'] ?? [], process.env['NODE_EXTRA_CA_CERTS'], (m) => common.logger.warn('%s', m));
    return runRecord({ ...common, netlockPath: resolve(values.netlock ?? DEFAULT_RUN_NETLOCK), upstreamCaPem, ...syncInitFromFlags(values) });
  }
  return runReplay({
    ...common,
    netlockPath: resolve(replay),
    trust,
    allowMisses: values['allow-misses'] === true,
    ...(values.provenance === undefined ? {} : { provenance: { out: resolve(values.provenance), paths: values.subject ?? [] } }),
  });
}

interface CommonInit {
  dataDir: string;
  command: string[];
  logger: Logger;
  reportPath?: string;
}

async function startOracle(init: OracleInit): Promise<{ oracle: Oracle; bundlePath: string }> {
  const oracle = new Oracle(init);
  try {
    await oracle.start();
    const bundlePath = join(init.dataDir, 'ca-bundle.pem');
    await writeCombinedBundle(await readFile(oracle.caCertPath, 'utf8'), bundlePath);
    return { oracle, bundlePath };
  } catch (err) {
    await oracle.close().catch(() => undefined);
    throw err;
  }
}

function reportSpawnError(exit: ChildExit, command: readonly string[]): void {
  if (exit.spawnError !== undefined) say(`cannot run ${JSON.stringify(command[0])}: ${exit.spawnError.message}`);
}

async function runRecord(init: CommonInit & { netlockPath: string; upstreamCaPem: string[]; sync?: SyncPolicy }): Promise<number> {
  const { oracle, bundlePath } = await startOracle({
    mode: 'record',
    dataDir: init.dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    netlockPath: init.netlockPath,
    upstreamCaPem: init.upstreamCaPem,
    ...(init.sync === undefined ? {} : { sync: init.sync }),
    logger: init.logger,
  });
  let exit: ChildExit;
  let file: Awaited<ReturnType<Oracle['close']>>;
  try {
    const proxyUrl = `http://127.0.0.1:${oracle.proxyAddress().port}`;
    init.logger.info('recording proxy on %s for %s', proxyUrl, init.command.join(' '));
    exit = await runForwardingSignals(init.command, { ...process.env, ...runEnvironment(proxyUrl, bundlePath) }, (s) => init.logger.info('%s: forwarded to the command', s));
    reportSpawnError(exit, init.command);
  } finally {
    // Also when the command failed: the netlock holds what it fetched, for a look at what went wrong.
    file = await oracle.close();
    if (file !== undefined) say(`recorded ${file.count} request(s): netlock ${file.netlock} written to ${init.netlockPath}`);
  }
  if (init.reportPath !== undefined) {
    const summary = { command: init.command, exitCode: exit.code, netlock: file?.netlock, count: file?.count, stats: oracle.stats };
    await writeFile(init.reportPath, `${JSON.stringify(summary, null, 2)}\n`);
  }
  return exit.code;
}


async function runReplay(init: CommonInit & { netlockPath: string; trust: Uint8Array[]; allowMisses: boolean; provenance?: { out: string; paths: string[] } }): Promise<number> {
  await netlockRootOf(init.netlockPath); // a missing or malformed netlock fails before anything starts
  const startedOn = new Date();
  const ip = findIp();
  const problem = unshareProblem(ip);
  if (problem !== undefined || ip === undefined) {
    say(problem ?? '`ip` was not found');
    return RUN_SETUP_FAILED;
  }
  return withReplaySandbox(async (sandbox) => {
    const { oracle, bundlePath } = await startOracle({
      mode: 'replay',
      dataDir: init.dataDir,
      listen: { path: sandbox.socketPath },
      netlockPath: init.netlockPath,
      ...(init.trust.length === 0 ? {} : { trust: init.trust }),
      logger: init.logger,
    });
    let exit: ChildExit;
    let report: ReplayReport | undefined;
    try {
      const proxyUrl = `http://127.0.0.1:${NAMESPACE_PROXY_PORT}`;
      init.logger.info('replaying %s offline for %s', init.netlockPath, init.command.join(' '));
      exit = await runForwardingSignals(sandbox.commandLine(init.command, ip), { ...process.env, ...runEnvironment(proxyUrl, bundlePath) }, (s) => init.logger.info('%s: forwarded to the command', s));
      report = await oracle.replayReport();
    } finally {
      await oracle.close();
    }
    if (exit.spawnError !== undefined) {
      say(`cannot run unshare: ${exit.spawnError.message}`);
      return RUN_SETUP_FAILED;
    }
    const bridge = await sandbox.bridgeStatus();
    if (bridge.state === 'missing') say(`${bridge.message} (unshare exited ${exit.code})`);
    if (bridge.state !== 'started') return RUN_SETUP_FAILED; // a failed bridge has said why on stderr
    const misses = report?.misses ?? [];
    if (report !== undefined && misses.length > 0) {
      process.stderr.write(formatMissReport(report, await recordedOrigins(init.netlockPath, oracle.store), init.netlockPath));
    }
    const code = exit.code !== 0 ? exit.code : misses.length > 0 && !init.allowMisses ? RUN_REPLAY_MISSED : 0;
    if (misses.length > 0) {
      if (exit.code !== 0) say(`the command failed (exit ${exit.code}) and made ${groupMisses(misses).length} request(s) outside the netlock`);
      else if (!init.allowMisses) say(`the command succeeded but made ${groupMisses(misses).length} request(s) outside the netlock: failing (--allow-misses to accept that)`);
    }
    const errors = report?.stats.errors ?? 0;
    if (errors > 0) say(`${errors} request(s) failed in the replay proxy itself (bad requests, or records/blocks that did not verify: see the warnings above)`);
    if (init.reportPath !== undefined && report !== undefined) {
      await writeFile(init.reportPath, `${JSON.stringify({ command: init.command, commandExitCode: exit.code, exitCode: code, ...report }, null, 2)}\n`);
    }
    if (init.provenance !== undefined) {
      // Only a clean replay: a miss means the command wanted network input the statement could not list.
      if (code === 0 && misses.length === 0) {
        say(await writeBuildProvenance({ ...init.provenance, netlockPath: init.netlockPath, dataDir: init.dataDir, tool: 'run', command: init.command, startedOn }));
      } else {
        say(`no provenance written: ${code !== 0 ? `the run exited ${code}` : 'the command made requests outside the netlock'}`);
      }
    }
    return code;
  });
}

export const runCommand: Command = {
  help: RUN_HELP,
  run: (args, context) => runRun(args, context.defaultDataDir, context),
};
