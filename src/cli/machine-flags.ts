/**
 * What `machine run` and `machine check` share: the machine's options (image, input, env, clock, sizes,
 * emulator, snapshots), their parsing, and the SIGINT/SIGTERM handling that stops the machine.
 */
import { resolve } from 'node:path';
import type { parseArgs, ParseArgsConfig } from 'node:util';
import type { CommandContext } from './command.ts';
import { parseCommandLine, stderrLogger, UsageError } from './common.ts';
import type { Logger } from '../log.ts';
import { isEnvName } from '../machine/control.ts';
import { locateMachineTools } from '../machine/emulator.ts';
import type { MachineTools } from '../machine/emulator.ts';
import { DEFAULT_INPUT_MIB, DEFAULT_OUTPUT_MIB, DEFAULT_RAM_MIB } from '../machine/machine-config.ts';
import { SnapshotCache } from '../machine/snapshot.ts';

export const DEFAULT_IMAGE = 'rootfs.ext2';

/** The machine's own options (image, clock, sizes, emulator), shared by `machine run/check` and `build --machine`. */
export const MACHINE_SETUP_OPTIONS = {
  image: { type: 'string' },
  time: { type: 'string' },
  'max-mcycle': { type: 'string' },
  'ram-mib': { type: 'string' },
  'input-mib': { type: 'string' },
  'output-mib': { type: 'string' },
  'no-snapshot': { type: 'boolean' },
  emulator: { type: 'string' },
  kernel: { type: 'string' },
} as const;

/** The options every machine command that runs CMD takes (parseArgs shapes). */
export const MACHINE_OPTIONS = {
  ...MACHINE_SETUP_OPTIONS,
  input: { type: 'string' },
  output: { type: 'string' },
  env: { type: 'string', multiple: true },
  data: { type: 'string' },
  'upstream-ca': { type: 'string', multiple: true },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The parsed values of MACHINE_OPTIONS (as parseArgs gives them). */
export interface MachineOptionValues {
  image?: string;
  input?: string;
  output?: string;
  env?: string[];
  time?: string;
  data?: string;
  'max-mcycle'?: string;
  'ram-mib'?: string;
  'input-mib'?: string;
  'output-mib'?: string;
  'no-snapshot'?: boolean;
  emulator?: string;
  kernel?: string;
  verbose?: boolean;
}

/** The parts of a machine run every command derives from its flags the same way. */
export interface MachineFlags {
  image: string;
  inputDir?: string;
  outputDir?: string;
  env: Record<string, string>;
  time?: number;
  dataDir: string;
  ramMib: number;
  inputMib: number;
  outputMib: number;
  maxMcycle?: bigint;
  snapshots?: SnapshotCache;
  logger: Logger;
}

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

/** Splits `own options -- CMD…` (CMD may itself contain `--`). */
export function splitAtDashes(args: readonly string[]): { own: string[]; argv: string[] } {
  const dashes = args.indexOf('--');
  return dashes < 0 ? { own: [...args], argv: [] } : { own: args.slice(0, dashes), argv: args.slice(dashes + 1) };
}

/**
 * Parses a machine command's `OPTIONS -- CMD…`: its own options strictly (no positionals: CMD follows `--`),
 * CMD as it is. Undefined once `--help` was printed.
 */
export function parseMachineCommandLine<O extends NonNullable<ParseArgsConfig['options']>>(
  args: readonly string[],
  options: O,
  help: string,
  context: Pick<CommandContext, 'stdout'>,
): { values: ReturnType<typeof parseArgs<{ options: O; allowPositionals: false; strict: true }>>['values']; argv: string[] } | undefined {
  const { own, argv } = splitAtDashes(args);
  const { values } = parseCommandLine({ args: own, options, allowPositionals: false, strict: true }, help);
  if ((values as { help?: unknown }).help === true) {
    context.stdout.write(help);
    return undefined;
  }
  return { values, argv };
}

/** Checks and converts the shared flags (usage errors for bad values); nothing is opened yet. */
export function parseMachineFlags(values: MachineOptionValues, defaultDataDir: string): MachineFlags {
  const time = values.time;
  if (time !== undefined && (!/^\d+$/.test(time) || !Number.isSafeInteger(Number(time)))) throw new UsageError(`--time expects unix seconds, got ${JSON.stringify(time)}`);
  const maxMcycle = values['max-mcycle'];
  if (maxMcycle !== undefined && (!/^\d+$/.test(maxMcycle) || BigInt(maxMcycle) >= 2n ** 64n)) throw new UsageError(`--max-mcycle expects a cycle count, got ${JSON.stringify(maxMcycle)}`);
  const dataDir = resolve(values.data ?? defaultDataDir);
  const logger = stderrLogger({ quiet: values.verbose !== true });
  return {
    image: resolve(values.image ?? DEFAULT_IMAGE),
    ...(values.input === undefined ? {} : { inputDir: resolve(values.input) }),
    ...(values.output === undefined ? {} : { outputDir: resolve(values.output) }),
    env: parseEnv(values.env ?? []),
    ...(time === undefined ? {} : { time: Number(time) }),
    dataDir,
    ramMib: positiveInt(values['ram-mib'], '--ram-mib', DEFAULT_RAM_MIB),
    inputMib: positiveInt(values['input-mib'], '--input-mib', DEFAULT_INPUT_MIB),
    outputMib: positiveInt(values['output-mib'], '--output-mib', DEFAULT_OUTPUT_MIB),
    ...(maxMcycle === undefined ? {} : { maxMcycle: BigInt(maxMcycle) }),
    ...(values['no-snapshot'] === true ? {} : { snapshots: new SnapshotCache(resolve(dataDir, 'machine-snapshots'), logger) }),
    logger,
  };
}

/** The emulator and kernel (MachineSetupError, said as it is, when either is missing). */
export function machineTools(values: Pick<MachineOptionValues, 'emulator' | 'kernel'>): MachineTools {
  return locateMachineTools({
    ...(values.emulator === undefined ? {} : { emulatorDir: values.emulator }),
    ...(values.kernel === undefined ? {} : { kernel: values.kernel }),
  });
}

/** A record run's clock when --time is not given: the host's, in whole seconds. */
export function hostTimeSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * Runs `body` with SIGINT/SIGTERM aborting its signal (the machine is stopped within a run slice); a body
 * that fails after a signal ends with 130/143.
 */
export async function withMachineSignals(context: Pick<CommandContext, 'stderr'>, who: string, body: (signal: AbortSignal) => Promise<number>): Promise<number> {
  const controller = new AbortController();
  let stoppedBy: NodeJS.Signals | undefined;
  const onSignal = (s: NodeJS.Signals): void => {
    stoppedBy ??= s;
    context.stderr.write(`${who}: ${s}: stopping the machine\n`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await body(controller.signal);
  } catch (err) {
    if (stoppedBy !== undefined) return stoppedBy === 'SIGINT' ? 130 : 143;
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
