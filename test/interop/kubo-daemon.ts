/**
 * A real Kubo for tests (design §9), the way test/interop/kubo-cid.test.ts gets one: the daemon at
 * FETCH_ORACLE_KUBO_API, or one started from test/kubo/bin/ipfs in a temporary repo (`ownKubo`), whose API
 * port is fixed after the first start so that the daemon can be stopped and restarted at the same URL.
 * With neither, suites skip (`describe.skipIf(!KUBO_AVAILABLE)`), except under CI, where `kuboRequiredInCi`
 * fails.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
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
  /** Starts an own daemon again at the same URL. */
  start(): Promise<void>;
  /** Stops an own daemon and removes its repo. */
  dispose(): Promise<void>;
}

async function kuboSh(args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('bash', [KUBO_SH, ...args], { maxBuffer: 16 * 1024 * 1024 });
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

/** Starts a daemon of our own in a fresh repo (needs the binary), its API on a fixed loopback port. */
export async function ownKubo(): Promise<KuboDaemon> {
  const dir = await mkdtemp(join(tmpdir(), 'fetch-oracle-kubo-'));
  let api: string;
  try {
    // kubo.sh rebuilds the binary first if go.mod/go.sum are newer than it (minutes).
    const first = await kuboSh(['start', dir]);
    const port = /:(\d+)\/?$/.exec(first)?.[1];
    if (port === undefined) throw new Error(`kubo.sh printed no API URL: ${first}`);
    // Pin the port the daemon just bound, so a restart comes back at the same URL.
    await kuboSh(['stop', dir]);
    await ipfsIn(dir, ['config', 'Addresses.API', `/ip4/127.0.0.1/tcp/${port}`]);
    api = await kuboSh(['start', dir]);
  } catch (err) {
    await kuboSh(['stop', dir]).catch(() => '');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    api,
    dir,
    stop: async () => void (await kuboSh(['stop', dir])),
    start: async () => {
      const again = await kuboSh(['start', dir]);
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

/**
 * The daemon at FETCH_ORACLE_KUBO_API when set (never stopped; `ipfs` runs the binary with `--api`), else an
 * own one. Callers `dispose()` it in afterAll.
 */
export async function anyKubo(): Promise<KuboDaemon> {
  if (API_FROM_ENV === undefined) return ownKubo();
  const api = API_FROM_ENV.replace(/\/$/, '');
  const notOwn = (): Promise<void> => Promise.reject(new Error('FETCH_ORACLE_KUBO_API names a daemon this test does not own'));
  return {
    api,
    dir: undefined,
    stop: notOwn,
    start: notOwn,
    dispose: () => Promise.resolve(),
  };
}
