import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startTestOracle } from '../helpers/oracle.ts';
import type { TestOracle } from '../helpers/oracle.ts';
import { pseudoRandomChunks, startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { expectReplayMiss } from '../helpers/replay-miss.ts';
import { netlockLines, tempDir } from '../helpers/run.ts';
import { createTestCa } from '../helpers/test-ca.ts';

let dir: Awaited<ReturnType<typeof tempDir>>;
let origin: Origin;
let tlsOrigin: Origin;
let oracle: TestOracle;
let netlockPath: string;

beforeEach(async () => {
  dir = await tempDir();
  const ca = await createTestCa();
  origin = await startOrigin();
  tlsOrigin = await startOrigin(await ca.leafFor(['127.0.0.1', 'localhost']));
  netlockPath = join(dir.path, 'build.netlock.json');
  oracle = await startTestOracle({ mode: 'record', dataDir: join(dir.path, 'data'), netlockPath, upstreamCaPem: [ca.caPem] });
  for (const o of [origin, tlsOrigin]) {
    o.route('/hello', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', etag: '"v1"', 'set-cookie': 'sid=secret', date: 'Mon, 01 Jan 2024 00:00:00 GMT' });
      res.end('hello world\n');
    });
  }
});

afterEach(async () => {
  await oracle.close();
  await origin.close();
  await tlsOrigin.close();
  await dir.remove();
});

describe('RecordMode', () => {
  it('fetches a new request once and answers repeats from the record, over HTTP and HTTPS (curl)', async () => {
    for (const o of [origin, tlsOrigin]) {
      const first = await oracle.curl(['-i', `${o.url}/hello`]);
      expect(first.code, first.stderr).toBe(0);
      expect(first.stdout).toMatch(/^HTTP\/1.1 200/);
      expect(first.stdout).toContain('hello world\n');
      const second = await oracle.curl(['-i', `${o.url}/hello`]);
      expect(second.stdout.endsWith('hello world\n')).toBe(true);
      expect(o.hits.get('/hello')).toBe(1);
      // Recorded headers, minus volatile ones; Date is the fetch time, the same on every answer.
      expect(second.stdout).toContain('etag: "v1"');
      expect(second.stdout).not.toContain('sid=secret');
      const date = (s: string): string | undefined => /^date: (.*)$/im.exec(s)?.[1];
      expect(date(second.stdout)).toBe(date(first.stdout));
    }
    expect(oracle.oracle.stats.upstreamFetches).toBe(2);
    expect(oracle.oracle.stats.hits).toBe(2);
  });

  it('answers curl ranges, multipart ranges, HEAD and conditional requests from the one recorded body', async () => {
    // The first request is ranged: the whole body is recorded once, the client gets its range.
    const first = await oracle.curl(['-s', '-r', '0-4', '-w', ' %{http_code}', `${origin.url}/hello`]);
    expect(first.stdout).toBe('hello 206');
    expect(origin.requests.at(-1)?.headers.range).toBeUndefined();
    const multi = await oracle.curl(['-s', '-i', '-r', '0-1,6-10', `${origin.url}/hello`]);
    expect(multi.stdout).toMatch(/^HTTP\/1.1 206/);
    expect(multi.stdout).toMatch(/content-type: multipart\/byteranges; boundary=fetch-oracle-/);
    expect(multi.stdout).toContain('content-range: bytes 6-10/12\r\n\r\nworld');
    const head = await oracle.curl(['-s', '-I', `${origin.url}/hello`]);
    expect(head.stdout).toMatch(/content-length: 12/);
    const conditional = await oracle.curl(['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'If-None-Match: "v1"', `${origin.url}/hello`]);
    expect(conditional.stdout).toBe('304');
    const unsat = await oracle.curl(['-s', '-o', '/dev/null', '-w', '%{http_code}', '-r', '100-200', `${origin.url}/hello`]);
    expect(unsat.stdout).toBe('416');
    expect(origin.hits.get('/hello')).toBe(1); // HEAD, ranges and conditionals all came from the one GET
  });

  it('keeps a gzip body as the origin sent it and decodes it for a client that does not accept gzip', async () => {
    const { gzipSync } = await import('node:zlib');
    const text = 'compressible '.repeat(1000);
    origin.route('/gz', (req, res) => {
      const gzip = (req.headers['accept-encoding'] ?? '').includes('gzip');
      res.writeHead(200, { 'content-type': 'text/plain', ...(gzip ? { 'content-encoding': 'gzip', vary: 'accept-encoding' } : {}) });
      res.end(gzip ? gzipSync(text) : text);
    });
    const compressed = await oracle.curl(['-s', '--compressed', '-D', '-', '-o', join(dir.path, 'gz.out'), `${origin.url}/gz`]);
    expect(compressed.stdout).toMatch(/content-encoding: gzip/);
    expect(await readFile(join(dir.path, 'gz.out'), 'utf8')).toBe(text);
    const plain = await oracle.curl(['-s', '-D', '-', `${origin.url}/gz`]);
    expect(plain.stdout).not.toMatch(/content-encoding/);
    expect(plain.stdout.endsWith(text)).toBe(true);
    const raw = await oracle.fetch(`${origin.url}/gz`, { headers: { 'accept-encoding': 'gzip' } });
    expect(raw.headers['content-encoding']).toBe('gzip');
    expect(gzipSync(text).equals(raw.body)).toBe(true); // byte-exact as the origin sent it
    expect(origin.hits.get('/gz')).toBe(1);
  });

  it('coalesces concurrent identical misses into one upstream fetch', async () => {
    origin.route('/slow', async (_req, res) => {
      await new Promise((r) => setTimeout(r, 300));
      res.end('slow body');
    });
    const answers = await Promise.all(Array.from({ length: 8 }, () => oracle.fetch(`${origin.url}/slow`)));
    expect(answers.map((a) => a.body.toString())).toEqual(Array(8).fill('slow body'));
    expect(origin.hits.get('/slow')).toBe(1);
    expect(oracle.oracle.stats.coalesced).toBe(7);
  });

  it('streams a large body to the client while recording it, byte for byte', async () => {
    const size = 24 * 1024 * 1024 + 17;
    const expected = createHash('sha256');
    for (const c of pseudoRandomChunks(size, 7)) expected.update(c);
    origin.route('/big.bin', async (_req, res) => {
      res.writeHead(200, { 'content-length': String(size), 'content-type': 'application/octet-stream' });
      for (const c of pseudoRandomChunks(size, 7)) if (!res.write(c)) await new Promise((r) => res.once('drain', r));
      res.end();
    });
    const digest = expected.digest('hex');
    for (let i = 0; i < 2; i++) {
      const out = join(dir.path, `big-${i}.bin`);
      const r = await oracle.curl(['-o', out, `${origin.url}/big.bin`]);
      expect(r.code, r.stderr).toBe(0);
      expect(createHash('sha256').update(await readFile(out)).digest('hex')).toBe(digest);
    }
    const res = await oracle.fetch(`${origin.url}/big.bin`);
    expect(res.body.byteLength).toBe(size);
    expect(createHash('sha256').update(res.body).digest('hex')).toBe(digest);
    expect(origin.hits.get('/big.bin')).toBe(1);
  });

  it('records nothing when the upstream sends fewer bytes than its Content-Length', async () => {
    origin.route('/short', (_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('only part');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    // Broken off before its first block was stored: the head had not gone out, so the client gets a 502.
    const r = await oracle.curl(['-i', `${origin.url}/short`]);
    expect(r.stdout).toMatch(/^HTTP\/1.1 502[\s\S]*x-oracle-error: ORACLE_ERR_TRUNCATED_BODY[\s\S]*nothing recorded/);
    const again = await oracle.curl(['-i', `${origin.url}/short`]);
    expect(again.stdout).toMatch(/^HTTP\/1.1 502/);
    expect(origin.hits.get('/short')).toBe(2); // never answered from a partial record
    expect(oracle.oracle.stats.bytesRecorded).toBe(0);
  });

  it('records nothing when the upstream resets mid-body without a length', async () => {
    origin.route('/reset', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(Buffer.alloc(64 * 1024, 1));
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const r = await oracle.curl(['-i', `${origin.url}/reset`]);
    expect(r.stdout).toMatch(/^HTTP\/1.1 502[\s\S]*x-oracle-error: ORACLE_ERR_TRUNCATED_BODY/);
    await oracle.curl(['-o', '/dev/null', `${origin.url}/reset`]);
    expect(origin.hits.get('/reset')).toBe(2);
  });

  it('records nothing when the only client hangs up mid-body, stops the upstream fetch, and fetches again for the next one', async () => {
    // How far each upstream answer got when it ended: 64 pieces when the oracle read it whole.
    const piecesSent: number[] = [];
    origin.route('/slow-big', async (_req, res) => {
      res.writeHead(200, { 'content-length': String(4 * 1024 * 1024) });
      let i = 0;
      res.on('close', () => piecesSent.push(i));
      for (; i < 64; i++) {
        if (res.destroyed) return;
        res.write(Buffer.alloc(64 * 1024, i));
        await new Promise((r) => setTimeout(r, 50));
      }
      res.end();
    });
    // The head goes out once the first MiB is stored (about 0.8 s here); the client gives up mid-body.
    const gaveUp = await oracle.curl(['-o', '/dev/null', '--max-time', '2', `${origin.url}/slow-big`]);
    expect(gaveUp.code).toBe(28); // curl: operation timed out
    await vi.waitFor(() => expect(piecesSent).toHaveLength(1), { timeout: 10_000 });
    expect(piecesSent[0]).toBeLessThan(64); // the oracle hung up on the origin too
    expect(oracle.oracle.stats.bytesRecorded).toBe(0);
    const full = await oracle.curl(['-o', '/dev/null', '-w', '%{size_download}', `${origin.url}/slow-big`]);
    expect(full.stdout).toBe(String(4 * 1024 * 1024));
    expect(origin.hits.get('/slow-big')).toBe(2);
    expect(oracle.oracle.stats.bytesRecorded).toBe(4 * 1024 * 1024);
  });

  it('answers an unreachable origin with a 502 naming the fault and keeps serving', async () => {
    const r = await oracle.curl(['-i', 'http://127.0.0.1:1/nothing-here']);
    expect(r.stdout).toMatch(/^HTTP\/1.1 502/);
    expect(r.stdout).toMatch(/x-oracle-error: ORACLE_ERR_UPSTREAM/);
    expect(r.stdout).toMatch(/ECONNREFUSED/);
    const ok = await oracle.curl([`${origin.url}/hello`]);
    expect(ok.stdout).toBe('hello world\n');
  });

  it('records redirects and 404s as the build saw them', async () => {
    origin.route('/old', (_req, res) => {
      res.writeHead(301, { location: '/hello' });
      res.end();
    });
    const r = await oracle.curl(['-L', `${origin.url}/old`]);
    expect(r.stdout).toBe('hello world\n');
    const missing = await oracle.curl(['-o', '/dev/null', '-w', '%{http_code}', `${origin.url}/missing`]);
    expect(missing.stdout).toBe('404');
    await oracle.curl(['-L', `${origin.url}/old`]);
    await oracle.curl([`${origin.url}/missing`]);
    expect(origin.hits.get('/old')).toBe(1);
    expect(origin.hits.get('/missing')).toBe(1);
  });

  it('keys POST requests by body digest', async () => {
    origin.route('/api', async (req, res) => {
      let body = '';
      for await (const c of req) body += String(c);
      res.end(`echo:${body}`);
    });
    const a = await oracle.fetch(`${origin.url}/api`, { method: 'POST', body: 'one' });
    const b = await oracle.fetch(`${origin.url}/api`, { method: 'POST', body: 'two' });
    const a2 = await oracle.fetch(`${origin.url}/api`, { method: 'POST', body: 'one' });
    expect([a.body.toString(), b.body.toString(), a2.body.toString()]).toEqual(['echo:one', 'echo:two', 'echo:one']);
    expect(origin.hits.get('/api')).toBe(2);
  });

  it('sends a GET\'s body upstream when it has one (Content-Length or chunked); one without reaches the origin empty', async () => {
    const seen: string[] = [];
    origin.route('/search', async (req, res) => {
      let body = '';
      for await (const c of req) body += String(c);
      seen.push(`${req.headers['content-length'] ?? '-'} ${req.headers['transfer-encoding'] ?? '-'} ${body}`);
      res.end(`echo:${body}`);
    });
    const sized = await oracle.curl(['-s', '-X', 'GET', '--data-binary', 'q=one', `${origin.url}/search?a`]);
    const chunked = await oracle.curl(['-s', '-X', 'GET', '-H', 'Transfer-Encoding: chunked', '--data-binary', 'q=two', `${origin.url}/search?b`]);
    const none = await oracle.curl(['-s', `${origin.url}/search?c`]);
    expect([sized.stdout, chunked.stdout, none.stdout]).toEqual(['echo:q=one', 'echo:q=two', 'echo:']);
    // The fetcher sends a known length: the chunked body arrives whole, with its length.
    expect(seen).toEqual(['5 - q=one', '5 - q=two', '- - ']);
  });

  it('streams a large request body (spooled, not held in memory) upstream and keys it by digest', async () => {
    const { createHash } = await import('node:crypto');
    origin.route('/upload', async (req, res) => {
      const h = createHash('sha256');
      let n = 0;
      for await (const c of req) {
        h.update(c as Buffer);
        n += (c as Buffer).byteLength;
      }
      res.end(`${n} ${h.digest('hex')}`);
    });
    const file = join(dir.path, 'upload.bin');
    const { writeFile } = await import('node:fs/promises');
    const body = Buffer.alloc(20 * 1024 * 1024 + 5, 0x61);
    await writeFile(file, body);
    const want = `${body.byteLength} ${createHash('sha256').update(body).digest('hex')}`;
    for (let i = 0; i < 2; i++) {
      const r = await oracle.curl(['-s', '-X', 'PUT', '--data-binary', `@${file}`, `${origin.url}/upload`]);
      expect(r.stdout).toBe(want);
    }
    expect(origin.hits.get('/upload')).toBe(1);
    const { readdir } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    expect((await readdir(tmpdir())).filter((f) => f.startsWith(`fetch-oracle-body-${process.pid}-`))).toEqual([]);
  });

  it('never stores credentials: Authorization is forwarded but absent from records and the index', async () => {
    origin.route('/private', (req, res) => {
      res.end(`auth=${req.headers.authorization ?? ''}`);
    });
    const r = await oracle.fetch(`${origin.url}/private`, { headers: { authorization: 'Bearer topsecret', cookie: 'session=alsosecret' } });
    expect(r.body.toString()).toBe('auth=Bearer topsecret');
    const file = await oracle.oracle.close();
    expect(file?.count).toBe(1);
    const text = await readFile(netlockPath, 'utf8');
    const index = await readFile(join(dir.path, 'data', 'records.jsonl'), 'utf8');
    for (const t of [text, index]) {
      expect(t).not.toContain('topsecret');
      expect(t).not.toContain('alsosecret');
    }
  });

  it('keys and records presigned URLs without their signatures, following a presigned redirect', async () => {
    origin.route('/obj', (req, res) => {
      res.end(`object; signed=${String(new URL(req.url!, 'http://x').searchParams.has('X-Amz-Signature'))}`);
    });
    origin.route('/download', (_req, res) => {
      res.writeHead(302, { location: `/obj?versionId=3&X-Amz-Date=${Date.now()}&X-Amz-Signature=${Math.random().toString(16).slice(2)}` });
      res.end();
    });
    const a = await oracle.curl(['-sL', `${origin.url}/download`]);
    const b = await oracle.curl(['-sL', `${origin.url}/download`]);
    expect(a.stdout).toBe('object; signed=true'); // the origin saw the signature on the one real fetch
    expect(b.stdout).toBe(a.stdout);
    const again = await oracle.fetch(`${origin.url}/obj?versionId=3&X-Amz-Signature=other&X-Amz-Date=1`);
    expect(again.body.toString()).toBe(a.stdout);
    expect(origin.hits.get('/download')).toBe(1);
    expect([...origin.hits.keys()].filter((k) => k.startsWith('/obj'))).toHaveLength(1);
    const file = await oracle.oracle.close();
    const text = await readFile(netlockPath, 'utf8');
    expect(text).not.toMatch(/X-Amz-Signature/i);
    expect(file!.count).toBeGreaterThan(0);
    expect((await netlockLines(netlockPath)).map((e) => e.url)).toContain(`${origin.url}/obj?versionId=3`);
  });

  it('rejects a non-absolute request URI with a clear 400', async () => {
    const r = await oracle.curl(['-i', '--request-target', '/relative', `${origin.url}/x`]);
    expect(r.stdout).toMatch(/^HTTP\/1.1 400/);
    expect(r.stdout).toContain('expected an absolute URI');
  });
});

describe('RecordMode failures and mutation', () => {
  let dir2: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => {
    dir2 = await tempDir();
  });
  afterEach(async () => dir2.remove());

  it('records a connection failure as the build saw it, retries it while recording, and keeps a good answer', async () => {
    const data = join(dir2.path, 'data');
    const o = await startOrigin();
    const url = `${o.url}/flaky`;
    o.route('/flaky', (_q, r) => {
      r.end('now it works\n');
    });
    await o.close(); // the port refuses connections now
    const rec = await startTestOracle({ mode: 'record', dataDir: data, netlockPath: join(dir2.path, 'n1.json') });
    const failed = await rec.curl(['-s', '-i', url]);
    expect(failed.stdout).toMatch(/^HTTP\/1.1 502/);
    expect(failed.stdout).toMatch(/x-fetch-oracle-upstream-failure: ECONNREFUSED/);
    const n1 = await rec.oracle.close();
    expect(n1?.count).toBe(1);
    expect((await netlockLines(join(dir2.path, 'n1.json'))).map((e) => e.status)).toEqual([502]);
    // Replay gives the same failure offline.
    const rep = await startTestOracle({ mode: 'replay', dataDir: data, netlockPath: join(dir2.path, 'n1.json') });
    const replayed = await rep.curl(['-s', '-i', url]);
    expect(replayed.stdout.replace(/\r/g, '')).toBe(failed.stdout.replace(/\r/g, ''));
    await rep.close();
    await rec.close();
  });

  it('records a TLS failure (untrusted origin certificate) as a 502 naming the certificate error', async () => {
    const ca = await createTestCa(); // a CA the oracle does not trust
    const o = await startOrigin(await ca.leafFor(['127.0.0.1']));
    o.route('/x', (_q, r) => {
      r.end('secret');
    });
    const rec = await startTestOracle({ mode: 'record', dataDir: join(dir2.path, 'data') });
    const r = await rec.curl(['-s', '-i', `${o.url}/x`]);
    expect(r.stdout).toMatch(/\r\n\r\nHTTP\/1.1 502/);
    expect(r.stdout).toMatch(/x-fetch-oracle-upstream-failure: (SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|DEPTH_ZERO_SELF_SIGNED_CERT)/);
    expect(r.stdout).not.toContain('secret');
    expect(o.hits.get('/x')).toBeUndefined(); // the TLS handshake failed before any request
    await rec.close();
    await o.close();
  });

  it('records a redirect loop hop by hop as the client followed it, and replays the same bounded loop', async () => {
    const o = await startOrigin();
    o.route('/loop-a', (_q, r) => {
      r.writeHead(302, { location: '/loop-b' });
      r.end();
    });
    o.route('/loop-b', (_q, r) => {
      r.writeHead(302, { location: '/loop-a' });
      r.end();
    });
    const netlock = join(dir2.path, 'loop.json');
    const rec = await startTestOracle({ mode: 'record', dataDir: join(dir2.path, 'data'), netlockPath: netlock });
    const first = await rec.curl(['-s', '-L', '--max-redirs', '5', '-o', '/dev/null', '-w', '%{http_code} %{num_redirects}', `${o.url}/loop-a`]);
    expect(first.code).toBe(47); // curl: too many redirects
    expect(first.stdout).toBe('302 5');
    expect(o.hits.get('/loop-a')).toBe(1);
    expect(o.hits.get('/loop-b')).toBe(1);
    await rec.close();
    const rep = await startTestOracle({ mode: 'replay', dataDir: join(dir2.path, 'data'), netlockPath: netlock });
    const again = await rep.curl(['-s', '-L', '--max-redirs', '5', '-o', '/dev/null', '-w', '%{http_code} %{num_redirects}', `${o.url}/loop-a`]);
    expect(again.code).toBe(47);
    expect(again.stdout).toBe(first.stdout);
    await rep.close();
    await o.close();
  });

  it('record --refresh keeps a changed answer as a new version, reports old and new CIDs, and names one version', async () => {
    const data = join(dir2.path, 'data');
    const o = await startOrigin();
    let version = 1;
    o.route('/latest.json', (_q, r) => {
      r.end(`{"version":${version}}`);
    });
    o.route('/stable', (_q, r) => {
      r.end('same');
    });
    const first = await startTestOracle({ mode: 'record', dataDir: data, netlockPath: join(dir2.path, 'a.json') });
    await first.fetch(`${o.url}/latest.json`);
    await first.fetch(`${o.url}/stable`);
    const a = await first.oracle.close();
    await first.close();
    const aLines = await netlockLines(join(dir2.path, 'a.json'));
    expect(a?.count).toBe(aLines.length);
    version = 2;
    const second = await startTestOracle({ mode: 'record', dataDir: data, netlockPath: join(dir2.path, 'b.json'), refresh: true });
    expect((await second.fetch(`${o.url}/latest.json`)).body.toString()).toBe('{"version":2}');
    expect((await second.fetch(`${o.url}/latest.json`)).body.toString()).toBe('{"version":2}'); // refreshed once per run
    await second.fetch(`${o.url}/stable`);
    expect(second.oracle.mutations).toHaveLength(1);
    const m = second.oracle.mutations[0]!;
    expect(m.url).toBe(`${o.url}/latest.json`);
    expect(m.oldBody).toBe(aLines.find((e) => e.url.endsWith('/latest.json'))!.body);
    expect(m.newBody).not.toBe(m.oldBody);
    const b = await second.oracle.close();
    await second.close();
    const bLines = await netlockLines(join(dir2.path, 'b.json'));
    expect(b?.count).toBe(bLines.length);
    expect(o.hits.get('/latest.json')).toBe(2);
    expect(bLines.filter((e) => e.url.endsWith('/latest.json'))).toHaveLength(1);
    expect(bLines.find((e) => e.url.endsWith('/latest.json'))!.body).toBe(m.newBody);
    // The unchanged answer keeps its record: the netlock does not churn.
    expect(bLines.find((e) => e.url.endsWith('/stable'))!.record).toBe(aLines.find((e) => e.url.endsWith('/stable'))!.record);
    // Both versions stay replayable from their own netlocks.
    for (const [file, want] of [['a.json', '{"version":1}'], ['b.json', '{"version":2}']] as const) {
      const rep = await startTestOracle({ mode: 'replay', dataDir: data, netlockPath: join(dir2.path, file) });
      expect((await rep.fetch(`${o.url}/latest.json`)).body.toString()).toBe(want);
      await rep.close();
    }
    await o.close();
  });
});

describe('per-host variant headers', () => {
  it('keys a host by an extra request header, stores the rule in the netlock, and replays by it', async () => {
    const d = await tempDir();
    const o = await startOrigin();
    o.route('/doc', (req, res) => {
      res.end(`api v${String(req.headers['x-api-version'] ?? 'none')}`);
    });
    const netlock = join(d.path, 'v.json');
    const rec = await startTestOracle({ mode: 'record', dataDir: join(d.path, 'data'), netlockPath: netlock, variantRules: { '127.0.0.1': ['X-Api-Version'] } });
    for (const v of ['1', '2', '1']) expect((await rec.fetch(`${o.url}/doc`, { headers: { 'x-api-version': v } })).body.toString()).toBe(`api v${v}`);
    const file = await rec.oracle.close();
    await rec.close();
    expect(o.hits.get('/doc')).toBe(2);
    expect(file?.variantRules).toEqual({ '127.0.0.1': ['x-api-version'] });
    const rep = await startTestOracle({ mode: 'replay', dataDir: join(d.path, 'data'), netlockPath: netlock });
    expect((await rep.fetch(`${o.url}/doc`, { headers: { 'x-api-version': '2' } })).body.toString()).toBe('api v2');
    const miss = await rep.fetch(`${o.url}/doc`, { headers: { 'x-api-version': '3' } });
    expect(miss.status).toBe(504);
    expectReplayMiss({ ...miss, body: miss.body.toString() }, 'GET', `${o.url}/doc`);
    expect(miss.body.toString()).toMatch(/differs in: header x-api-version/);
    await rep.close();
    await o.close();
    await d.remove();
  });
});
