/**
 * What every `fetch-oracle` command shares: the usage error (exit 2), the error report (exit 1 with the
 * stable code), `--trust` key parsing and the SIGINT/SIGTERM handling of long-running commands.
 */
import { resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { OracleError } from '../errors.ts';
import { createLogger } from '../log.ts';
import type { Logger } from '../log.ts';
import { fromHex } from '../protocol/signature.ts';

/** A mistake in the command line: printed as is, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * Runs a command's body and turns its failures into exit codes: 2 for a usage error, 1 for anything else,
 * printed to `err` with its stable code (`fetch-oracle[ NAME]: ORACLE_ERR_…: message`).
 */
export async function reportingErrors(err: Writable, prefix: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof UsageError) {
      err.write(`fetch-oracle: ${e.message}\n`);
      return 2;
    }
    const code = e instanceof OracleError ? `${e.code}: ` : '';
    err.write(`${prefix}: ${code}${(e as Error).message}\n`);
    return 1;
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

/** `HOST:PORT` (an IPv6 host in brackets) or `unix:/path`. */
export function parseAddress(text: string, flag: string): { host: string; port: number } | { path: string } {
  if (text.startsWith('unix:')) return { path: resolve(text.slice('unix:'.length)) };
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text);
  if (m === null || Number(m[2]) > 65535) throw new UsageError(`${flag} expects HOST:PORT (or unix:/path), got ${JSON.stringify(text)}`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/** The logger of a command: timestamped lines on stderr; `quiet` drops info lines (wrapping commands). */
export function stderrLogger(options: { quiet?: boolean } = {}): Logger {
  return createLogger('oracle', (level, namespace, line) => {
    if (level === 'info' && options.quiet === true) return;
    process.stderr.write(`${new Date().toISOString()} ${level} ${namespace}: ${line}\n`);
  });
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
 * Resolves on the first SIGINT or SIGTERM. Install it before anything is printed: a script that waits for
 * `listening` and then signals must never meet the default handler. A second signal while shutting down
 * exits at once (130/143); the journal keeps what was served.
 */
export function untilSignal(logger: Logger): Promise<void> {
  return new Promise<void>((done) => {
    const stop = (signal: string): void => {
      logger.info('%s: shutting down', signal);
      process.removeAllListeners('SIGINT');
      process.removeAllListeners('SIGTERM');
      process.once('SIGINT', () => process.exit(130));
      process.once('SIGTERM', () => process.exit(143));
      done();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}
