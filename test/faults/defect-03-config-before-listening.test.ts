/**
 * Defect 3 (issue 13): `record --admin 0.0.0.0:P` without a token printed ORACLE_ERR_INVALID_CONFIG, but the
 * proxy, already listening, kept recording; SIGTERM never stopped it and SIGINT exited 130 without writing the
 * netlock. Now the whole configuration is validated before anything listens: the command exits at once with the
 * reason, never prints `listening`, and nothing answers on the proxy port it was given.
 */
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Oracle } from '../../src/oracle/oracle.ts';
import { cli, tempDir } from '../helpers/run.ts';

/** A TCP port that was free a moment ago (for a command that must not listen on it). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Whether something accepts connections on 127.0.0.1:port. */
async function listening(port: number): Promise<boolean> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

describe('defect 3: the configuration is validated before anything listens', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  const env = (): NodeJS.ProcessEnv => ({ PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir.path });

  beforeAll(async () => {
    dir = await tempDir('fo-defect3-');
  });

  afterAll(async () => {
    await dir?.remove();
  });

  it('record --admin off loopback without a token exits at once, names the reason, and never listens', async () => {
    const port = await freePort();
    const netlock = join(dir.path, 'n.json');
    const started = Date.now();
    const r = await cli(['record', '--listen', `127.0.0.1:${port}`, '--admin', '0.0.0.0:0', '--data', join(dir.path, 'data'), '--netlock', netlock], { env: env(), timeoutMs: 30_000 });
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull(); // it ended by itself, not by the timeout
    expect(r.stdout).not.toMatch(/listening/);
    expect(r.stderr).toMatch(/ORACLE_ERR_INVALID_CONFIG/);
    expect(r.stderr).toMatch(/Admin API on non-loopback 0\.0\.0\.0 needs a bearer token/);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await listening(port)).toBe(false);
    expect(existsSync(`${netlock}.journal`)).toBe(false);
  });

  it('the Oracle refuses such an init in its constructor, before start() could bind a port', () => {
    expect(() => new Oracle({ mode: 'record', dataDir: join(dir.path, 'data'), listen: { host: '127.0.0.1', port: 0 }, admin: { host: '0.0.0.0', port: 0 } })).toThrow(/bearer token/);
    expect(() => new Oracle({ mode: 'record', dataDir: join(dir.path, 'data'), listen: { host: '127.0.0.1', port: 0 }, admin: { host: '0.0.0.0', port: 0 }, adminToken: 'short' })).toThrow(/at least 16 characters/);
    expect(() => new Oracle({ mode: 'record', dataDir: join(dir.path, 'data'), listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } })).not.toThrow();
  });
});
