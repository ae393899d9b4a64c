/** Option helpers the proxy-facing commands (record, replay, env, verify, recover) share. */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { parseArgs, ParseArgsConfig } from 'node:util';
import { parseAddress, parseCommandLine } from './common.ts';
import type { ListenAddress } from '../proxy/proxy-server.ts';

export const DEFAULT_LISTEN = '127.0.0.1:8899';

/** Flags every one of these commands takes. */
export const COMMON_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  data: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

/** $FETCH_ORACLE_DATA, else $XDG_DATA_HOME/fetch-oracle, else ~/.local/share/fetch-oracle. */
export function defaultDataDir(): string {
  const env = process.env['FETCH_ORACLE_DATA'];
  if (env !== undefined && env !== '') return resolve(env);
  const xdg = process.env['XDG_DATA_HOME'];
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.local', 'share'), 'fetch-oracle');
}

export function parseListen(text: string, flag = '--listen'): ListenAddress | { path: string } {
  return parseAddress(text, flag);
}

/** The command line of a command: COMMON_OPTIONS plus `options`, positionals allowed, unknown flags a UsageError. */
export function parseOptions(args: string[], options: ParseArgsConfig['options'], help: string): ReturnType<typeof parseArgs> {
  return parseCommandLine({ args, options: { ...COMMON_OPTIONS, ...options }, allowPositionals: true, strict: true }, help);
}

export function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function strs(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

export function urlOf(a: ListenAddress): string {
  return `http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}
