/**
 * The command-line flags of the proxy front shared by `record` and `replay` (issue 13, defects 4 and 9): its
 * timeouts, connection cap, off-loopback listening and proxy credentials. Kept here so each command's module
 * only spreads the option table, the help lines and the parsed values.
 */
import type { ParseArgsConfig } from 'node:util';
import { InvalidConfigError } from '../errors.ts';
import type { ProxyLimits } from '../proxy/limits.ts';
import { DEFAULT_HEADER_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS, defaultMaxConnections } from '../proxy/limits.ts';
import { DEFAULT_UPSTREAM_TIMEOUT_MS } from '../upstream/safe-dispatcher.ts';
import type { Exposure } from '../config/exposure.ts';
import { DEFAULT_SYNC_EVERY_MS } from '../oracle/checkpoints.ts';
import type { SyncPolicy } from '../oracle/checkpoints.ts';

/** Environment variable holding the proxy credentials (preferred to the flag: a flag shows in `ps`). */
export const PROXY_AUTH_ENV = 'FETCH_ORACLE_PROXY_AUTH';

export const FRONT_OPTIONS = {
  'header-timeout': { type: 'string' },
  'idle-timeout': { type: 'string' },
  'max-connections': { type: 'string' },
  'allow-remote': { type: 'boolean' },
  'proxy-auth': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

export const UPSTREAM_OPTIONS = {
  'upstream-timeout': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

/** `--sync`, for the commands that record. */
export const SYNC_OPTIONS = {
  sync: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const seconds = (ms: number): string => `${ms / 1000}s`;

export const FRONT_HELP = `  --header-timeout DUR   a client must send a complete request head within DUR of connecting (default
                         ${seconds(DEFAULT_HEADER_TIMEOUT_MS)}; DUR as 500ms, 30s, 2m or seconds); else 408
  --idle-timeout DUR     close a client connection on which nothing moves for DUR, unless it waits for the
                         origin (default ${seconds(DEFAULT_IDLE_TIMEOUT_MS)})
  --max-connections N    refuse client connections beyond N with 503 ORACLE_ERR_OVERLOADED (default from the
                         open-file limit: ${defaultMaxConnections()} here)
  --allow-remote         allow --listen off loopback (needs --proxy-auth: the proxy reaches this host's network
                         and loopback services)
  --proxy-auth USER:PASSWORD  require Proxy-Authorization: Basic with these credentials (or a bare TOKEN: any
                         user name); prefer $${PROXY_AUTH_ENV}, which does not show in ps
`;

export const UPSTREAM_HELP = `  --upstream-timeout DUR longest wait for an origin's connection, response head or next body bytes (default
                         ${seconds(DEFAULT_UPSTREAM_TIMEOUT_MS)}); a timeout answers 504 ORACLE_ERR_UPSTREAM_TIMEOUT, nothing recorded
`;

export const SYNC_HELP = `  --sync each|DUR        when records go on disk: at a checkpoint at most DUR after they are written (default
                         ${seconds(DEFAULT_SYNC_EVERY_MS)}; a power loss can take the last DUR of records, a killed process none), or
                         \`each\`: before every new record's answer ends (slower; docs/formats.md, Durability)
`;

/** The `sync` init field for `--sync each|DUR` (none when the flag is not given). */
export function syncInitFromFlags(values: Record<string, unknown>): { sync?: SyncPolicy } {
  const text = str(values['sync']);
  if (text === undefined) return {};
  return { sync: text.trim() === 'each' ? 'each' : { everyMs: parseDuration(text, '--sync (each, or a duration)') } };
}

/** `500ms`, `30s`, `2m`, or a number of seconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (m === null) throw new InvalidConfigError(`${flag} expects a duration such as 500ms, 30s or 2m, got ${JSON.stringify(text)}`);
  const ms = Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000);
  if (!(ms >= 1) || ms > 24 * 3600 * 1000) throw new InvalidConfigError(`${flag} must be between 1ms and 24h, got ${JSON.stringify(text)}`);
  return Math.round(ms);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** The OracleInit fields these flags set (only those given); `env` supplies the proxy credentials' variable. */
export function frontInitFromFlags(values: Record<string, unknown>, env: NodeJS.ProcessEnv): { limits?: ProxyLimits; upstreamTimeoutMs?: number; exposure?: Exposure } {
  const limits: ProxyLimits = {};
  const header = str(values['header-timeout']);
  if (header !== undefined) limits.headerTimeoutMs = parseDuration(header, '--header-timeout');
  const idle = str(values['idle-timeout']);
  if (idle !== undefined) limits.idleTimeoutMs = parseDuration(idle, '--idle-timeout');
  const max = str(values['max-connections']);
  if (max !== undefined) {
    if (!/^\d+$/.test(max) || Number(max) < 1) throw new InvalidConfigError(`--max-connections expects a positive integer, got ${JSON.stringify(max)}`);
    limits.maxConnections = Number(max);
  }
  const upstream = str(values['upstream-timeout']);
  const proxyAuth = str(values['proxy-auth']) ?? (env[PROXY_AUTH_ENV] === '' ? undefined : env[PROXY_AUTH_ENV]);
  const exposure: Exposure = {
    ...(values['allow-remote'] === true ? { allowRemote: true } : {}),
    ...(proxyAuth === undefined ? {} : { proxyAuth }),
  };
  return {
    ...(Object.keys(limits).length === 0 ? {} : { limits }),
    ...(upstream === undefined ? {} : { upstreamTimeoutMs: parseDuration(upstream, '--upstream-timeout') }),
    ...(Object.keys(exposure).length === 0 ? {} : { exposure }),
  };
}
