/**
 * `fetch-oracle machine image|run|check`: builds in the real Cartesi Machine. Each subcommand has its own
 * module; this one only dispatches, so `machine --help` lists them and a usage error names the subcommand.
 */
import type { Command, ListedCommand } from './command.ts';
import { UsageError } from './common.ts';

const SUBCOMMANDS: ReadonlyMap<string, ListedCommand> = new Map<string, ListedCommand>([
  ['image', {
    summary: 'build the riscv64 root file system (ext2) from Debian packages, downloads through the oracle',
    load: async () => (await import('./machine-image.ts')).machineImageCommand,
  }],
  ['run', {
    summary: 'run a command inside the Cartesi Machine, its downloads replayed from a netlock by CID (or recorded)',
    load: async () => (await import('./machine-run.ts')).machineRunCommand,
  }],
  ['check', {
    summary: "record a command in the Cartesi Machine, replay it, and compare the two runs' outputs",
    load: async () => (await import('./machine-check.ts')).machineCheckCommand,
  }],
]);

export const MACHINE_HELP = `Usage: fetch-oracle machine <image|run|check> [options]

Builds inside the Cartesi Machine (a deterministic RISC-V emulator), every download replayed by CID through
its dehashing device. Needs the emulator's cartesi-jsonrpc-machine (on PATH, or --emulator DIR) and its kernel
(/usr/share/cartesi-machine/images/linux.bin, or --kernel FILE).

${[...SUBCOMMANDS].map(([name, c]) => `  ${name.padEnd(6)}  ${c.summary}\n`).join('')}
Run 'fetch-oracle machine <subcommand> --help' for its options.
`;

export const machineCommand: Command = {
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
    return (await sub.load()).run(rest, context);
  },
};
