// Entry point for tests of `fetch-oracle build` (src/cli-build.ts) independently of src/cli.ts, which other
// commands share: `node bin/run-ts.js test/helpers/build-entry.ts [build options] CONTEXT` behaves like
// `fetch-oracle build …` (same exit codes; errors printed the way src/cli.ts's main() prints them).
import 'reflect-metadata';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { runBuild } from '../../src/cli-build.ts';
import { OracleError } from '../../src/errors.ts';

function defaultDataDir(): string {
  const env = process.env['FETCH_ORACLE_DATA'];
  if (env !== undefined && env !== '') return resolve(env);
  const xdg = process.env['XDG_DATA_HOME'];
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.local', 'share'), 'fetch-oracle');
}

try {
  process.exitCode = await runBuild(process.argv.slice(2), defaultDataDir());
} catch (err) {
  const code = err instanceof OracleError ? `${err.code}: ` : '';
  process.stderr.write(`fetch-oracle: ${code}${(err as Error).message}\n`);
  process.exitCode = 1;
}
