import { PassThrough } from 'node:stream';
import { runLockfile, runSeed } from '../../src/cli/seed.ts';

export interface CliOutput {
  code: number;
  stdout: string;
  stderr: string;
}

function sink(): PassThrough & { text(): string } {
  const s = new PassThrough();
  let text = '';
  s.on('data', (d: Buffer) => (text += d.toString()));
  return Object.assign(s, { text: () => text });
}

/** `fetch-oracle seed ARGS…` in this process (the same function cli.ts dispatches to), output captured. */
export async function seedCli(args: string[], options: { data: string; signal?: AbortSignal }): Promise<CliOutput> {
  const stdout = sink();
  const stderr = sink();
  const code = await runSeed(args, { defaultDataDir: options.data, stdout, stderr, ...(options.signal === undefined ? {} : { signal: options.signal }) });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

/** `fetch-oracle lockfile ARGS…` in this process. */
export async function lockfileCli(args: string[], data: string): Promise<CliOutput> {
  const stdout = sink();
  const stderr = sink();
  const code = await runLockfile(args, { defaultDataDir: data, stdout, stderr });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

export interface NetlockJson {
  netlock: string;
  count: number;
  entries: Array<{ method: string; url: string; accept: string; status: number; body: string | null; size: number; sha256: string; record: string }>;
}
