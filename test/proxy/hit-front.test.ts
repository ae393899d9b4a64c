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
        const body = q.url === '/victim' ? victim : small;
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
    for (const path of ['/small', '/other', '/victim', '/missing', '/zipped']) await rec.fetch(`${origin.url}${path}`, { headers: { 'accept-encoding': 'gzip' } });
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
  ])('answers %s again byte for byte as the Node server did the first time', async (_what, request) => {
    const first = await once(request(get)); // its key is not known yet: Node's server answers it
    const before = atOnce();
    const again = await once(request(get));
    expect(atOnce()).toBe(before + 1);
    expect(again).toBe(first);
    expect(again).toMatch(/^HTTP\/1\.1 (200 OK|404 Not Found)\r\n/);
    expect(again).toContain('\r\nConnection: keep-alive\r\nKeep-Alive: timeout=30\r\n\r\n');
  });

  it('leaves a body that must be decoded, a range and a validator to the Node server, answered as before', async () => {
    await once(get('/small'));
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
    await once(get('/small'));
    await once(get('/other'));
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
    const ok = await once(get('/victim'));
    expect(answers(ok, ['GET'])[0]!.body).toBe(victim.toString('latin1'));
    await once(get('/victim')); // now answered at once
    const before = atOnce();
    const flipped = Buffer.from(victim);
    flipped[100] = flipped[100]! ^ 0xff;
    await tamperBlock(data, rawLeafCid(createHash('sha256').update(victim).digest()), flipped);
    for (let i = 0; i < 2; i++) {
      const raw = await once(get('/victim'));
      expect(raw).toMatch(/^HTTP\/1\.1 502 /);
      expect(raw).toContain('x-oracle-error: ORACLE_ERR_BLOCK_CORRUPT');
    }
    expect(atOnce()).toBe(before);
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

  it('answers a repeated HTTPS request inside a TLS tunnel byte for byte as the Node server did', async () => {
    const authority = tlsOrigin.url.slice('https://'.length);
    /** One GET through a fresh CONNECT tunnel, TLS with the oracle's leaf; everything decrypted until close. */
    const throughTunnel = (): Promise<string> =>
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
          tls.end(`GET /secure HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
        });
      });
    const first = await throughTunnel();
    const before = atOnce();
    const again = await throughTunnel();
    expect(atOnce()).toBe(before + 1);
    expect(again).toBe(first);
    expect(answers(again, ['GET'])[0]).toEqual({ status: 200, body: small.toString('latin1') });
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
