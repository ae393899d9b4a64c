import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { COMMANDS, MAIN_HELP } from '../../src/cli/commands.ts';
import { cliInProcess } from '../helpers/cli-in-process.ts';
import { cli } from '../helpers/run.ts';

/** Every command line that reaches a command's flag parser: the commands, and the sub-commands of two. */
const COMMAND_LINES: [string, string[]][] = [...COMMANDS.keys()].flatMap((name): [string, string[]][] => {
  if (name === 'attest') return [[name, ['attest', 'verify']]];
  if (name === 'enclave') return [[name, ['enclave', 'serve']], [name, ['enclave', 'parent']]];
  return [[name, [name]]];
});

describe('runCommandLine', () => {
  it('lists every command of the table in the main help, in order', async () => {
    const res = await cliInProcess(['--help']);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe(MAIN_HELP);
    const listed = [...MAIN_HELP.matchAll(/^ {2}([a-z-]+) {2,}/gm)].map((m) => m[1]);
    expect(listed).toEqual([...COMMANDS.keys()]);
  });

  it('prints the version of package.json for --version, -V and version, and exits 0', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
    for (const flag of ['--version', '-V', 'version']) {
      const res = await cliInProcess([flag]);
      expect(res.code, flag).toBe(0);
      expect(res.stdout).toBe(`fetch-oracle ${version}\n`);
      expect(res.stderr).toBe('');
    }
    // The installed entry point too: the bundle (or tsx) must carry package.json's version.
    const res = await cli(['--version']);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe(`fetch-oracle ${version}\n`);
  });

  it('exits 2 with the main help on stderr without a command or with an unknown one', async () => {
    for (const argv of [[], ['frobnicate']]) {
      const res = await cliInProcess(argv);
      expect(res.code, argv.join(' ')).toBe(2);
      expect(res.stdout).toBe('');
      expect(res.stderr).toContain(MAIN_HELP);
    }
  });

  for (const [name, argv] of COMMAND_LINES) {
    it(`${argv.join(' ')}: an unknown flag exits 2 with the command's help on stderr, nothing on stdout`, async () => {
      const res = await cliInProcess([...argv, '--no-such-flag']);
      expect(res.code, res.stderr).toBe(2);
      expect(res.stdout).toBe('');
      // build hands flags it does not know to buildah, so for it the usage error is the missing CONTEXT.
      expect(res.stderr).toMatch(name === 'build' ? /^fetch-oracle: build needs a CONTEXT directory/ : /^fetch-oracle: Unknown option '--no-such-flag'/);
      expect(res.stderr).toContain((await COMMANDS.get(name)!.load()).help);
    });

    it(`${argv.join(' ')} --help prints the command's help on stdout and exits 0`, async () => {
      const res = await cliInProcess([...argv, '--help']);
      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).toBe((await COMMANDS.get(name)!.load()).help);
    });
  }

  it('attest and enclave without a known sub-command are usage errors too', async () => {
    for (const argv of [['attest'], ['attest', 'check'], ['attest', '--no-such-flag'], ['enclave'], ['enclave', 'run']]) {
      const res = await cliInProcess(argv);
      expect(res.code, argv.join(' ')).toBe(2);
      expect(res.stdout).toBe('');
      expect(res.stderr).toContain((await COMMANDS.get(argv[0]!)!.load()).help);
    }
  });

  it('serve-machine without --netlock and one machine is a usage error', async () => {
    const res = await cliInProcess(['serve-machine', '--netlock', 'x.json']);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/^fetch-oracle: serve-machine needs --netlock FILE and exactly one of --machine URL or --simulate-socket PATH/);
  });
});

describe('bin/fetch-oracle.js', () => {
  it('exits with the dispatcher\'s code and streams (usage errors of attest, enclave and serve-machine: 2)', async () => {
    const results = await Promise.all([['attest', 'verify', '--bogus'], ['enclave', 'parent', '--bogus'], ['serve-machine', '--bogus']].map((argv) => cli(argv)));
    for (const [i, res] of results.entries()) {
      expect(res.code, res.stderr).toBe(2);
      expect(res.stdout).toBe('');
      expect(res.stderr).toMatch(/^fetch-oracle: Unknown option '--bogus'/);
      expect(res.stderr).toContain((await COMMANDS.get(['attest', 'enclave', 'serve-machine'][i]!)!.load()).help);
    }
  });
});
