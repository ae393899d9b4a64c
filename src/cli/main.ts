/** The `fetch-oracle` entry point: the process's argv, environment and streams handed to the dispatcher. */
import 'reflect-metadata';
import { COMMANDS, runCommandLine } from './commands.ts';
import { defaultDataDir } from './options.ts';
import { tuneV8 } from './v8-tuning.ts';

tuneV8({ batch: COMMANDS.get(process.argv[2] ?? '')?.batch === true });

process.exitCode = await runCommandLine(process.argv.slice(2), {
  defaultDataDir: defaultDataDir(),
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
});
