/**
 * The command table and the dispatcher: argv → the command's module, every command behind the same
 * parse/report path (a UsageError exits 2 on stderr, any other failure 1 with its stable code).
 */
import packageJson from '../../package.json' with { type: 'json' };
import type { CommandContext, ListedCommand } from './command.ts';
import { reportingErrors, UsageError } from './common.ts';

/** Every command, in the order `fetch-oracle --help` lists them; each module is imported when its command runs. */
export const COMMANDS: ReadonlyMap<string, ListedCommand> = new Map<string, ListedCommand>([
  ['record', {
    summary: 'forward proxy that records every new request and answers recorded ones from the record',
    load: async () => (await import('./record.ts')).recordCommand,
  }],
  ['replay', {
    summary: 'forward proxy that answers only from a netlock, never touching the network',
    load: async () => (await import('./replay.ts')).replayCommand,
  }],
  ['env', {
    summary: 'print the shell exports that point clients at the proxy and make them trust its CA',
    load: async () => (await import('./env.ts')).envCommand,
  }],
  ['verify', {
    batch: true,
    summary: "check a netlock's signatures, blocks and bodies",
    load: async () => (await import('./verify.ts')).verifyCommand,
  }],
  ['witness', {
    batch: true,
    summary: "fetch a netlock's entries again with another key and countersign what matches",
    load: async () => (await import('./witness.ts')).witnessCommand,
  }],
  ['recover', {
    batch: true,
    summary: 'rebuild a netlock from the journal of a run that crashed',
    load: async () => (await import('./recover.ts')).recoverCommand,
  }],
  ['gc', {
    batch: true,
    summary: 'remove blocks no record or netlock needs, and stale temp files, from the data directory',
    load: async () => (await import('./gc.ts')).gcCommand,
  }],
  ['export', {
    batch: true,
    summary: 'write a netlock and every block it needs as one CAR file (export --car OUT.car NETLOCK)',
    load: async () => (await import('./car.ts')).exportCommand,
  }],
  ['import', {
    batch: true,
    summary: 'load and verify a CAR into the embedded store or Kubo (import IN.car)',
    load: async () => (await import('./car.ts')).importCommand,
  }],
  ['run', {
    summary: `run a command with a recording proxy (or, with --replay FILE, offline in a loopback-only
            namespace where the replay proxy is the only way out)`,
    load: async () => (await import('./run.ts')).runCommand,
  }],
  ['build', {
    summary: `build an unmodified Dockerfile with buildah through the recording proxy; --replay FILE rebuilds
            it offline, --check does both and compares the image digests`,
    load: async () => (await import('./build.ts')).buildCommand,
  }],
  ['provenance', {
    summary: 'write (or --verify) a signed SLSA v1 provenance statement for a netlock',
    load: async () => (await import('./provenance.ts')).provenanceCommand,
  }],
  ['attest', {
    summary: 'verify an AWS Nitro Enclave attestation document (attest verify FILE)',
    load: async () => (await import('./attest.ts')).attestCommand,
  }],
  ['machine', {
    summary: 'build inside the Cartesi Machine: image, run, check',
    load: async () => (await import('./machine.ts')).machineCommand,
  }],
  ['serve-machine', {
    summary: "answer a Cartesi Machine's dehashing device from this host's blocks",
    load: async () => (await import('./serve-machine.ts')).serveMachineCommand,
  }],
  ['seed', {
    batch: true,
    summary: 'build a netlock before the build, from URL lists and lockfiles, checking their digests',
    load: async () => (await import('./seed.ts')).seedCommand,
  }],
  ['lockfile', {
    batch: true,
    summary: 'turn a netlock back into a pinned list (sha256sums, urls, json)',
    load: async () => (await import('./seed.ts')).lockfileCommand,
  }],
  ['enclave', {
    summary: "run the oracle in a Nitro Enclave (enclave serve) or the parent's CONNECT proxy (enclave parent)",
    load: async () => (await import('./enclave.ts')).enclaveCommand,
  }],
  ['report', {
    batch: true,
    summary: 'a netlock and its run as one self-contained HTML page (report NETLOCK --html OUT.html)',
    load: async () => (await import('./report.ts')).reportCommand,
  }],
]);

export const MAIN_HELP = `fetch-oracle: record a build's network once as signed, content-addressed records; replay it offline.

Usage: fetch-oracle <command> [options]

Commands:
${[...COMMANDS].map(([name, command]) => `  ${name.padEnd(8)}  ${command.summary}\n`).join('')}
Run 'fetch-oracle <command> --help' for the options of a command, 'fetch-oracle --version' for the version.
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
    if (name === '-V' || name === '--version' || name === 'version') {
      context.stdout.write(`fetch-oracle ${packageJson.version}\n`);
      return 0;
    }
    if (name === undefined) throw new UsageError(`a command is needed\n\n${MAIN_HELP}`);
    const command = COMMANDS.get(name);
    if (command === undefined) throw new UsageError(`Unknown command ${JSON.stringify(name)}\n\n${MAIN_HELP}`);
    return (await command.load()).run(rest, context);
  });
}
