/**
 * Issue #15: replay answers plain requests for hits at once, without Node's HTTP server (`hit-front.ts`). What
 * a client receives must not change: the same bytes as Node's server sent for the same request, every body
 * block still verified (a tampered one refused, never sent with a 200), and anything else (ranges, a split
 * head, pipelined requests of both kinds, credentials to check, the proxy closing) served as before.
 */
import { createHash } from 'node:crypto';
import { createConnection } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawLeafCid } from '../../src/protocol/unixfs.ts';
import { tamperBlock } from '../helpers/blocks.ts';
import { pseudoRandomChunks, startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import type { TestOracle } from '../helpers/oracle.ts';
import { rawExchange } from '../helpers/raw-exchange.ts';
import { createTestCa } from '../helpers/test-ca.ts';
import { tempDir } from '../helpers/run.ts';

const small = Buffer.concat([...pseudoRandomChunks(4096, 21)]);
const victim = Buffer.concat([...pseudoRandomChunks(3000, 22)]);
const zipped = gzipSync(Buffer.from('fetch-oracle '.repeat(400)));
/** One block, read through the thread pool (over 64 KiB); and one of two blocks, streamed by Node's server path. */
const medium = Buffer.concat([...pseudoRandomChunks(300 * 1024, 23)]);
const medium2 = Buffer.concat([...pseudoRandomChunks(300 * 1024, 25)]);
const large = Buffer.concat([...pseudoRandomChunks(1024 * 1024 + 5000, 24)]);

/** The same request with an empty body declared: not plain, so Node's server answers it (its key is the same). */
const viaNode = (request: string): string => request.replace(/\r\n\r\n$/, '\r\nContent-Length: 0\r\n\r\n');

/** The status line and body of each answer in `raw` (answers to `methods`, in order). */
function answers(raw: string, methods: readonly string[]): Array<{ status: number; body: string }> {
  const out: Array<{ status: number; body: string }> = [];
  let at = 0;
  for (const method of methods) {
    const end = raw.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const head = raw.slice(at, end);
    const length = method === 'HEAD' ? 0 : Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? '0');
    out.push({ status: Number(head.slice(9, 12)), body: raw.slice(end + 4, end + 4 + length) });
    at = end + 4 + length;
  }
  return out;
}

/** A chunked body's bytes (RFC 9112 §7.1; no trailers). */
function unchunked(body: string): string {
  let out = '';
  for (let at = 0; ; ) {
    const eol = body.indexOf('\r\n', at);
    const size = parseInt(body.slice(at, eol), 16);
    if (!(size > 0)) return out;
    out += body.slice(eol + 2, eol + 2 + size);
    at = eol + 4 + size;
  }
}

describe('answers given at once by the replay front', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  let tlsOrigin: Origin;
  let replay: TestOracle;
  let data: string;
  let netlockPath: string;
  let port: number;
  const get = (path: string, fields = ''): string => `GET ${origin.url}${path} HTTP/1.1\r\nHost: ${origin.url.slice(7)}\r\n${fields}\r\n`;
  /** One request on a fresh connection, half-closed: everything the proxy sends until it closes. */
  const once = (text: string): Promise<string> => rawExchange(port, text, { halfClose: true });
  const atOnce = (): number => replay.oracle.stats.answeredAtOnce;

  beforeAll(async () => {
    dir = await tempDir('fo-hit-front-');
    data = join(dir.path, 'data');
    netlockPath = join(dir.path, 'netlock.json');
    origin = await startOrigin();
    origin.route('*', (q, r) => {
      if (q.url === '/missing') {
        r.writeHead(404, { 'content-type': 'text/plain', 'content-length': '10' });
        r.end('not here!\n');
      } else if (q.url === '/zipped') {
        r.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip', 'content-length': String(zipped.byteLength), etag: '"z1"' });
        r.end(zipped);
      } else {
        const body = q.url === '/victim' ? victim : q.url === '/medium' ? medium : q.url === '/medium2' ? medium2 : q.url === '/large' ? large : small;
        r.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.byteLength), etag: '"s1"' });
        r.end(body);
      }
    });
    const ca = await createTestCa();
    tlsOrigin = await startOrigin(await ca.leafFor(['127.0.0.1']));
    tlsOrigin.route('*', (_q, r) => {
      r.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(small.byteLength) });
      r.end(small);
    });
    const rec = await startTestOracle({ mode: 'record', dataDir: data, netlockPath, upstreamCaPem: [ca.caPem] });
    for (const path of ['/small', '/other', '/victim', '/missing', '/zipped', '/medium', '/medium2', '/large']) await rec.fetch(`${origin.url}${path}`, { headers: { 'accept-encoding': 'gzip' } });
    expect((await rec.fetch(`${tlsOrigin.url}/secure`)).status).toBe(200);
    await rec.close();
    // Replay never asks the origins: answers come from the netlock only.
    await origin.close();
    await tlsOrigin.close();
    replay = await startTestOracle({ mode: 'replay', dataDir: data, netlockPath });
    port = replay.oracle.proxyAddress().port;
  });

  afterAll(async () => {
    await replay?.close();
    await dir?.remove();
  });

  it.each([
    ['a GET', (g: typeof get) => g('/small')],
    ['a HEAD', (g: typeof get) => g('/small').replace(/^GET/, 'HEAD')],
    ['a recorded 404 with its body', (g: typeof get) => g('/missing')],
    ['a gzip body to a client that accepts it', (g: typeof get) => g('/zipped', 'Accept-Encoding: gzip\r\n')],
    ['a one-block body read through the thread pool', (g: typeof get) => g('/medium')],
  ])('answers %s byte for byte as the Node server does, first looked up, then at once', async (_what, request) => {
    const before = atOnce();
    const reference = await once(viaNode(request(get)));
    expect(atOnce()).toBe(before);
    expect(reference).toMatch(/^HTTP\/1\.1 (200 OK|404 Not Found)\r\n/);
    expect(reference).toContain('\r\nConnection: keep-alive\r\nKeep-Alive: timeout=30\r\n\r\n');
    for (let i = 1; i <= 2; i++) {
      expect(await once(request(get))).toBe(reference);
      expect(atOnce()).toBe(before + i);
    }
  });

  it('leaves a miss to the Node server, which explains it, counted once', async () => {
    const before = { atOnce: atOnce(), misses: replay.oracle.stats.misses };
    const raw = await once(get('/never-recorded'));
    expect(raw).toMatch(/^HTTP\/1\.1 504 /);
    expect(raw).toContain('x-fetch-oracle-miss: 1');
    expect(replay.oracle.stats.misses).toBe(before.misses + 1);
    expect(atOnce()).toBe(before.atOnce);
  });

  it('leaves a body of many blocks to the Node server, streamed whole', async () => {
    const before = atOnce();
    for (let i = 0; i < 2; i++) expect(answers(await once(get('/large')), ['GET'])[0]).toEqual({ status: 200, body: large.toString('latin1') });
    expect(atOnce()).toBe(before);
  });

  it('leaves a body that must be decoded, a range and a validator to the Node server, answered as before', async () => {
    const before = atOnce();
    const decoded = await once(get('/zipped'));
    expect(decoded).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(unchunked(decoded.slice(decoded.indexOf('\r\n\r\n') + 4))).toBe('fetch-oracle '.repeat(400));
    const ranged = answers(await once(get('/small', 'Range: bytes=0-9\r\n')), ['GET'])[0]!;
    expect(ranged).toEqual({ status: 206, body: small.subarray(0, 10).toString('latin1') });
    expect(answers(await once(get('/small', 'If-None-Match: "s1"\r\n')), ['GET'])[0]!.status).toBe(304);
    expect(atOnce()).toBe(before);
  });

  it('answers pipelined requests in order, at once until the first one it leaves to the Node server', async () => {
    const before = atOnce();
    const raw = await once(get('/small') + get('/other') + get('/small', 'Range: bytes=5-9\r\n') + get('/small'));
    expect(answers(raw, ['GET', 'GET', 'GET', 'GET'])).toEqual([
      { status: 200, body: small.toString('latin1') },
      { status: 200, body: small.toString('latin1') },
      { status: 206, body: small.subarray(5, 10).toString('latin1') },
      { status: 200, body: small.toString('latin1') },
    ]);
    expect(atOnce()).toBe(before + 2);
  });

  // Large answers are written in parts to a client that reads slowly, from memory reused between answers:
  // it must come back only once the socket has sent all of it, or a later answer would overwrite a queued one.
  it('sends pipelined large answers whole to a client that reads late, though their memory is reused', async () => {
    const before = atOnce();
    // Enough to fill the kernel's buffers on both sides (several MB on loopback), so that writes queue.
    const paths = Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? '/medium' : '/medium2'));
    const text = paths.map((p) => get(p)).join('') + get('/small', 'Connection: close\r\n');
    const raw = await new Promise<string>((resolve, reject) => {
      const s = createConnection(port, '127.0.0.1');
      const parts: Buffer[] = [];
      s.pause();
      s.on('data', (c: Buffer) => parts.push(c));
      s.on('close', () => resolve(Buffer.concat(parts).toString('latin1')));
      s.on('error', reject);
      s.write(text, () => setTimeout(() => s.resume(), 300));
    });
    const got = answers(raw, [...paths.map(() => 'GET'), 'GET']);
    expect(got.map((a) => a.status)).toEqual([...paths.map(() => 200), 200]);
    const sha = (b: string | Buffer): string => createHash('sha256').update(typeof b === 'string' ? Buffer.from(b, 'latin1') : b).digest('hex');
    expect(got.map((a) => sha(a.body))).toEqual([...paths.map((p) => sha(p === '/medium' ? medium : medium2)), sha(small)]);
    expect(atOnce()).toBeGreaterThan(before + 1); // some answered by the front before the queue sent the rest to Node's server
  });

  it('answers a request whose head arrives in pieces, and keeps a connection for requests that follow', async () => {
    const text = get('/small');
    const got = await new Promise<string>((resolve, reject) => {
      const s = createConnection(port, '127.0.0.1');
      let out = '';
      s.on('error', reject);
      s.on('data', (c: Buffer) => {
        out += c.toString('latin1');
        if (answers(out, ['GET', 'GET']).length === 2 && out.endsWith(small.toString('latin1'))) {
          s.destroy();
          resolve(out);
        }
      });
      s.write(text.slice(0, 20));
      setTimeout(() => s.write(text.slice(20)), 50);
      setTimeout(() => s.write(text), 100);
    });
    expect(answers(got, ['GET', 'GET']).map((a) => a.status)).toEqual([200, 200]);
    expect(answers(got, ['GET', 'GET']).every((a) => a.body === small.toString('latin1'))).toBe(true);
  });

  it('refuses a tampered body block, never answering it 200', async () => {
    const before = atOnce();
    const ok = await once(get('/victim'));
    expect(answers(ok, ['GET'])[0]!.body).toBe(victim.toString('latin1'));
    expect(atOnce()).toBe(before + 1);
    const flipped = Buffer.from(victim);
    flipped[100] = flipped[100]! ^ 0xff;
    await tamperBlock(data, rawLeafCid(createHash('sha256').update(victim).digest()), flipped);
    for (let i = 0; i < 2; i++) {
      const raw = await once(get('/victim'));
      expect(raw).toMatch(/^HTTP\/1\.1 502 /);
      expect(raw).toContain('x-oracle-error: ORACLE_ERR_BLOCK_CORRUPT');
    }
    expect(atOnce()).toBe(before + 1);
  });

  it('hands an open connection to the Node server when the proxy closes, which then closes it', async () => {
    const other = await startTestOracle({ mode: 'replay', dataDir: data, netlockPath });
    const s = createConnection(other.oracle.proxyAddress().port, '127.0.0.1');
    const closed = new Promise<string>((resolve) => {
      let out = '';
      s.on('data', (c: Buffer) => (out += c.toString('latin1')));
      s.on('close', () => resolve(out));
    });
    s.on('error', () => {});
    s.write(get('/small'));
    s.write(get('/small'));
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (other.oracle.stats.requests >= 2) {
          clearInterval(poll);
          resolve();
        }
      }, 10);
    });
    await other.close(); // would wait for its drain timeout (30 s) if the connection counted as busy
    const got = answers(await closed, ['GET', 'GET']);
    expect(got.map((a) => a.status)).toEqual([200, 200]);
  });

  it('answers an HTTPS request inside a TLS tunnel byte for byte as the Node server does', async () => {
    const authority = tlsOrigin.url.slice('https://'.length);
    /** One GET through a fresh CONNECT tunnel, TLS with the oracle's leaf; everything decrypted until close. */
    const throughTunnel = (fields = '', path = '/secure'): Promise<string> =>
      new Promise((resolve, reject) => {
        const raw = createConnection(port, '127.0.0.1');
        raw.once('error', reject);
        raw.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
        raw.once('data', (established: Buffer) => {
          expect(established.toString('latin1')).toMatch(/^HTTP\/1\.1 200 /);
          const tls = tlsConnect({ socket: raw, ca: replay.caPem, servername: '127.0.0.1' });
          let out = '';
          tls.on('data', (c: Buffer) => (out += c.toString('latin1')));
          tls.on('close', () => resolve(out));
          tls.on('error', reject);
          tls.end(`GET ${path} HTTP/1.1\r\nHost: ${authority}\r\n${fields}\r\n`);
        });
      });
    const before = atOnce();
    const reference = await throughTunnel('Content-Length: 0\r\n');
    expect(atOnce()).toBe(before);
    expect(answers(reference, ['GET'])[0]).toEqual({ status: 200, body: small.toString('latin1') });
    for (let i = 1; i <= 2; i++) {
      expect(await throughTunnel()).toBe(reference);
      expect(atOnce()).toBe(before + i);
    }
    // A miss: looked up first (the tunnel's socket paused meanwhile), then left to the Node server, which explains it.
    const miss = await throughTunnel('', '/never-recorded');
    expect(miss).toMatch(/^HTTP\/1\.1 504 /);
    expect(miss).toContain('x-fetch-oracle-miss: 1');
    expect(atOnce()).toBe(before + 2);
  });

  it('logs the requests it answers for the live page and the metrics, as the Node server path does', async () => {
    const watched = await startTestOracle({ mode: 'replay', dataDir: data, netlockPath, admin: { host: '127.0.0.1', port: 0 } });
    try {
      const watchedPort = watched.oracle.proxyAddress().port;
      for (let i = 0; i < 2; i++) await rawExchange(watchedPort, get('/small'), { halfClose: true });
      await rawExchange(watchedPort, viaNode(get('/small')), { halfClose: true });
      expect(watched.oracle.stats.answeredAtOnce).toBe(2);
      const admin = watched.oracle.adminAddress()!;
      const report = (await (await fetch(`http://127.0.0.1:${admin.port}/report.json`)).json()) as { requests: { counts: { hit: number }; events: Array<{ m: string; u: string; s: number; z: number; c: string; o: string }> } };
      expect(report.requests.counts.hit).toBe(3);
      expect(report.requests.events.map(({ m, u, s, z, c, o }) => ({ m, u, s, z, c, o }))).toEqual(
        Array.from({ length: 3 }, () => ({ m: 'GET', u: `${origin.url}/small`, s: 200, z: 4096, c: 'application/octet-stream', o: 'hit' })),
      );
      const metrics = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
      expect(metrics).toMatch(/outcome="hit"\} 3\b/);
    } finally {
      await watched.close();
    }
  });

  it('answers 408 and closes a connection that sends no request within the header timeout, as the Node server does', async () => {
    const strict = await startTestOracle({ mode: 'replay', dataDir: data, netlockPath, limits: { headerTimeoutMs: 300, idleTimeoutMs: 60_000 } });
    try {
      const strictPort = strict.oracle.proxyAddress().port;
      const silent = await rawExchange(strictPort, '', { timeoutMs: 20_000 });
      expect(silent).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n[\s\S]*--header-timeout/);
      // A connection that was answered is kept alive past the header timeout (its head came).
      const kept = await new Promise<string>((resolve) => {
        const s = createConnection(strictPort, '127.0.0.1');
        let out = '';
        s.on('data', (c: Buffer) => (out += c.toString('latin1')));
        s.write(get('/small'));
        setTimeout(() => {
          s.write(get('/small'));
          setTimeout(() => {
            s.destroy();
            resolve(out);
          }, 200);
        }, 600);
      });
      expect(answers(kept, ['GET', 'GET']).map((a) => a.status)).toEqual([200, 200]);
    } finally {
      await strict.close();
    }
  });

  it('leaves every request to the Node server when the proxy needs credentials', async () => {
    const guarded = await startTestOracle({ mode: 'replay', dataDir: data, netlockPath, exposure: { proxyAuth: 'user:a-long-enough-secret' } });
    try {
      const guardedPort = guarded.oracle.proxyAddress().port;
      const auth = `Proxy-Authorization: Basic ${Buffer.from('user:a-long-enough-secret').toString('base64')}\r\n`;
      for (let i = 0; i < 2; i++) {
        expect(await rawExchange(guardedPort, get('/small'), { halfClose: true })).toMatch(/^HTTP\/1\.1 407 /);
        expect(answers(await rawExchange(guardedPort, get('/small', auth), { halfClose: true }), ['GET'])[0]).toEqual({ status: 200, body: small.toString('latin1') });
      }
      expect(guarded.oracle.stats.answeredAtOnce).toBe(0);
    } finally {
      await guarded.close();
    }
  });
});
