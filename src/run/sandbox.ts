import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** The port the in-namespace bridge listens on (the namespace has its own, otherwise empty, loopback). */
export const NAMESPACE_PROXY_PORT = 8899;

/**
 * Where `ip` (iproute2) is: on PATH, else in the sbin directories a non-root PATH often lacks.
 * Undefined if there is none.
 */
export function findIp(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = [...(env['PATH'] ?? '').split(delimiter).filter((d) => d !== ''), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const dir of dirs) {
    const path = join(dir, 'ip');
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Checks that this process can create a loopback-only network namespace, the way `run --replay` will:
 * `unshare -n IP link set lo up`. Returns undefined when it can, else a message saying why not and what
 * to do (ip or unshare missing, not permitted without root / CAP_SYS_ADMIN).
 */
export function unshareProblem(ip: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (ip === undefined) return '`ip` (iproute2) was not found: run --replay needs it to bring up the loopback interface of its network namespace (Debian: apt-get install iproute2)';
  const r = spawnSync('unshare', ['-n', ip, 'link', 'set', 'lo', 'up'], { encoding: 'utf8', env, timeout: 30_000 });
  if (r.error !== undefined) {
    const code = (r.error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return '`unshare` was not found on PATH: run --replay needs it (util-linux; Debian: apt-get install util-linux) to cut the command off the network';
    return `cannot run unshare: ${r.error.message}`;
  }
  if (r.status === 0) return undefined;
  const said = r.stderr.trim();
  if (/not permitted|permission denied/i.test(said)) {
    const who = typeof process.getuid === 'function' && process.getuid() !== 0 ? ' You are not root.' : '';
    return `unshare -n is not permitted here (${said}). run --replay creates a network namespace, which needs root (or CAP_SYS_ADMIN): run it with sudo.${who}`;
  }
  return `unshare -n ${ip} link set lo up failed (exit ${r.status}${r.signal === null ? '' : `, ${r.signal}`}): ${said || 'no message'}`;
}
