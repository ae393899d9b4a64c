/**
 * Defect 2 (issue 13): an HTTPS origin that ends a response while the proxy applies backpressure
 * (`Connection: close` with a correct Content-Length, or a body that ends at EOF) killed the record proxy
 * with an uncaught `AssertionError: assert(!this.paused)` from undici's HTTP/1 parser (nodejs/undici#5360,
 * fixed upstream in undici 8, which needs Node 22). The parser pauses whenever the proxy's reading falls
 * behind; when the origin's FIN is read together with the last bytes that paused it, the socket's `end`
 * handler finds it paused. Which read is the last one is a matter of timing: a 64 MiB body read slowly
 * (15 ms per MiB) crashed the unfixed proxy about every other time here, so the test makes six such
 * requests, each a new URL. The proxy must survive every one and record every body whole.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import { createServer as createTcpServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, buildConnector, ProxyAgent, request } from 'undici';
import { guardedConnector } from '../../src/upstream/safe-dispatcher.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pseudoRandomChunks } from '../helpers/origin.ts';
import { startDaemon, tempDir } from '../helpers/run.ts';
import type { Daemon } from '../helpers/run.ts';
import { createTestCa } from '../helpers/test-ca.ts';

const BODY_BYTES = 64 * 1024 * 1024;
const PATHS = ['/length-1', '/eof-1', '/length-2', '/eof-2', '/length-3', '/eof-3'];

describe('defect 2: an HTTPS origin closing while the record proxy applies backpressure', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Server;
  let originUrl: string;
  let daemon: Daemon;
  let agent: ProxyAgent;
  const hits = new Map<string, number>();
  const sockets = new Set<Socket>();
  let body: Buffer;
  let sha256: string;

  beforeAll(async () => {
    dir = await tempDir('fo-defect2-');
    body = Buffer.concat([...pseudoRandomChunks(BODY_BYTES, 2)]);
    sha256 = createHash('sha256').update(body).digest('hex');
    const ca = await createTestCa();
    const caFile = join(dir.path, 'origin-ca.pem');
    await writeFile(caFile, ca.caPem);
    const leaf = await ca.leafFor(['127.0.0.1']);
    origin = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
      const path = req.url ?? '';
      hits.set(path, (hits.get(path) ?? 0) + 1);
      // Connection: close with a correct length, or no length at all (the body ends at EOF).
      const length = path.startsWith('/length') ? { 'content-length': String(body.byteLength) } : {};
      res.writeHead(200, { 'content-type': 'application/octet-stream', connection: 'close', ...length });
      res.end(body);
    });
    origin.on('connection', (s: Socket) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    originUrl = `https://127.0.0.1:${(origin.address() as AddressInfo).port}`;
    const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir.path };
    daemon = await startDaemon(['record', '--listen', '127.0.0.1:0', '--data', join(dir.path, 'data'), '--upstream-ca', caFile], env);
    const oracleCa = await readFile(join(dir.path, 'data', 'ca', 'ca-cert.pem'), 'utf8');
    agent = new ProxyAgent({ uri: daemon.url, requestTls: { ca: oracleCa } });
  }, 120_000);

  afterAll(async () => {
    await agent?.close();
    await daemon?.stop('SIGKILL');
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => (origin === undefined ? resolve() : origin.close(() => resolve())));
    await dir?.remove();
  });

  /** GET through the proxy; `slow`: a 15 ms pause after every MiB, so the proxy has to hold the origin back. */
  async function get(path: string, slow: boolean): Promise<{ status: number; sha256: string; bytes: number }> {
    const res = await request(`${originUrl}${path}`, { dispatcher: agent });
    const hash = createHash('sha256');
    let bytes = 0;
    let sinceSleep = 0;
    for await (const chunk of res.body) {
      const b = chunk as Buffer;
      hash.update(b);
      bytes += b.byteLength;
      if (slow && (sinceSleep += b.byteLength) >= 1024 * 1024) {
        sinceSleep = 0;
        await sleep(15);
      }
    }
    return { status: res.statusCode, sha256: hash.digest('hex'), bytes };
  }

  it('survives six 64 MiB bodies read slowly (Connection: close with Content-Length, and EOF-delimited), recording each whole', async () => {
    for (const path of PATHS) {
      expect(await get(path, true), `${path}\n${daemon.stderr()}`).toEqual({ status: 200, sha256, bytes: BODY_BYTES });
      await sleep(100); // a crash would come from the socket's `end`, just after the body
      expect(daemon.child.exitCode, `${path}\n${daemon.stderr()}`).toBeNull();
    }
    expect(daemon.stderr()).not.toMatch(/AssertionError/);
  }, 180_000);

  it('serves the recorded bodies from the record, without asking the origin again', async () => {
    for (const path of ['/length-1', '/eof-1']) {
      expect(await get(path, false)).toEqual({ status: 200, sha256, bytes: BODY_BYTES });
      expect(hits.get(path)).toBe(1);
    }
    expect(daemon.child.exitCode, daemon.stderr()).toBeNull();
  }, 60_000);

  it('completes a response whose parser is paused when the origin closes (undici#5360 reproduction, deterministic)', async () => {
    // undici's own reproduction: 64 KiB with Connection: close in one write, body not read until after the FIN.
    const payload = Buffer.alloc(64 * 1024, 0x61);
    const server = createTcpServer((sock) => {
      sock.once('data', () => {
        sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${payload.byteLength}\r\nConnection: close\r\n\r\n`);
        sock.end(payload);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const dispatcher = new Agent({ connect: guardedConnector(buildConnector({}), { direct: true }) });
    try {
      const res = await request(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { dispatcher });
      await sleep(300); // the FIN arrives while the parser waits, paused
      expect(Buffer.from(await res.body.arrayBuffer()).equals(payload)).toBe(true);
    } finally {
      await dispatcher.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
