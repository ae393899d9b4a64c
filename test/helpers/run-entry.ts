// Entry point for tests of `fetch-oracle run` (src/cli-run.ts) before and independently of its wiring into
// src/cli.ts: `node bin/run-ts.js test/helpers/run-entry.ts [run options] -- COMMAND…` behaves like
// `fetch-oracle run …` (same exit codes; errors printed the way src/cli.ts's main() prints them).
import 'reflect-metadata';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { runRun } from '../../src/cli-run.ts';
import { OracleError } from '../../src/errors.ts';

function defaultDataDir(): string {
  const env = process.env['FETCH_ORACLE_DATA'];
  if (env !== undefined && env !== '') return resolve(env);
  const xdg = process.env['XDG_DATA_HOME'];
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.local', 'share'), 'fetch-oracle');
}

try {
  process.exitCode = await runRun(process.argv.slice(2), defaultDataDir());
} catch (err) {
  const code = err instanceof OracleError ? `${err.code}: ` : '';
  process.stderr.write(`fetch-oracle: ${code}${(err as Error).message}\n`);
  process.exitCode = 1;
}
