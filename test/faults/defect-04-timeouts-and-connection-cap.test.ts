/**
 * Defect 4 (issue 13): the proxy had no header or idle timeout and no connection cap: 1,100 idle connections
 * (open-file limit 1,024) locked every client out for as long as they were held, and a stalled origin held a
 * client 123 s before it got an empty reply. Now: a request head within the header timeout (else 408), idle
 * connections closed, connections beyond the cap refused with 503 ORACLE_ERR_OVERLOADED and a log line, and a
 * stalled origin answered 504 ORACLE_ERR_UPSTREAM_TIMEOUT within the upstream timeout, nothing recorded.
 * Short timeouts are set through the init; every loop is bounded; everything talks to 127.0.0.1 only.
 */
import { createConnection, createServer as createTcpServer } from 'node:net';
import type { AddressInfo, Server as TcpServer, Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.ts';
import { startOrigin, pseudoRandomChunks } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import type { TestOracle } from '../helpers/oracle.ts';
import { tempDir } from '../helpers/run.ts';

const HEADER_TIMEOUT_MS = 400;
const IDLE_TIMEOUT_MS = 500;
const UPSTREAM_TIMEOUT_MS = 600;
const MAX_CONNECTIONS = 8;

/** A raw client connection that collects what it receives and when it closed. */
interface RawClient {
  socket: Socket;
  received(): string;
  closed: Promise<number>;
}

function rawClient(port: number): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = createConnection(port, '127.0.0.1');
    let out = '';
    socket.on('data', (d: Buffer) => (out += d.toString('latin1')));
    socket.on('error', () => {});
    const closed = new Promise<number>((r) => socket.on('close', () => r(Date.now() - started)));
    socket.once('connect', () => resolve({ socket, received: () => out, closed }));
    socket.once('error', reject);
  });
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_r, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

/** An origin on 127.0.0.1 that misbehaves per path: silent, a head and no body, half a head. */
async function startStallingOrigin(): Promise<{ url: string; hits: Map<string, number>; healed: Set<string>; close(): Promise<void> }> {
  const hits = new Map<string, number>();
  const healed = new Set<string>();
  const sockets = new Set<Socket>();
  const server: TcpServer = createTcpServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let head = '';
    s.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const path = /^[A-Z]+ (\S+)/.exec(head)?.[1] ?? '/';
      head = '';
      hits.set(path, (hits.get(path) ?? 0) + 1);
      if (healed.has(path)) {
        s.write('HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nhealed');
        return;
      }
      if (path === '/head-only') s.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n');
      if (path === '/partial-head') s.write('HTTP/1.1 200 OK\r\ncontent-le');
      // '/silent': nothing at all
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    healed,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

describe('defect 4: header, idle and upstream timeouts, and a connection cap', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  let stalling: Awaited<ReturnType<typeof startStallingOrigin>>;
  let t: TestOracle;
  let port: number;
  const log: string[] = [];
  const clients: RawClient[] = [];

  beforeAll(async () => {
    dir = await tempDir('fo-defect4-');
    origin = await startOrigin();
    origin.route('/hello', (_q, r) => void r.end('hello\n'));
    const big = Buffer.concat([...pseudoRandomChunks(48 * 1024 * 1024, 4)]);
    origin.route('/big', (_q, r) => {
      r.writeHead(200, { 'content-length': String(big.byteLength) });
      r.end(big);
    });
    stalling = await startStallingOrigin();
    t = await startTestOracle({
      mode: 'record',
      dataDir: join(dir.path, 'data'),
      limits: { headerTimeoutMs: HEADER_TIMEOUT_MS, idleTimeoutMs: IDLE_TIMEOUT_MS, maxConnections: MAX_CONNECTIONS },
      upstreamTimeoutMs: UPSTREAM_TIMEOUT_MS,
      logger: createLogger('oracle', (level, ns, line) => log.push(`${level} ${ns}: ${line}`)),
    });
    port = t.oracle.proxyAddress().port;
  });

  afterAll(async () => {
    for (const c of clients) c.socket.destroy();
    await t?.close();
    await stalling?.close();
    await origin?.close();
    await dir?.remove();
  });

  it('refuses connections beyond the cap with 503 ORACLE_ERR_OVERLOADED and a log line, and closes silent ones after the header timeout', async () => {
    for (let i = 0; i < MAX_CONNECTIONS; i++) clients.push(await rawClient(port));
    const extra: RawClient[] = [];
    for (let i = 0; i < 4; i++) extra.push(await rawClient(port));
    for (const c of extra) {
      await within(c.closed, 2000, 'a refused connection closing');
      expect(c.received()).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
      expect(c.received()).toMatch(/\r\nx-oracle-error: ORACLE_ERR_OVERLOADED\r\n/);
      expect(c.received()).toMatch(/connection limit \(8 open connections; --max-connections\)/);
    }
    expect(log.some((l) => /warn .*connection limit reached .*refused \d+ connection/.test(l)), log.join('\n')).toBe(true);
    // The silent ones are answered 408 and closed once the header timeout has passed: nobody is locked out.
    for (const c of clients.splice(0)) {
      const after = await within(c.closed, HEADER_TIMEOUT_MS + 2000, 'a silent connection closing');
      expect(after).toBeGreaterThanOrEqual(HEADER_TIMEOUT_MS - 50);
      expect(c.received()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n[\s\S]*--header-timeout/);
    }
    // (The proxy sees each close a moment after the client does: a few tries, 100 ms apart.)
    let ok: Awaited<ReturnType<TestOracle['fetch']>> | undefined;
    for (let i = 0; i < 10 && ok === undefined; i++) {
      ok = await t.fetch(`${origin.url}/hello`).catch(async () => {
        await new Promise((r) => setTimeout(r, 100));
        return undefined;
      });
    }
    expect(ok?.status).toBe(200);
    expect(ok?.body.toString()).toBe('hello\n');
  });

  it('closes a connection whose request head never ends (a dribbling client) after the header timeout', async () => {
    const c = await rawClient(port);
    c.socket.write(`GET ${origin.url}/hello HTTP/1.1\r\nhost: x\r\n`);
    const timer = setInterval(() => c.socket.write('x-dribble: 1\r\n'), 100);
    try {
      await within(c.closed, HEADER_TIMEOUT_MS + 2000, 'a dribbling connection closing');
    } finally {
      clearInterval(timer);
    }
    expect(c.received()).toMatch(/^HTTP\/1\.1 408/);
  });

  it('closes a tunnel that sends nothing after CONNECT, and one that stops mid TLS handshake, after the header timeout', async () => {
    const silent = await rawClient(port);
    silent.socket.write('CONNECT 127.0.0.1:9 HTTP/1.1\r\nhost: 127.0.0.1:9\r\n\r\n');
    await within(silent.closed, HEADER_TIMEOUT_MS + 2000, 'a silent tunnel closing');
    expect(silent.received()).toMatch(/^HTTP\/1\.1 200 Connection Established\r\n/);
    const handshake = await rawClient(port);
    handshake.socket.write('CONNECT 127.0.0.1:9 HTTP/1.1\r\nhost: 127.0.0.1:9\r\n\r\n');
    handshake.socket.write(Buffer.from([0x16, 0x03, 0x01])); // the start of a ClientHello, then nothing
    await within(handshake.closed, HEADER_TIMEOUT_MS + 2000, 'a stalled TLS handshake closing');
  });

  it('closes idle connections: kept alive after an answer, a stalled upload, a client that stops reading', async () => {
    // Kept alive after a complete answer, then nothing.
    const keepAlive = await rawClient(port);
    keepAlive.socket.write(`GET ${origin.url}/hello HTTP/1.1\r\nhost: x\r\n\r\n`);
    await within(keepAlive.closed, IDLE_TIMEOUT_MS + 2500, 'an idle kept-alive connection closing');
    expect(keepAlive.received()).toMatch(/^HTTP\/1\.1 200[\s\S]*hello\n$/);
    // A request body that stops halfway.
    const upload = await rawClient(port);
    upload.socket.write(`POST ${origin.url}/hello HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\npartial`);
    await within(upload.closed, IDLE_TIMEOUT_MS + 2500, 'a stalled upload closing');
    // A client that takes the head of a 48 MiB answer and then reads nothing.
    const reader = await rawClient(port);
    reader.socket.write(`GET ${origin.url}/big HTTP/1.1\r\nhost: x\r\n\r\n`);
    await within(new Promise<void>((r) => reader.socket.once('data', () => r())), 5000, 'the head of /big');
    reader.socket.pause();
    // A paused socket does not see its peer close: look again once the idle timeout has passed.
    await new Promise((r) => setTimeout(r, IDLE_TIMEOUT_MS + 1500));
    let bytes = 0;
    reader.socket.on('data', (d: Buffer) => (bytes += d.byteLength));
    reader.socket.resume();
    await within(reader.closed, 5000, 'a connection that stopped reading closing');
    expect(bytes).toBeLessThan(48 * 1024 * 1024);
  }, 30_000);

  for (const path of ['/silent', '/partial-head', '/head-only']) {
    it(`answers a stalled origin (${path}) 504 ORACLE_ERR_UPSTREAM_TIMEOUT within the upstream timeout, recording nothing`, async () => {
      const started = Date.now();
      const res = await within(t.fetch(`${stalling.url}${path}`), UPSTREAM_TIMEOUT_MS + 3000, `the answer for ${path}`);
      const took = Date.now() - started;
      expect(res.status, res.body.toString()).toBe(504);
      expect(res.headers['x-oracle-error']).toBe('ORACLE_ERR_UPSTREAM_TIMEOUT');
      expect(res.body.toString()).toMatch(/timed out.*nothing recorded/);
      expect(took).toBeGreaterThanOrEqual(UPSTREAM_TIMEOUT_MS - 50);
      // Nothing was recorded: once the origin answers, the next request goes to it and gets its answer.
      stalling.healed.add(path);
      const again = await t.fetch(`${stalling.url}${path}`);
      expect(again.status).toBe(200);
      expect(again.body.toString()).toBe('healed');
      expect(stalling.hits.get(path)).toBe(2);
    });
  }
});
