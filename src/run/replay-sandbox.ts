import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeBridge } from './bridge.ts';
import { NAMESPACE_PROXY_PORT } from './sandbox.ts';

/** sockaddr_un.sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH = 107;

export interface ReplaySandbox {
  /** Private (0700) directory holding the socket, the bridge script and its status file. */
  readonly dir: string;
  /** Where the replay proxy listens; the bridge inside the namespace connects here. */
  readonly socketPath: string;
  /**
   * `unshare -n node bridge.mjs … -- COMMAND…`: runs `command` offline with the bridge in front of it;
   * `ip` is the path of iproute2's `ip` (see findIp).
   */
  commandLine(command: readonly string[], ip: string): string[];
  /**
   * How the bridge fared: `started` (it ran the command), `failed` (its own failure: it could not bring `lo`
   * up, listen…; it has said why on stderr) or `missing` (it never ran: unshare or node failed before it).
   */
  bridgeStatus(): Promise<{ state: 'started' } | { state: 'failed' | 'missing'; message: string }>;
}

/** Creates the sandbox's private directory, runs `use`, and removes the directory again. */
export async function withReplaySandbox<T>(use: (sandbox: ReplaySandbox) => Promise<T>): Promise<T> {
  let dir = await mkdtemp(join(tmpdir(), 'fetch-oracle-run-'));
  if (join(dir, 'proxy.sock').length > MAX_SOCKET_PATH) {
    await rm(dir, { recursive: true, force: true });
    dir = await mkdtemp('/tmp/fo-run-');
  }
  try {
    const bridge = await writeBridge(dir);
    const socketPath = join(dir, 'proxy.sock');
    const statusPath = join(dir, 'bridge-status.json');
    return await use({
      dir,
      socketPath,
      commandLine: (command, ip) => ['unshare', '-n', process.execPath, bridge, statusPath, socketPath, String(NAMESPACE_PROXY_PORT), ip, '--', ...command],
      async bridgeStatus() {
        const text = await readFile(statusPath, 'utf8').catch(() => undefined);
        if (text === undefined) return { state: 'missing', message: 'the network namespace and its bridge did not start' };
        try {
          const status = JSON.parse(text) as { error?: unknown };
          return typeof status.error === 'string' ? { state: 'failed', message: status.error } : { state: 'started' };
        } catch {
          return { state: 'failed', message: `unreadable bridge status: ${text.slice(0, 200)}` };
        }
      },
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
