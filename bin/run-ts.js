#!/usr/bin/env node
// Runs a TypeScript file through tsx in this process (for scripts and benchmarks): node bin/run-ts.js FILE [ARGS…]
import { register } from 'tsx/esm/api';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

register();
const [file, ...rest] = process.argv.slice(2);
if (file === undefined) {
  process.stderr.write('usage: run-ts.js FILE [ARGS…]\n');
  process.exit(2);
}
process.argv = [process.argv[0], resolve(file), ...rest];
await import(pathToFileURL(resolve(file)).href);
