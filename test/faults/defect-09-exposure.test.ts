/**
 * Defect 9 (issue 13): `--listen 0.0.0.0` was accepted with no warning and no authentication, opening the
 * host's loopback services and the admin API to the network through the proxy. Now listening off loopback
 * needs `--allow-remote` AND proxy credentials (checked before anything listens); with credentials every
 * request needs `Proxy-Authorization: Basic` (407 otherwise), which is never forwarded or recorded; and the
 * proxy never reaches its own proxy or admin port under any alias (403 ORACLE_ERR_FORBIDDEN).
 * Everything listens on and talks to 127.0.0.1 only (the off-loopback cases are refused before binding).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ProxyAgent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawExchange } from '../helpers/raw-exchange.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import type { TestOracle } from '../helpers/oracle.ts';
import { cli, tempDir } from '../helpers/run.ts';

const USER = 'builder';
const PASSWORD = 'correct-horse-battery-staple';
const BASIC = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;

/** Sends `text` on a raw connection to 127.0.0.1:port and returns everything received until close. */
function raw(port: number, text: string): Promise<string> {
  return rawExchange(port, text);
}

describe('defect 9: exposure off loopback, proxy authentication, never the oracle itself', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  let t: TestOracle;
  let proxyPort: number;
  let adminPort: number;

  beforeAll(async () => {
    dir = await tempDir('fo-defect9-');
    origin = await startOrigin();
    origin.route('/hello', (_q, r) => void r.end('hello\n'));
    t = await startTestOracle({
      mode: 'record',
      dataDir: join(dir.path, 'data'),
      netlockPath: join(dir.path, 'run.netlock.json'),
      admin: { host: '127.0.0.1', port: 0 },
      exposure: { proxyAuth: `${USER}:${PASSWORD}` },
    });
    proxyPort = t.oracle.proxyAddress().port;
    adminPort = t.oracle.adminAddress()!.port;
  });

  afterAll(async () => {
    await t?.close();
    await origin?.close();
    await dir?.remove();
  });

  it('refuses --listen 0.0.0.0 without --allow-remote and proxy credentials, before listening on anything', async () => {
    const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir.path };
    const data = join(dir.path, 'cli-data');
    const bare = await cli(['record', '--listen', '0.0.0.0:0', '--data', data], { env, timeoutMs: 20_000 });
    expect(bare.code, bare.stderr).toBe(1);
    expect(bare.stdout).not.toMatch(/listening/);
    expect(bare.stderr).toMatch(/ORACLE_ERR_INVALID_CONFIG: Refusing to listen on 0\.0\.0\.0.*--allow-remote.*--proxy-auth/);
    const noAuth = await cli(['record', '--listen', '0.0.0.0:0', '--allow-remote', '--data', data], { env, timeoutMs: 20_000 });
    expect(noAuth.code, noAuth.stderr).toBe(1);
    expect(noAuth.stdout).not.toMatch(/listening/);
    expect(noAuth.stderr).toMatch(/--allow-remote .* needs proxy credentials/);
    const weak = await cli(['replay', '--listen', '[::]:0', '--allow-remote', '--proxy-auth', 'u:short', '--netlock', join(dir.path, 'none.json'), '--data', data], { env, timeoutMs: 20_000 });
    expect(weak.code, weak.stderr).toBe(1);
    expect(weak.stderr).toMatch(/at least 16 characters/);
    // Accepted with both (checked without binding: a test never listens off loopback).
    const { validateExposure } = await import('../../src/config/exposure.ts');
    expect(() => validateExposure({ host: '0.0.0.0', port: 8899 }, { allowRemote: true, proxyAuth: `${USER}:${PASSWORD}` })).not.toThrow();
    expect(() => validateExposure({ host: '127.0.0.1', port: 8899 })).not.toThrow();
  }, 60_000);

  it('answers 407 with Proxy-Authenticate without the credentials, for absolute-form requests and CONNECT', async () => {
    const none = await raw(proxyPort, `GET ${origin.url}/hello HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
    expect(none).toMatch(/^HTTP\/1\.1 407 /);
    expect(none).toMatch(/\r\nproxy-authenticate: Basic realm="fetch-oracle"/i);
    expect(none).toMatch(/\r\nx-oracle-error: ORACLE_ERR_UNAUTHORIZED\r\n/i);
    const wrong = await raw(proxyPort, `GET ${origin.url}/hello HTTP/1.1\r\nhost: x\r\nproxy-authorization: Basic ${Buffer.from(`${USER}:nope`).toString('base64')}\r\nconnection: close\r\n\r\n`);
    expect(wrong).toMatch(/^HTTP\/1\.1 407 [\s\S]*does not match/);
    const connect = await raw(proxyPort, `CONNECT 127.0.0.1:443 HTTP/1.1\r\nhost: 127.0.0.1:443\r\n\r\n`);
    expect(connect).toMatch(/^HTTP\/1\.1 407 [\s\S]*proxy-authenticate: Basic/i);
    expect(origin.hits.get('/hello') ?? 0).toBe(0);
  });

  it('serves a request with the credentials, and neither forwards nor records Proxy-Authorization', async () => {
    const ok = await raw(proxyPort, `GET ${origin.url}/hello HTTP/1.1\r\nhost: x\r\nproxy-authorization: ${BASIC}\r\nconnection: close\r\n\r\n`);
    expect(ok).toMatch(/^HTTP\/1\.1 200 [\s\S]*hello\n$/);
    // Through a CONNECT tunnel too (undici's ProxyAgent sends the credentials on CONNECT).
    const agent = new ProxyAgent({ uri: `http://127.0.0.1:${proxyPort}`, token: BASIC });
    try {
      const res = await request(`${origin.url}/hello?via=tunnel`, { dispatcher: agent });
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('hello\n');
    } finally {
      await agent.close();
    }
    for (const r of origin.requests) expect(r.headers['proxy-authorization'], JSON.stringify(r.headers)).toBeUndefined();
    // Nothing the run wrote holds the credentials.
    await t.oracle.close();
    const files: string[] = [];
    const walk = async (d: string): Promise<void> => {
      for (const e of await readdir(d, { withFileTypes: true })) {
        if (e.isDirectory()) await walk(join(d, e.name));
        else files.push(join(d, e.name));
      }
    };
    await walk(dir.path);
    expect(files.some((f) => f.endsWith('run.netlock.json'))).toBe(true);
    const b64 = BASIC.slice('Basic '.length);
    for (const f of files) {
      const text = (await readFile(f)).toString('latin1');
      expect(text.includes(PASSWORD) || text.includes(b64), f).toBe(false);
    }
    t = await startTestOracle({
      mode: 'record',
      dataDir: join(dir.path, 'data'),
      admin: { host: '127.0.0.1', port: 0 },
      exposure: { proxyAuth: `${USER}:${PASSWORD}` },
    });
    proxyPort = t.oracle.proxyAddress().port;
    adminPort = t.oracle.adminAddress()!.port;
  });

  it('refuses its own proxy and admin ports under every alias with 403 ORACLE_ERR_FORBIDDEN, absolute-form and CONNECT', async () => {
    const aliases = ['127.0.0.1', 'localhost', '[::1]', '0.0.0.0', '127.1', 'LOCALHOST.'];
    for (const [port, what] of [[proxyPort, /the proxy itself/], [adminPort, /admin API/]] as const) {
      for (const host of aliases) {
        const abs = await raw(proxyPort, `GET http://${host}:${port}/healthz HTTP/1.1\r\nhost: x\r\nproxy-authorization: ${BASIC}\r\nconnection: close\r\n\r\n`);
        expect(abs, `GET ${host}:${port}`).toMatch(/^HTTP\/1\.1 403 /);
        expect(abs).toMatch(/\r\nx-oracle-error: ORACLE_ERR_FORBIDDEN\r\n/i);
        expect(abs).toMatch(what);
        const tunnel = await raw(proxyPort, `CONNECT ${host}:${port} HTTP/1.1\r\nhost: ${host}:${port}\r\nproxy-authorization: ${BASIC}\r\n\r\n`);
        expect(tunnel, `CONNECT ${host}:${port}`).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n[\s\S]*x-oracle-error: ORACLE_ERR_FORBIDDEN/i);
        expect(tunnel).toMatch(what);
      }
    }
    // The origin on another loopback port is still reachable: only the oracle's own ports are refused.
    const ok = await raw(proxyPort, `GET ${origin.url.replace('127.0.0.1', 'localhost')}/hello HTTP/1.1\r\nhost: x\r\nproxy-authorization: ${BASIC}\r\nconnection: close\r\n\r\n`);
    expect(ok).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('refuses, after DNS, a peer that is one of its own sockets (any name that leads back in)', async () => {
    const { ProxyGate } = await import('../../src/config/exposure.ts');
    const gate = new ProxyGate({ self: () => [{ host: '127.0.0.1', port: 8899, role: 'proxy' }, { host: '0.0.0.0', port: 9000, role: 'admin' }] });
    expect(gate.refusePeer('::ffff:127.0.0.1', 8899)).toMatch(/the proxy itself/);
    expect(gate.refusePeer('127.0.0.1', 9000)).toMatch(/admin API/);
    expect(gate.refusePeer('127.0.0.1', 8080)).toBeUndefined();
    expect(gate.refusePeer('192.0.2.7', 8899)).toBeUndefined();
  });

  it('parses a URL for the self check whenever it could name an own port (leading zeros, default ports, any case)', async () => {
    const { ProxyGate } = await import('../../src/config/exposure.ts');
    const gate = new ProxyGate({ self: () => [{ host: '127.0.0.1', port: 8899, role: 'proxy' }, { host: '127.0.0.1', port: 443, role: 'admin' }] });
    for (const url of ['http://127.1:08899/', 'http://LOCALHOST.:8899/x', 'HTTPS://localhost/', 'https://127.0.0.1/']) {
      expect(gate.mayTargetSelf(url), url).toBe(true);
      const u = new URL(url);
      expect(gate.checkTarget(u.hostname, u.port === '' ? 443 : Number(u.port)), url).toBeDefined();
    }
    // Ports the oracle does not listen on are answered without a parse.
    expect(gate.mayTargetSelf('http://registry.example:8080/pkg.tgz')).toBe(false);
    expect(new ProxyGate({ self: () => [{ host: '127.0.0.1', port: 8899, role: 'proxy' }] }).mayTargetSelf('http://127.0.0.1/')).toBe(false);
  });
});
