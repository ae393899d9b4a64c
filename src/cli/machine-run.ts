/** `fetch-oracle machine run`: one command inside the real Cartesi Machine, its network replayed by CID. */
import { resolve } from 'node:path';
import type { Command, CommandContext } from './command.ts';
import { parseCommandLine, parseTrustedKeys, stderrLogger, UsageError } from './common.ts';
import { AbortedError, OracleError } from '../errors.ts';
import { isEnvName } from '../machine/control.ts';
import { locateMachineTools, MachineSetupError } from '../machine/emulator.ts';
import { DEFAULT_INPUT_MIB, DEFAULT_OUTPUT_MIB, DEFAULT_RAM_MIB, RESULT_DRIVE_BYTES } from '../machine/machine-config.ts';
import { runInMachine } from '../machine/machine-run.ts';
import type { MachineRunOutcome } from '../machine/machine-run.ts';
import { SnapshotCache } from '../machine/snapshot.ts';
import { readNetlockRoot } from '../netlock/file.ts';
import { createStats } from '../oracle/stats.ts';
import { formatMissReport, recordedOrigins } from '../run/report.ts';
import { LocalSigner } from '../signing/local-signer.ts';
import type { BlockSource } from '../protocol/blocks.ts';
import { FsBlockStore } from '../store/fs-block-store.ts';

/** Exit status when the runner or the machine failed (as `run` uses it): not CMD's. */
export const MACHINE_RUN_FAILED = 125;
export const DEFAULT_IMAGE = 'rootfs.ext2';

export const MACHINE_RUN_HELP = `Usage: fetch-oracle machine run --replay NETLOCK [options] -- CMD [ARGS...]

Runs CMD inside the Cartesi Machine (a deterministic RISC-V emulator) booted from IMAGE, offline: the guest's
only network is the fetch-oracle shim on 127.0.0.1:8899, which gets every record and body block of NETLOCK by
CID through the machine's dehashing device (GIO 0x25), answered from this host's store, and verifies each one.
HTTP_PROXY/HTTPS_PROXY and the CA variables are set for CMD; HTTPS works (the shim's CA is made inside the
machine). The guest's clock is fixed (--time), so the run is reproducible: the same netlock, image, input and
command end with the same machine root hash, printed last on stdout.

Before boot the netlock's blocks are checked (every one must be in --data, else the first missing CID is
named and nothing runs). CMD's console output goes to stderr; after it, every request it made that NETLOCK does
not hold (explained, as run --replay does), the device round trips, and the root hash.

Options:
  --replay NETLOCK       the netlock to replay (required)
  --record NETLOCK       record from inside the machine (not available yet)
  --image FILE           the root file system (fetch-oracle machine image; default ./${DEFAULT_IMAGE}); never modified
  --input DIR            copied into the machine (a tar on the input drive), at $FETCH_ORACLE_INPUT (/mnt/input),
                         which is also CMD's working directory
  --output DIR           after CMD: $FETCH_ORACLE_OUTPUT (/mnt/output) copied back into DIR (new or empty);
                         nothing is copied when the guest stopped the run
  --env NAME=VALUE       an environment variable for CMD (repeatable)
  --time SECONDS         the guest's clock when CMD starts, unix seconds (default: the newest record's fetch time
                         in NETLOCK, 0 for an empty one)
  --trust KEY            trust records signed by this ed25519 public key (hex; repeatable; default: the data
                         directory's own oracle key)
  --data DIR             data directory holding the blocks; snapshots go to DIR/machine-snapshots (default
                         $FETCH_ORACLE_DATA or ~/.local/share/fetch-oracle)
  --max-mcycle N         stop the machine (an error, exit ${MACHINE_RUN_FAILED}) when its cycle counter reaches N (default: no limit)
  --ram-mib N            guest RAM (default ${DEFAULT_RAM_MIB})
  --input-mib N          input drive size (default ${DEFAULT_INPUT_MIB}); --input's tar must fit
  --output-mib N         output drive size (default ${DEFAULT_OUTPUT_MIB}); the output tar must fit
  --no-snapshot          always boot cold, and store no snapshot (by default the machine is stored once, booted
                         with its shim ready, per image/kernel/emulator/RAM/drive sizes, and later runs start
                         from it: same root hash, seconds faster)
  --emulator DIR         where cartesi-jsonrpc-machine is (DIR or DIR/bin; default: on PATH)
  --kernel FILE          the machine's kernel (default /usr/share/cartesi-machine/images/linux.bin)
  -v, --verbose          also log the runner's info lines to stderr
  -h, --help             show this help

Drives (/dev/pmemN in the guest): 0 root = IMAGE; 1 input (${DEFAULT_INPUT_MIB} MiB); 2 output (${DEFAULT_OUTPUT_MIB} MiB); 3 result (${RESULT_DRIVE_BYTES} bytes).

Exit status: CMD's (128 + N if signal N ended it); ${MACHINE_RUN_FAILED} when the runner or the machine failed (no emulator or
kernel, blocks missing before boot, --max-mcycle reached, a block from the host that did not hash to its CID,
no result); 2 for a usage error.
`;

const OPTIONS = {
  replay: { type: 'string' },
  record: { type: 'string' },
  image: { type: 'string' },
  input: { type: 'string' },
  output: { type: 'string' },
  env: { type: 'string', multiple: true },
  time: { type: 'string' },
  trust: { type: 'string', multiple: true },
  data: { type: 'string' },
  'max-mcycle': { type: 'string' },
  'ram-mib': { type: 'string' },
  'input-mib': { type: 'string' },
  'output-mib': { type: 'string' },
  'no-snapshot': { type: 'boolean' },
  emulator: { type: 'string' },
  kernel: { type: 'string' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const;

function positiveInt(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) throw new UsageError(`${flag} expects a positive integer, got ${JSON.stringify(text)}`);
  return Number(text);
}

function parseEnv(values: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    const name = eq < 0 ? v : v.slice(0, eq);
    if (eq < 0 || !isEnvName(name)) throw new UsageError(`--env expects NAME=VALUE (NAME: letters, digits, _), got ${JSON.stringify(v)}`);
    env[name] = v.slice(eq + 1);
  }
  return env;
}

function say(context: Pick<CommandContext, 'stderr'>, text: string): void {
  context.stderr.write(`fetch-oracle machine run: ${text}\n`);
}

/** `fetch-oracle machine run …`: returns the exit code. */
export async function runMachineRun(args: string[], context: CommandContext): Promise<number> {
  const dashes = args.indexOf('--');
  const own = dashes < 0 ? args : args.slice(0, dashes);
  const argv = dashes < 0 ? [] : args.slice(dashes + 1);
  const { values } = parseCommandLine({ args: own, options: OPTIONS, allowPositionals: false, strict: true }, MACHINE_RUN_HELP);
  if (values.help === true) {
    context.stdout.write(MACHINE_RUN_HELP);
    return 0;
  }
  if (values.record !== undefined) throw new UsageError('--record is not available yet: record the build on the host (fetch-oracle run) and replay it with --replay');
  if (values.replay === undefined) throw new UsageError(`machine run needs --replay NETLOCK\n\n${MACHINE_RUN_HELP}`);
  if (argv.length === 0) throw new UsageError(`machine run needs a command: fetch-oracle machine run --replay NETLOCK -- CMD [ARGS...]\n\n${MACHINE_RUN_HELP}`);
  const time = values.time;
  if (time !== undefined && (!/^\d+$/.test(time) || !Number.isSafeInteger(Number(time)))) throw new UsageError(`--time expects unix seconds, got ${JSON.stringify(time)}`);
  const maxMcycle = values['max-mcycle'];
  if (maxMcycle !== undefined && (!/^\d+$/.test(maxMcycle) || BigInt(maxMcycle) >= 2n ** 64n)) throw new UsageError(`--max-mcycle expects a cycle count, got ${JSON.stringify(maxMcycle)}`);
  const env = parseEnv(values.env ?? []);
  const ramMib = positiveInt(values['ram-mib'], '--ram-mib', DEFAULT_RAM_MIB);
  const inputMib = positiveInt(values['input-mib'], '--input-mib', DEFAULT_INPUT_MIB);
  const outputMib = positiveInt(values['output-mib'], '--output-mib', DEFAULT_OUTPUT_MIB);
  const netlockPath = resolve(values.replay);
  const dataDir = resolve(values.data ?? context.defaultDataDir);
  const logger = stderrLogger({ quiet: values.verbose !== true });

  const controller = new AbortController();
  let stoppedBy: NodeJS.Signals | undefined;
  const onSignal = (s: NodeJS.Signals): void => {
    stoppedBy ??= s;
    say(context, `${s}: stopping the machine`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const store = new FsBlockStore(dataDir);
  try {
    const tools = locateMachineTools({
      ...(values.emulator === undefined ? {} : { emulatorDir: values.emulator }),
      ...(values.kernel === undefined ? {} : { kernel: values.kernel }),
    });
    const { root } = await readNetlockRoot(netlockPath);
    const trustText = values.trust ?? [];
    const own = trustText.length === 0 ? await LocalSigner.publicKeyIn(dataDir) : undefined;
    const trust = trustText.length > 0 ? parseTrustedKeys(trustText) : own === undefined ? [] : [own];
    const outcome = await runInMachine({
      tools,
      image: resolve(values.image ?? DEFAULT_IMAGE),
      netlockRoot: root,
      store,
      trust,
      argv,
      env,
      ...(time === undefined ? {} : { time: Number(time) }),
      ...(values.input === undefined ? {} : { inputDir: resolve(values.input) }),
      ...(values.output === undefined ? {} : { outputDir: resolve(values.output) }),
      ramMib,
      inputMib,
      outputMib,
      ...(maxMcycle === undefined ? {} : { maxMcycle: BigInt(maxMcycle) }),
      ...(values['no-snapshot'] === true ? {} : { snapshots: new SnapshotCache(resolve(dataDir, 'machine-snapshots'), logger) }),
      console: context.stderr,
      logger,
      signal: controller.signal,
    });
    return await reportMachineRun(outcome, netlockPath, store, context);
  } catch (err) {
    if (err instanceof AbortedError && stoppedBy !== undefined) return stoppedBy === 'SIGINT' ? 130 : 143;
    if (err instanceof MachineSetupError) say(context, err.message);
    else say(context, err instanceof OracleError ? `${err.code}: ${err.message}` : (err as Error).message);
    return MACHINE_RUN_FAILED;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await store.close();
  }
}

/**
 * Prints what a finished run has to say (misses explained, the device's round trips, a fatal stop) on
 * stderr and the root hash on stdout; returns the exit status: CMD's, or 125 when the guest stopped the run.
 */
export async function reportMachineRun(o: MachineRunOutcome, netlockPath: string, store: BlockSource, context: Pick<CommandContext, 'stdout' | 'stderr'>): Promise<number> {
  if (o.misses.length > 0) {
    const stats = createStats('replay');
    stats.misses = o.misses.length;
    const missReport = { netlock: (await readNetlockRoot(netlockPath)).root.toString(), entries: o.netlock.entries, used: 0, misses: o.misses, unused: [], stats };
    context.stderr.write(formatMissReport(missReport, await recordedOrigins(netlockPath, store), netlockPath, { who: 'fetch-oracle machine run', rerecord: '`fetch-oracle run` on the host' }));
  }
  const d = o.driver;
  const blocks = d.byDomain[0x25] ?? 0;
  const perBlock = blocks === 0 ? 0 : (d.hostMsByDomain[0x25] ?? 0) / blocks;
  const started = o.start === 'snapshot' ? 'started from the snapshot' : o.start === 'cold+stored' ? 'booted cold and stored the snapshot' : 'booted cold';
  say(context, `${started}; shim ready ${(o.readyMs / 1000).toFixed(1)} s after the emulator started (mcycle ${o.readyMcycle}); halted at mcycle ${o.mcycle}, ${(o.totalMs / 1000).toFixed(1)} s in all`);
  say(context, `device: ${d.gioRequests} GIO round trips (${blocks} blocks, ${d.gioRequests - blocks} control), ${(d.bytes / 1048576).toFixed(2)} MiB; ${perBlock.toFixed(2)} ms of host work per block (one JSON-RPC batch per round trip)`);
  if (o.shimStats !== undefined) say(context, `shim: ${o.shimStats.requests} request(s), ${o.shimStats.hits} hit(s), ${o.shimStats.misses} miss(es), ${o.shimStats.errors} error(s)`);
  if (o.result.fatal !== undefined) {
    say(context, `the guest stopped the run: ${o.result.fatal}`);
    say(context, 'no output was copied back; the root hash of a stopped run is not printed');
    return MACHINE_RUN_FAILED;
  }
  if (o.output !== undefined) say(context, `output: ${o.output.files} file(s), ${o.output.bytes} bytes`);
  context.stdout.write(`root hash: ${o.rootHash}\n`);
  return o.result.exit;
}

export const machineRunCommand: Command = {
  summary: 'run a command inside the Cartesi Machine, its downloads replayed from a netlock by CID',
  help: MACHINE_RUN_HELP,
  run: runMachineRun,
};
