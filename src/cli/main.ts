/** The `fetch-oracle` entry point: the process's argv, environment and streams handed to the dispatcher. */
import 'reflect-metadata';
import { setFlagsFromString } from 'node:v8';
import { runCommandLine } from './commands.ts';
import { defaultDataDir } from './options.ts';

// V8 lets the old generation grow to several times its live data before a full collection: under a
// replay of a 100,000-entry netlock (records decoded, kept a while, dropped) that was a 230-290 MB peak
// RSS over ~50 MB live. Growing by 25% instead gave 166-175 MB for the same load (issue #15). This flag
// is read at each collection, so setting it here, before any work, takes effect.
setFlagsFromString('--heap-growing-percent=25');

process.exitCode = await runCommandLine(process.argv.slice(2), {
  defaultDataDir: defaultDataDir(),
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
});
