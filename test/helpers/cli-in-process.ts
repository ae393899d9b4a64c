import { Writable } from 'node:stream';
import { runCommandLine } from '../../src/cli/commands.ts';
import type { RunResult } from './run.ts';

/** A Writable that keeps what was written, as text. */
export function captured(): Writable & { text(): string } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      chunks.push(Buffer.from(chunk));
      done();
    },
  });
  return Object.assign(stream, { text: () => Buffer.concat(chunks).toString('utf8') });
}

/**
 * Runs `fetch-oracle ARGV…` through the same dispatcher as the binary, in this process (no tsx start-up per
 * call), capturing stdout and stderr. For commands that end by themselves: nothing here sends a signal.
 */
export async function cliInProcess(argv: string[], options: { defaultDataDir?: string } = {}): Promise<RunResult> {
  const stdout = captured();
  const stderr = captured();
  const code = await runCommandLine(argv, { defaultDataDir: options.defaultDataDir ?? '/nonexistent/fetch-oracle-data', stdin: (async function* () {})(), stdout, stderr });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}
