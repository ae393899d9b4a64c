/**
 * What every `fetch-oracle` command shares: the usage error (exit 2), the error report (exit 1 with the
 * stable code), `--trust` key parsing and the SIGINT/SIGTERM handling of long-running commands.
 */
import type { Writable } from 'node:stream';
import { OracleError } from '../errors.ts';
import { createLogger } from '../log.ts';
import type { Logger } from '../log.ts';
import { UsageError } from '../config/flags.ts';

export { parseAddress, parseCommandLine, parseQuorum, parseTrustedKeys, UsageError } from '../config/flags.ts';

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

/** The logger of a command: timestamped lines on stderr; `quiet` drops info lines (wrapping commands). */
export function stderrLogger(options: { quiet?: boolean } = {}): Logger {
  return createLogger('oracle', (level, namespace, line) => {
    if (level === 'info' && options.quiet === true) return;
    process.stderr.write(`${new Date().toISOString()} ${level} ${namespace}: ${line}\n`);
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
