/**
 * A real Kubo for tests (design §9), the way test/interop/kubo-cid.test.ts gets one: the daemon at
 * FETCH_ORACLE_KUBO_API, or one started from test/kubo/bin/ipfs in a temporary repo (`ownKubo`), whose API
 * port is fixed after the first start so that the daemon can be stopped and restarted at the same URL.
 * With neither, suites skip (`describe.skipIf(!KUBO_AVAILABLE)`), except under CI, where `kuboRequiredInCi`
 * fails.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const execFileAsync = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));

export const KUBO_SH = resolve(HERE, '../kubo/kubo.sh');
export const IPFS_BIN = resolve(HERE, '../kubo/bin/ipfs');
export const API_FROM_ENV = process.env['FETCH_ORACLE_KUBO_API']?.trim() || undefined;
export const HAVE_BINARY = existsSync(IPFS_BIN);
export const KUBO_AVAILABLE = API_FROM_ENV !== undefined || HAVE_BINARY;
export const IN_CI = Boolean(process.env['CI']);

/** A test that fails under CI when no Kubo is available, and is skipped elsewhere. */
export function kuboRequiredInCi(what: string, needBinary = false): void {
  const missing = needBinary ? !HAVE_BINARY : !KUBO_AVAILABLE;
  it.skipIf(!missing || !IN_CI)(`has a Kubo for ${what} (required under CI)`, () => {
    expect.fail(
      needBinary
        ? `No Kubo binary at ${IPFS_BIN}: build it with \`test/kubo/kubo.sh build\` (this suite stops and restarts its own daemon).`
        : `No Kubo: set FETCH_ORACLE_KUBO_API to a running daemon's RPC URL, or build ${IPFS_BIN} with \`test/kubo/kubo.sh build\`.`,
    );
  });
}

export interface KuboDaemon {
  /** RPC API URL, e.g. http://127.0.0.1:41234 */
  readonly api: string;
  /** The repo directory when this process owns the daemon. */
  readonly dir: string | undefined;
  /** Stops an own daemon (SIGTERM, as a restart would). */
  stop(): Promise<void>;
  /**
   * Freezes an own daemon (SIGSTOP) and resolves once every one of its threads is stopped and it is the
   * process listening on the API port; the returned function resumes it (SIGCONT).
   */
  suspend(): Promise<() => void>;
  /** Starts an own daemon again at the same URL. */
  start(): Promise<void>;
  /** Stops an own daemon and removes its repo. */
  dispose(): Promise<void>;
}

async function kuboSh(args: string[], online = false): Promise<string> {
  const env = { ...process.env, KUBO_ONLINE: online ? '1' : '0' };
  const { stdout } = await execFileAsync('bash', [KUBO_SH, ...args], { env, maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim().split('\n').at(-1)?.trim() ?? '';
}

async function ipfsIn(dir: string, args: string[]): Promise<void> {
  await execFileAsync(IPFS_BIN, args, { env: { ...process.env, IPFS_PATH: dir, IPFS_TELEMETRY: 'off' } });
}

/** POSTs to Kubo's RPC API directly (independent of the code under test); rejects unless 200. */
export async function kuboRpc(api: string, path: string, init: { body?: FormData } = {}): Promise<Response> {
  const res = await fetch(`${api}/api/v0/${path}`, { method: 'POST', ...(init.body === undefined ? {} : { body: init.body }) });
  if (!res.ok) throw new Error(`Kubo ${path}: HTTP ${res.status}: ${await res.text()}`);
  return res;
}

/**
 * Starts a daemon of our own in a fresh repo (needs the binary), its API on a fixed loopback port. `online`:
 * without --offline, so that bitswap runs (it still reaches only peers it is connected to: `connectKubo`).
 */
export async function ownKubo(options: { online?: boolean } = {}): Promise<KuboDaemon> {
  const online = options.online === true;
  const dir = await mkdtemp(join(tmpdir(), 'fetch-oracle-kubo-'));
  let api: string;
  try {
    // kubo.sh rebuilds the binary first if go.mod/go.sum are newer than it (minutes).
    const first = await kuboSh(['start', dir], online);
    const port = /:(\d+)\/?$/.exec(first)?.[1];
    if (port === undefined) throw new Error(`kubo.sh printed no API URL: ${first}`);
    // Pin the port the daemon just bound, so a restart comes back at the same URL.
    await kuboSh(['stop', dir]);
    await ipfsIn(dir, ['config', 'Addresses.API', `/ip4/127.0.0.1/tcp/${port}`]);
    api = await kuboSh(['start', dir], online);
  } catch (err) {
    await kuboSh(['stop', dir]).catch(() => '');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    api,
    dir,
    stop: async () => void (await kuboSh(['stop', dir])),
    suspend: () => suspendDaemon(dir, api),
    start: async () => {
      const again = await kuboSh(['start', dir], online);
      if (again !== api) throw new Error(`Kubo came back at ${again}, not ${api}`);
    },
    dispose: async () => {
      try {
        await kuboSh(['stop', dir]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

/** Connects `from` to `to` over the swarm (loopback TCP), as `ipfs swarm connect /ip4/…/p2p/ID` does. */
export async function connectKubo(from: string, to: string): Promise<void> {
  const id = (await (await kuboRpc(to, 'id')).json()) as { ID: string; Addresses: string[] | null };
  const addr = (id.Addresses ?? []).find((a) => a.startsWith('/ip4/127.0.0.1/tcp/'));
  if (addr === undefined) throw new Error(`Kubo at ${to} has no loopback TCP swarm address: ${JSON.stringify(id.Addresses)}`);
  await kuboRpc(from, `swarm/connect?arg=${encodeURIComponent(addr)}`);
}

/** Whether the daemon holds the block in its own repo (`block/stat` offline: never asks its peers). */
export async function kuboHasLocally(api: string, cid: string): Promise<boolean> {
  const res = await fetch(`${api}/api/v0/block/stat?arg=${cid}&offline=true`, { method: 'POST' });
  await res.body?.cancel();
  return res.ok;
}

/**
 * The daemon at FETCH_ORACLE_KUBO_API when set (never stopped; `ipfs` runs the binary with `--api`), else an
 * own one. Callers `dispose()` it in afterAll.
 */
export async function anyKubo(): Promise<KuboDaemon> {
  if (API_FROM_ENV === undefined) return ownKubo();
  const api = API_FROM_ENV.replace(/\/$/, '');
  const notOwn = (): Promise<never> => Promise.reject(new Error('FETCH_ORACLE_KUBO_API names a daemon this test does not own'));
  return {
    api,
    dir: undefined,
    stop: notOwn,
    suspend: notOwn,
    start: notOwn,
    dispose: () => Promise.resolve(),
  };
}

async function suspendDaemon(dir: string, api: string): Promise<() => void> {
  const pid = Number(await readFile(join(dir, 'daemon.pid'), 'utf8'));
  const port = Number(new URL(api).port);
  // Another suite's daemon could hold the port while ours restarts: then SIGSTOP would freeze the wrong one.
  if (!(await listensOn(pid, port))) throw new Error(`Kubo pid ${pid} does not listen on ${api}`);
  process.kill(pid, 'SIGSTOP');
  const resume = (): void => void process.kill(pid, 'SIGCONT');
  // kill(2) only queues the stop: each thread stops on its way back to user space.
  for (const deadline = Date.now() + 10_000; !(await allThreadsStopped(pid)); ) {
    if (Date.now() > deadline) {
      resume();
      throw new Error(`Kubo pid ${pid} did not stop within 10 s of SIGSTOP`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return resume;
}

async function allThreadsStopped(pid: number): Promise<boolean> {
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => '');
    // The state letter follows the parenthesised command name.
    if (stat !== '' && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'T') return false;
  }
  return true;
}

async function listensOn(pid: number, port: number): Promise<boolean> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is HEXIP:HEXPORT; state 0A is LISTEN; field 9 is the socket inode.
      if (f.length > 9 && f[1]!.endsWith(`:${hexPort}`) && f[3] === '0A') inodes.add(f[9]!);
    }
  }
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode !== undefined && inodes.has(inode)) return true;
  }
  return false;
}
