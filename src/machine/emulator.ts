/**
 * Where the Cartesi Machine emulator and its kernel are: the official install puts `cartesi-jsonrpc-machine`
 * on PATH and the kernel at /usr/share/cartesi-machine/images/linux.bin; `--emulator DIR` and `--kernel FILE`
 * point elsewhere. A missing one is a MachineSetupError saying what to install and every place looked at.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { MachineError } from '../errors.ts';

export const EMULATOR_BINARY = 'cartesi-jsonrpc-machine';
export const DEFAULT_KERNEL = '/usr/share/cartesi-machine/images/linux.bin';
const INSTALL_HINT =
  'Install the Cartesi Machine emulator v0.21 (its JSON-RPC server cartesi-jsonrpc-machine and the kernel linux.bin, ' +
  'e.g. the cartesi-machine release package from https://github.com/cartesi/machine-emulator/releases), ' +
  'or point at them with --emulator DIR and --kernel FILE.';

/** The emulator or kernel could not be found (the runner exits 125 with this message). */
export class MachineSetupError extends MachineError {
  constructor(message: string) {
    super(message);
    this.name = 'MachineSetupError';
  }
}

export interface MachineTools {
  /** Absolute path of cartesi-jsonrpc-machine. */
  emulator: string;
  /** Absolute path of the kernel image (linux.bin: OpenSBI + Linux with /dev/cmio). */
  kernel: string;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function readableFile(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * Finds the emulator (in `emulatorDir` or `emulatorDir/bin` when given, else on PATH) and the kernel
 * (`kernel` when given, else DEFAULT_KERNEL). Throws one MachineSetupError naming everything missing.
 */
export function locateMachineTools(options: { emulatorDir?: string; kernel?: string; env?: NodeJS.ProcessEnv } = {}): MachineTools {
  const problems: string[] = [];
  let emulator: string | undefined;
  if (options.emulatorDir !== undefined) {
    const dir = resolve(options.emulatorDir);
    const tried = [join(dir, EMULATOR_BINARY), join(dir, 'bin', EMULATOR_BINARY)];
    emulator = tried.find(executable);
    if (emulator === undefined) problems.push(`${EMULATOR_BINARY} not found in --emulator ${dir} (looked for ${tried.join(' and ')})`);
  } else {
    const dirs = (options.env?.['PATH'] ?? process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== '');
    emulator = dirs.map((d) => resolve(d, EMULATOR_BINARY)).find(executable);
    if (emulator === undefined) problems.push(`${EMULATOR_BINARY} not found on PATH (${dirs.join(delimiter) || 'empty'})`);
  }
  const kernel = resolve(options.kernel ?? DEFAULT_KERNEL);
  if (!readableFile(kernel)) problems.push(`kernel ${kernel} not found${options.kernel === undefined ? ' (the default; --kernel FILE names another)' : ''}`);
  if (problems.length > 0 || emulator === undefined) throw new MachineSetupError(`The Cartesi Machine is not installed here: ${problems.join('; ')}. ${INSTALL_HINT}`);
  return { emulator, kernel };
}
