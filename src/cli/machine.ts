/**
 * `fetch-oracle machine image|run|check`: builds in the real Cartesi Machine. Each subcommand has its own
 * module; this one only dispatches, so `machine --help` lists them and a usage error names the subcommand.
 */
import type { Command } from './command.ts';
import { UsageError } from './common.ts';
import { machineCheckCommand } from './machine-check.ts';
import { machineImageCommand } from './machine-image.ts';
import { machineRunCommand } from './machine-run.ts';

const SUBCOMMANDS: ReadonlyMap<string, Command> = new Map([
  ['image', machineImageCommand],
  ['run', machineRunCommand],
  ['check', machineCheckCommand],
]);

export const MACHINE_HELP = `Usage: fetch-oracle machine <image|run|check> [options]

Builds inside the Cartesi Machine (a deterministic RISC-V emulator), every download replayed by CID through
its dehashing device. Needs the emulator's cartesi-jsonrpc-machine (on PATH, or --emulator DIR) and its kernel
(/usr/share/cartesi-machine/images/linux.bin, or --kernel FILE).

${[...SUBCOMMANDS].map(([name, c]) => `  ${name.padEnd(6)}  ${c.summary}\n`).join('')}
Run 'fetch-oracle machine <subcommand> --help' for its options.
`;

export const machineCommand: Command = {
  summary: 'build inside the Cartesi Machine: image, run, check',
  help: MACHINE_HELP,
  async run(args, context) {
    const [name, ...rest] = args;
    if (name === '-h' || name === '--help' || name === 'help') {
      context.stdout.write(MACHINE_HELP);
      return 0;
    }
    if (name === undefined) throw new UsageError(`a subcommand is needed\n\n${MACHINE_HELP}`);
    if (name.startsWith('-')) throw new UsageError(`Unknown option '${name}' (options follow the subcommand)\n\n${MACHINE_HELP}`);
    const sub = SUBCOMMANDS.get(name);
    if (sub === undefined) throw new UsageError(`Unknown machine subcommand ${JSON.stringify(name)}\n\n${MACHINE_HELP}`);
    return sub.run(rest, context);
  },
};
