/**
 * Command-line value parsing shared by the host CLI (`src/cli/`) and the guest shim (`guest/main.ts`): one
 * usage error, one address syntax, one trusted-key syntax. No I/O here.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { fromHex } from '../protocol/signature.ts';

/** A mistake in the command line: printed as is, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** `parseArgs(config)`, its errors (an unknown flag, a missing value) turned into a UsageError with `help`. */
export function parseCommandLine<T extends ParseArgsConfig>(config: T, help: string): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${help}`);
  }
}

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** `HOST:PORT` (an IPv6 host in brackets). */
export function parseHostPort(text: string, flag: string): { host: string; port: number } {
  const m = HOST_PORT.exec(text);
  if (m === null || Number(m[2]) > 65535) throw new UsageError(`${flag} expects HOST:PORT, got ${JSON.stringify(text)}`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/** `HOST:PORT` (an IPv6 host in brackets) or `unix:/path`. */
export function parseAddress(text: string, flag: string): { host: string; port: number } | { path: string } {
  if (text.startsWith('unix:')) return { path: resolve(text.slice('unix:'.length)) };
  const m = HOST_PORT.exec(text);
  if (m === null || Number(m[2]) > 65535) throw new UsageError(`${flag} expects HOST:PORT (or unix:/path), got ${JSON.stringify(text)}`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/** `--trust KEY` values: 64-hex-digit ed25519 public keys. */
export function parseTrustedKeys(values: readonly string[]): Uint8Array[] {
  return values.map((v) => {
    try {
      return fromHex(v.trim(), 32);
    } catch {
      throw new UsageError(`--trust expects a 64-hex-digit ed25519 public key, got ${JSON.stringify(v)}`);
    }
  });
}

/**
 * `--quorum K` (k-of-n witnesses): a positive integer, default 1. K > 1 needs at least K distinct `--trust` keys:
 * keys a netlock names itself prove nothing, however many there are.
 */
export function parseQuorum(text: string | undefined, trusted: readonly string[]): number {
  if (text === undefined) return 1;
  if (!/^[1-9][0-9]{0,2}$/.test(text.trim())) throw new UsageError(`--quorum expects a positive integer, got ${JSON.stringify(text)}`);
  const k = Number(text.trim());
  const distinct = new Set(trusted.map((t) => t.trim().toLowerCase())).size;
  if (k > 1 && distinct < k) {
    throw new UsageError(`--quorum ${k} needs at least ${k} distinct --trust keys (got ${distinct}): keys a netlock names itself prove nothing`);
  }
  return k;
}
