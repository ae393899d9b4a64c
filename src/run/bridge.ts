import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The in-namespace half of `fetch-oracle run --replay`. `unshare -n` gives the command a network namespace
 * with only a loopback interface, where the replay proxy (listening on a unix socket on the host side: a
 * socket path is visible across network namespaces) cannot be reached by TCP. This script runs inside the
 * namespace as its first process:
 *
 *   node bridge.mjs STATUS_FILE SOCKET PORT IP -- COMMAND [ARGS…]
 *
 * It brings `lo` up (`IP link set lo up`, IP being the path of iproute2's `ip`), listens on 127.0.0.1:PORT and pipes every connection to SOCKET,
 * then runs COMMAND (stdio inherited, environment as given: the caller already points the proxy variables at
 * 127.0.0.1:PORT), forwards SIGINT/SIGTERM/SIGHUP/SIGQUIT to it and exits with its exit code (128 + signal
 * number if it was killed). A failure of the bridge itself (bad arguments, no `ip`, port in use) is written
 * to STATUS_FILE as `{"error": "…"}` and exits 125, so the caller can tell it from the command's own failure.
 *
 * Plain JavaScript with no imports outside Node's standard library, kept as text so that it can be written
 * next to the socket and run by `node` whether fetch-oracle runs from its sources or from the bundle.
 */
export const BRIDGE_SOURCE = `// fetch-oracle run: TCP -> unix socket bridge inside the replay network namespace (generated; see src/run/bridge.ts)
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { constants } from 'node:os';

const [statusFile, socketPath, portText, ip, separator, ...command] = process.argv.slice(2);

function fail(message) {
  try {
    if (statusFile !== undefined) writeFileSync(statusFile, JSON.stringify({ error: message }) + '\\n');
  } catch {
    // the message below still says it
  }
  process.stderr.write('fetch-oracle run: ' + message + '\\n');
  process.exit(125);
}

const port = Number(portText);
if (socketPath === undefined || !Number.isInteger(port) || port < 1 || port > 65535 || ip === undefined || separator !== '--' || command.length === 0) {
  fail('bridge: usage: bridge.mjs STATUS_FILE SOCKET PORT IP -- COMMAND [ARGS...]');
}

const lo = spawnSync(ip, ['link', 'set', 'lo', 'up'], { encoding: 'utf8' });
if (lo.error !== undefined || lo.status !== 0) {
  const why = lo.error !== undefined ? lo.error.message : (lo.stderr || '').trim() || 'exit ' + lo.status;
  fail('cannot bring up the loopback interface in the network namespace (ip link set lo up): ' + why + ' (Debian: apt-get install iproute2)');
}

const server = createServer({ allowHalfOpen: true }, (client) => {
  const upstream = connect({ path: socketPath, allowHalfOpen: true });
  const drop = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', drop);
  upstream.on('error', drop);
  // Both directions ended cleanly: the client side closes last, after the proxy's answer was flushed to it.
  client.on('close', () => upstream.destroy());
  client.pipe(upstream);
  upstream.pipe(client);
});
server.on('error', (err) => fail('bridge: cannot listen on 127.0.0.1:' + port + ': ' + err.message));

server.listen(port, '127.0.0.1', () => {
  writeFileSync(statusFile, JSON.stringify({ listening: port }) + '\\n');
  // The handlers first: a signal that came between the spawn and them ended the bridge, not the command
  // (which may already be running). Their callbacks run once this block is done, so the child is there.
  const forward = (signal) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']) process.on(signal, () => forward(signal));
  const child = spawn(command[0], command.slice(1), { stdio: 'inherit' });
  child.on('error', (err) => {
    process.stderr.write('fetch-oracle run: cannot run ' + JSON.stringify(command[0]) + ': ' + err.message + '\\n');
    process.exit(err.code === 'ENOENT' ? 127 : 126);
  });
  child.on('exit', (code, signal) => {
    server.close();
    process.exit(code !== null ? code : 128 + (constants.signals[signal] || 0));
  });
});
`;

/** Writes the bridge script into `dir` (a private temp directory) and returns its path. */
export async function writeBridge(dir: string): Promise<string> {
  const path = join(dir, 'bridge.mjs');
  await writeFile(path, BRIDGE_SOURCE, { mode: 0o600 });
  return path;
}
