import { connect, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAllowed, ParentProxy, parseAllowRule, parseConnectTarget } from '../../src/enclave/parent-proxy.ts';
import { createLogger } from '../../src/log.ts';

/** Sends `head` on a fresh connection to the proxy's unix socket and returns everything it answers until it closes. */
function exchange(path: string, head: string, after?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let text = '';
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (after !== undefined && text.includes('\r\n\r\n') && !text.includes(after)) s.write(after);
      if (after !== undefined && text.includes(`echo:${after}`)) s.end();
    });
    s.on('error', reject);
    s.on('close', () => resolve(text));
    s.write(head);
  });
}

describe('ParentProxy (the parent instance side; a unix socket stands in for the vsock bridge)', () => {
  let dir: string;
  let echo: Server;
  let echoPort: number;
  let proxy: ParentProxy;
  const logged: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fo-parent-'));
    echo = createServer((s: Socket) => s.on('data', (d: Buffer) => s.write(`echo:${d.toString('latin1')}`)));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    echoPort = (echo.address() as { port: number }).port;
    proxy = new ParentProxy({ allow: [parseAllowRule(`127.0.0.1:${echoPort}`), parseAllowRule('*.example.org')], logger: createLogger('oracle', (level, _ns, line) => logged.push(`${level} ${line}`)) });
    await proxy.listen({ path: join(dir, 'parent.sock') });
  });
  afterAll(async () => {
    await proxy.close();
    await proxy.close(); // idempotent
    await new Promise<void>((r) => echo.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });

  it('parses allow rules: HOST means port 443, HOST:PORT, HOST:*, *.DOMAIN, [v6]:PORT', () => {
    const rules = ['registry.npmjs.org', 'deb.debian.org:80', 'files.example:*', '*.example.org', '[::1]:8443'].map(parseAllowRule);
    expect(isAllowed(rules, 'registry.npmjs.org', 443)).toBe(true);
    expect(isAllowed(rules, 'REGISTRY.npmjs.org.', 443)).toBe(true);
    expect(isAllowed(rules, 'registry.npmjs.org', 80)).toBe(false);
    expect(isAllowed(rules, 'deb.debian.org', 80)).toBe(true);
    expect(isAllowed(rules, 'files.example', 1234)).toBe(true);
    expect(isAllowed(rules, 'a.b.example.org', 443)).toBe(true);
    expect(isAllowed(rules, 'example.org', 443)).toBe(false);
    expect(isAllowed(rules, 'evil-example.org', 443)).toBe(false);
    expect(isAllowed(rules, '::1', 8443)).toBe(true);
    expect(() => parseAllowRule('http://x')).toThrow(/--allow expects/);
    expect(() => parseAllowRule('x:70000')).toThrow(/--allow expects/);
    expect(parseConnectTarget('[::1]:443')).toEqual({ host: '::1', port: 443 });
    expect(parseConnectTarget('host')).toBeUndefined();
    expect(parseConnectTarget('host:0')).toBeUndefined();
  });

  it('relays bytes both ways for an allowed target', async () => {
    const text = await exchange(join(dir, 'parent.sock'), `CONNECT 127.0.0.1:${echoPort} HTTP/1.1\r\nHost: 127.0.0.1:${echoPort}\r\n\r\n`, 'ping');
    expect(text).toBe('HTTP/1.1 200 Connection Established\r\n\r\necho:ping');
    expect(proxy.counts.tunnels).toBe(1);
  });

  it('refuses a target outside the allowlist with 403 and a log line, without dialling it', async () => {
    let dialled = 0;
    const other = createServer((s) => {
      dialled++;
      s.destroy();
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const port = (other.address() as { port: number }).port;
    const text = await exchange(join(dir, 'parent.sock'), `CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    await new Promise<void>((r) => other.close(() => r()));
    expect(text).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(text).toContain(`127.0.0.1:${port} is not in the allowlist (--allow)`);
    expect(dialled).toBe(0);
    expect(logged).toContain(`warn refused CONNECT 127.0.0.1:${port}: not in the allowlist`);
  });

  it('answers anything but CONNECT with 405, a malformed target with 400, an unreachable allowed one with 502', async () => {
    const plain = await exchange(join(dir, 'parent.sock'), 'GET http://127.0.0.1/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    expect(plain).toMatch(/^HTTP\/1\.1 405 /);
    const malformed = await exchange(join(dir, 'parent.sock'), 'CONNECT nonsense HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(malformed).toMatch(/^HTTP\/1\.1 400 /);
    // Allowed, but .invalid never resolves (RFC 6761): the dial fails.
    const refusedRule = new ParentProxy({ allow: [parseAllowRule('nothing.invalid')] });
    await refusedRule.listen({ path: join(dir, 'p2.sock') });
    const unreachable = await exchange(join(dir, 'p2.sock'), 'CONNECT nothing.invalid:443 HTTP/1.1\r\nHost: nothing.invalid:443\r\n\r\n');
    await refusedRule.close();
    expect(unreachable).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*cannot reach nothing\.invalid:443/);
  });
});
