/** The `fetch-oracle` entry point: the process's argv, environment and streams handed to the dispatcher. */
import 'reflect-metadata';
import { runCommandLine } from './commands.ts';
import { HeapGrowth } from './heap-growth.ts';
import { defaultDataDir } from './options.ts';

// V8's old-generation growth follows the heap's size (heap-growth.ts says why), from before any work.
const heapGrowth = new HeapGrowth();

process.exitCode = await runCommandLine(process.argv.slice(2), {
  defaultDataDir: defaultDataDir(),
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
});
heapGrowth.close();
