/**
 * The command table and the dispatcher: argv → the command's module, every command behind the same
 * parse/report path (a UsageError exits 2 on stderr, any other failure 1 with its stable code).
 */
import { attestCommand } from './attest.ts';
import { buildCommand } from './build.ts';
import { exportCommand, importCommand } from './car.ts';
import type { Command, CommandContext } from './command.ts';
import { reportingErrors, UsageError } from './common.ts';
import { enclaveCommand } from './enclave.ts';
import { envCommand } from './env.ts';
import { gcCommand } from './gc.ts';
import { recordCommand } from './record.ts';
import { recoverCommand } from './recover.ts';
import { replayCommand } from './replay.ts';
import { reportCommand } from './report.ts';
import { runCommand } from './run.ts';
import { lockfileCommand, seedCommand } from './seed.ts';
import { machineCommand } from './machine.ts';
import { serveMachineCommand } from './serve-machine.ts';
import { verifyCommand } from './verify.ts';

/** Every command, in the order `fetch-oracle --help` lists them. */
export const COMMANDS: ReadonlyMap<string, Command> = new Map([
  ['record', recordCommand],
  ['replay', replayCommand],
  ['env', envCommand],
  ['verify', verifyCommand],
  ['recover', recoverCommand],
  ['gc', gcCommand],
  ['export', exportCommand],
  ['import', importCommand],
  ['run', runCommand],
  ['build', buildCommand],
  ['attest', attestCommand],
  ['machine', machineCommand],
  ['serve-machine', serveMachineCommand],
  ['seed', seedCommand],
  ['lockfile', lockfileCommand],
  ['enclave', enclaveCommand],
  ['report', reportCommand],
]);

export const MAIN_HELP = `fetch-oracle: record a build's network once as signed, content-addressed records; replay it offline.

Usage: fetch-oracle <command> [options]

Commands:
${[...COMMANDS].map(([name, command]) => `  ${name.padEnd(8)}  ${command.summary}\n`).join('')}
Run 'fetch-oracle <command> --help' for the options of a command.
Environment: FETCH_ORACLE_DATA (data directory), FETCH_ORACLE_ADMIN_TOKEN, NODE_DEBUG=oracle (debug log).
`;

/** `fetch-oracle ARGV…`: runs the named command and resolves to the process's exit code. */
export async function runCommandLine(argv: readonly string[], context: CommandContext): Promise<number> {
  const [name, ...rest] = argv;
  return reportingErrors(context.stderr, 'fetch-oracle', async () => {
    if (name === '-h' || name === '--help' || name === 'help') {
      context.stdout.write(MAIN_HELP);
      return 0;
    }
    if (name === undefined) throw new UsageError(`a command is needed\n\n${MAIN_HELP}`);
    const command = COMMANDS.get(name);
    if (command === undefined) throw new UsageError(`Unknown command ${JSON.stringify(name)}\n\n${MAIN_HELP}`);
    return command.run(rest, context);
  });
}
