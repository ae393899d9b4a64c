import { join } from 'node:path';
import { CLI, cli, startDaemon } from './run.ts';
import type { Daemon } from './run.ts';

/**
 * Shared plumbing for the real-client tests (test/clients): a `fetch-oracle record` daemon plus the client
 * environment `fetch-oracle env` exports for it, and a bash script that runs `fetch-oracle replay` inside a
 * loopback-only network namespace (`unshare -n`) where the clients then run.
 */

/** PATH plus a private HOME: no proxy, CA or tool configuration leaks in from the machine running the tests. */
export function cleanEnv(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin', HOME: home, LANG: 'C.UTF-8', ...extra };
}

/** Parses the `export NAME=VALUE` lines `fetch-oracle env` prints (values shell-quoted with '…' when needed). */
export function parseExports(stdout: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const m of stdout.matchAll(/^export (\w+)=(.*)$/gm)) vars[m[1]!] = m[2]!.replace(/^'|'$/g, '').replace(/'\\''/g, "'");
  return vars;
}

export interface Recording {
  daemon: Daemon;
  /** `cleanEnv(home, extra)` plus every variable `fetch-oracle env` exported for this daemon. */
  env: NodeJS.ProcessEnv;
  exported: Record<string, string>;
}

/** Starts `fetch-oracle record` on 127.0.0.1:0 (trusting `upstreamCa` for the test origins, if given). */
export async function startRecording(init: { data: string; netlock: string; home: string; upstreamCa?: string; extraEnv?: NodeJS.ProcessEnv }): Promise<Recording> {
  const args = ['record', '--listen', '127.0.0.1:0', '--data', init.data, '--netlock', init.netlock, '--admin', '127.0.0.1:0'];
  if (init.upstreamCa !== undefined) args.push('--upstream-ca', init.upstreamCa);
  const base = cleanEnv(init.home, init.extraEnv);
  const daemon = await startDaemon(args, base);
  const r = await cli(['env', '--listen', daemon.url.replace('http://', ''), '--data', init.data], { env: base });
  if (r.code !== 0) {
    await daemon.stop('SIGKILL');
    throw new Error(`fetch-oracle env failed: ${r.stderr}`);
  }
  const exported = parseExports(r.stdout);
  return { daemon, exported, env: { ...base, ...exported } };
}

/** The port `fetch-oracle replay` listens on inside the namespace (the namespace has its own loopback). */
export const NS_PORT = 8899;

/**
 * A bash script for `unshare -n bash -c …`: brings `lo` up, starts `fetch-oracle replay` on 127.0.0.1:NS_PORT
 * (stdout/stderr to `workDir/replay.{out,err}`, `--report workDir/replay-report.json`), exports what
 * `fetch-oracle env` prints for it, runs `body`, then SIGTERMs the replay and echoes `replay rc=N`.
 * `probe` is a URL that must be unreachable directly: the script echoes `direct rc=N` for curl's exit code.
 */
export function replayScript(init: { netlock: string; data: string; workDir: string; body: string; probe?: string }): string {
  const node = process.execPath;
  const { workDir } = init;
  return `
set -u
ip link set lo up
${init.probe === undefined ? '' : `curl -s -o /dev/null --noproxy '*' --max-time 5 ${init.probe}; echo "direct rc=$?"`}
'${node}' '${CLI}' replay --netlock '${init.netlock}' --data '${init.data}' --listen 127.0.0.1:${NS_PORT} --report '${workDir}/replay-report.json' >'${workDir}/replay.out' 2>'${workDir}/replay.err' &
replay_pid=$!
for i in $(seq 1 200); do grep -q listening '${workDir}/replay.out' 2>/dev/null && break; sleep 0.1; done
eval "$('${node}' '${CLI}' env --listen 127.0.0.1:${NS_PORT} --data '${init.data}')"
${init.body}
kill -TERM $replay_pid; wait $replay_pid; echo "replay rc=$?"
`;
}

/** The replay report `fetch-oracle replay --report` writes on shutdown (the fields these tests read). */
export interface ReplayReport {
  entries: number;
  used: number;
  misses: Array<{ method: string; url: string; accept: string }>;
  unused: Array<{ method: string; url: string; accept: string }>;
}

export const reportPath = (workDir: string): string => join(workDir, 'replay-report.json');
