import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLines } from '../../src/records/record-log.ts';
import { tamperBlock } from '../helpers/blocks.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { tempDir } from '../helpers/run.ts';
import { createTestCa } from '../helpers/test-ca.ts';
import { lockfileCli, seedCli } from './seed-helpers.ts';
import type { NetlockJson } from './seed-helpers.ts';

/**
 * `fetch-oracle seed` against a real HTTPS origin (test CA): what it records, that replay serves it, and
 * every way an input can be bad. The real package managers replaying seeded netlocks are in clients.test.ts.
 */

const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');
const sha512b64 = (b: Uint8Array | string): string => createHash('sha512').update(b).digest('base64');

describe('fetch-oracle seed', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  let caFile: string;
  let n = 0;
  /** A fresh work directory and data directory per test. */
  const fresh = (): { work: string; data: string; netlock: string } => {
    n++;
    return { work: join(dir.path, `t${n}`), data: join(dir.path, `t${n}`, 'data'), netlock: join(dir.path, `t${n}`, 'seed.netlock.json') };
  };
  const file = async (work: string, name: string, text: string): Promise<string> => {
    const { mkdir } = await import('node:fs/promises');
    await mkdir(work, { recursive: true });
    const p = join(work, name);
    await writeFile(p, text);
    return p;
  };
  const serve = (path: string, body: string, headers: Record<string, string> = {}): void =>
    origin.route(path, (_q, r) => {
      r.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(Buffer.byteLength(body)), ...headers });
      r.end(body);
    });
  const hits = (path: string): number => origin.hits.get(path) ?? 0;
  const recordLines = async (data: string): Promise<Array<{ key: string }>> => (existsSync(join(data, 'records.jsonl')) ? parseLines(await readFile(join(data, 'records.jsonl'), 'utf8')).entries : []);

  beforeAll(async () => {
    dir = await tempDir('fo-seed-');
    const ca = await createTestCa();
    caFile = join(dir.path, 'origin-ca.pem');
    await writeFile(caFile, ca.caPem);
    origin = await startOrigin(await ca.leafFor(['127.0.0.1', 'localhost']));
  });

  afterAll(async () => {
    await origin?.close();
    await dir?.remove();
  });

  it('seeds a URL list (sha256=, sha512=, SRI, a redirect, credentials) into a netlock that replay serves byte for byte', async () => {
    const t = fresh();
    serve('/list/a.txt', 'alpha\n');
    serve('/list/b.bin', 'bravo bytes\n');
    serve('/list/c.tgz', 'charlie tarball\n');
    origin.route('/list/moved', (_q, r) => {
      r.writeHead(302, { location: '/list/target.txt', 'content-length': '0' });
      r.end();
    });
    serve('/list/target.txt', 'the redirect target\n');
    let seenAuth: string | undefined;
    origin.route('/private/d.txt', (q, r) => {
      seenAuth = q.headers.authorization;
      if (q.headers.authorization !== 'Basic ' + Buffer.from('user:s3cret').toString('base64')) {
        r.writeHead(401, { 'content-length': '0' });
        r.end();
        return;
      }
      r.writeHead(200, { 'content-length': '8' });
      r.end('private\n');
    });
    let bearer: string | undefined;
    origin.route('/token/e.txt', (q, r) => {
      bearer = q.headers.authorization;
      r.writeHead(q.headers.authorization === 'Bearer tok-123' ? 200 : 403, { 'content-length': '6' });
      r.end('token\n');
    });
    const host = new URL(origin.url).host;
    const list = await file(t.work, 'urls.txt', [
      '# pinned downloads',
      `${origin.url}/list/a.txt sha256=${sha256('alpha\n')}`,
      `${origin.url}/list/b.bin sha512=${createHash('sha512').update('bravo bytes\n').digest('hex')}  # trailing comment`,
      `${origin.url}/list/c.tgz sha512-${sha512b64('charlie tarball\n')}`,
      `${origin.url}/list/moved sha256:${sha256('the redirect target\n')}`,
      `${origin.url.replace('https://', 'https://user:s3cret@')}/private/d.txt sha256=${sha256('private\n')}`,
      `${origin.url}/token/e.txt sha256=${sha256('token\n')}`,
      '',
    ].join('\n'));
    const r = await seedCli(['--netlock', t.netlock, '--upstream-ca', caFile, '--auth', `${host}=tok-123`, '--json', list], { data: t.data });
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as { netlock: string; count: number; fetched: number; failures: unknown[] };
    expect(summary).toMatchObject({ fetched: 6, failures: [] });
    expect(seenAuth).toBe('Basic ' + Buffer.from('user:s3cret').toString('base64'));
    expect(bearer).toBe('Bearer tok-123');
    const netlock = JSON.parse(await readFile(t.netlock, 'utf8')) as NetlockJson;
    expect(netlock.netlock).toBe(summary.netlock);
    // The redirect is two records, as a client following it makes two requests.
    expect(netlock.entries.map((e) => `${e.status} ${e.url.replace(origin.url, '')}`).sort()).toEqual(
      ['200 /list/a.txt', '200 /list/b.bin', '200 /list/c.tgz', '302 /list/moved', '200 /list/target.txt', '200 /private/d.txt', '200 /token/e.txt'].sort(),
    );
    expect(netlock.entries.every((e) => e.accept === '*/*' && e.method === 'GET')).toBe(true);
    // Credentials are used for the fetch and never stored.
    const stored = await readFile(join(t.data, 'records.jsonl'), 'utf8');
    for (const secret of ['s3cret', 'tok-123', 'user:']) {
      expect(stored).not.toContain(secret);
      expect(await readFile(t.netlock, 'utf8')).not.toContain(secret);
    }

    // Replay serves exactly those bytes with no upstream client at all.
    const before = hits('/list/a.txt');
    const replay = await startTestOracle({ mode: 'replay', dataDir: t.data, netlockPath: t.netlock });
    try {
      const a = await replay.fetch(`${origin.url}/list/a.txt`);
      expect(a.status).toBe(200);
      expect(a.body.toString()).toBe('alpha\n');
      const moved = await replay.fetch(`${origin.url}/list/moved`);
      expect(moved.status).toBe(302);
      expect((await replay.fetch(`${origin.url}/list/target.txt`)).body.toString()).toBe('the redirect target\n');
      expect((await replay.fetch(`${origin.url}/private/d.txt`)).body.toString()).toBe('private\n');
      const miss = await replay.fetch(`${origin.url}/list/not-seeded`);
      expect(miss.status).toBe(504);
    } finally {
      await replay.close();
    }
    expect(hits('/list/a.txt')).toBe(before);
  });

  it('writes the records the recording proxy writes: a proxied client request for a seeded URL is answered from the seeded record', async () => {
    const t = fresh();
    serve('/same/pkg.tgz', 'same bytes\n');
    const list = await file(t.work, 'urls.txt', `${origin.url}/same/pkg.tgz sha256=${sha256('same bytes\n')}\n`);
    const r = await seedCli(['--netlock', t.netlock, '--upstream-ca', caFile, list], { data: t.data });
    expect(r.code, r.stderr).toBe(0);
    const seeded = await recordLines(t.data);
    expect(seeded.map((e) => e.key)).toEqual([`${origin.url}/same/pkg.tgz\nGET\naccept=*/*\nbody=`]);
    const before = hits('/same/pkg.tgz');
    const proxy = await startTestOracle({ mode: 'record', dataDir: t.data, netlockPath: join(t.work, 'proxy.netlock.json'), upstreamCaPem: [await readFile(caFile, 'utf8')] });
    try {
      // curl sends accept: */*; undici sends none: both are the seeded request.
      const viaCurl = await proxy.curl(['-s', `${origin.url}/same/pkg.tgz`]);
      expect(viaCurl.stdout).toBe('same bytes\n');
      expect((await proxy.fetch(`${origin.url}/same/pkg.tgz`)).body.toString()).toBe('same bytes\n');
      expect(proxy.oracle.stats.hits).toBe(2);
      expect(proxy.oracle.stats.upstreamFetches).toBe(0);
    } finally {
      await proxy.close();
    }
    expect(hits('/same/pkg.tgz')).toBe(before);
    const proxyNetlock = JSON.parse(await readFile(join(t.work, 'proxy.netlock.json'), 'utf8')) as NetlockJson;
    const seedNetlock = JSON.parse(await readFile(t.netlock, 'utf8')) as NetlockJson;
    expect(proxyNetlock.netlock).toBe(seedNetlock.netlock);
  });

  it('refuses a body that does not match its lockfile digest: names the entry and both digests, records nothing, writes no netlock', async () => {
    const t = fresh();
    serve('/bad/good.txt', 'good\n');
    serve('/bad/evil.tgz', 'tampered tarball\n');
    const lock = {
      name: 'p', version: '1.0.0', lockfileVersion: 3, requires: true,
      packages: {
        '': { name: 'p', version: '1.0.0' },
        'node_modules/good': { version: '1.0.0', resolved: `${origin.url}/bad/good.txt`, integrity: `sha512-${sha512b64('good\n')}` },
        'node_modules/evil': { version: '6.6.6', resolved: `${origin.url}/bad/evil.tgz`, integrity: `sha512-${sha512b64('the published tarball\n')}` },
      },
    };
    const path = await file(t.work, 'package-lock.json', JSON.stringify(lock, null, 2));
    const r = await seedCli(['--netlock', t.netlock, '--upstream-ca', caFile, path], { data: t.data });
    expect(r.code).toBe(1);
    const line = (await readFile(path, 'utf8')).split('\n').findIndex((l) => l.includes('"node_modules/evil"')) + 1;
    expect(r.stderr).toContain(`FAIL ORACLE_ERR_DIGEST_MISMATCH: ${path}:${line} node_modules/evil@6.6.6: ${origin.url}/bad/evil.tgz does not match its lockfile: expected sha512-${sha512b64('the published tarball\n')}, got sha512-${sha512b64('tampered tarball\n')}; nothing recorded`);
    expect(r.stderr).toContain('no netlock written');
    expect(existsSync(t.netlock)).toBe(false);
    expect((await recordLines(t.data)).map((e) => e.key.split('\n')[0])).toEqual([`${origin.url}/bad/good.txt`]);
    expect(hits('/bad/evil.tgz')).toBe(1);
  });

  it('refuses a malformed or unknown lockfile with file and line, before fetching anything', async () => {
    const t = fresh();
    const broken = await file(t.work, 'package-lock.json', '{\n  "lockfileVersion": 3,\n  "packages": {\n    "node_modules/x": { "resolved": "https://x" },,\n  }\n}\n');
    const r1 = await seedCli(['--netlock', t.netlock, broken], { data: t.data });
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(new RegExp(`ORACLE_ERR_INVALID_LOCKFILE: ${broken.replace(/[.]/g, '\\.')}:4: not valid JSON`));
    const sums = await file(t.work, 'SHA256SUMS', `${sha256('x')}  ${origin.url}/a\nnot a checksum line\n`);
    const r2 = await seedCli(['--netlock', t.netlock, sums], { data: t.data });
    expect(r2.stderr).toContain(`ORACLE_ERR_INVALID_LOCKFILE: ${sums}:2: expected "HEX  NAME"`);
    const unknown = await file(t.work, 'mystery.dat', 'something\nelse\n');
    const r3 = await seedCli(['--netlock', t.netlock, unknown], { data: t.data });
    expect(r3.code).toBe(1);
    expect(r3.stderr).toContain(`${unknown}: cannot tell what kind of input this is; name it with --kind`);
    const yarn = await file(t.work, 'yarn.lock', '# yarn lockfile v1\n\n"a@^1":\n  version "1.0.0"\n  resolved "https://r/a.tgz"\n  orphanword\n');
    const r4 = await seedCli(['--netlock', t.netlock, yarn], { data: t.data });
    expect(r4.stderr).toContain(`${yarn}:6: expected "key value"`);
    const gosum = await file(t.work, 'go.sum', 'example.com/m v1.0.0 h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nexample.com/m v1.0.0/go.mod\n');
    const r5 = await seedCli(['--netlock', t.netlock, gosum], { data: t.data });
    expect(r5.stderr).toContain(`${gosum}:2: expected "MODULE VERSION[/go.mod] h1:HASH"`);
    // A good file next to a bad one: nothing is fetched at all.
    serve('/malformed/fine.txt', 'fine\n');
    const good = await file(t.work, 'urls.txt', `${origin.url}/malformed/fine.txt sha256=${sha256('fine\n')}\n`);
    const r6 = await seedCli(['--netlock', t.netlock, good, broken], { data: t.data });
    expect(r6.code).toBe(1);
    expect(hits('/malformed/fine.txt')).toBe(0);
    expect(existsSync(t.netlock)).toBe(false);
  });

  it('warns about and lists entries without a resolved URL or integrity; --strict refuses them before fetching', async () => {
    const t = fresh();
    serve('/strict/nohash.tgz', 'no hash here\n');
    serve('/strict/ok.tgz', 'ok\n');
    const lock = {
      lockfileVersion: 3,
      packages: {
        '': { name: 'p' },
        'node_modules/ok': { version: '1.0.0', resolved: `${origin.url}/strict/ok.tgz`, integrity: `sha512-${sha512b64('ok\n')}` },
        'node_modules/nohash': { version: '2.0.0', resolved: `${origin.url}/strict/nohash.tgz` },
        'node_modules/nourl': { version: '3.0.0', integrity: `sha512-${sha512b64('x')}` },
        'node_modules/linked': { link: true, resolved: 'packages/linked' },
      },
    };
    const path = await file(t.work, 'package-lock.json', JSON.stringify(lock, null, 2));
    const strict = await seedCli(['--netlock', t.netlock, '--upstream-ca', caFile, '--strict', path], { data: t.data });
    expect(strict.code).toBe(1);
    expect(strict.stderr).toContain('--strict: 2 entries cannot be seeded with a checked digest');
    expect(strict.stderr).toMatch(/package-lock\.json:\d+ node_modules\/nohash@2\.0\.0: no "integrity"/);
    expect(strict.stderr).toMatch(/package-lock\.json:\d+ node_modules\/nourl@3\.0\.0: no "resolved" URL/);
    expect(hits('/strict/ok.tgz') + hits('/strict/nohash.tgz')).toBe(0);

    const lax = await seedCli(['--netlock', t.netlock, '--upstream-ca', caFile, '--json', path], { data: t.data });
    expect(lax.code, lax.stderr).toBe(0);
    const summary = JSON.parse(lax.stdout) as { count: number; warnings: Array<{ entry: string; message: string; line: number }> };
    expect(summary.count).toBe(2);
    expect(summary.warnings.map((w) => w.entry).sort()).toEqual(['node_modules/nohash@2.0.0', 'node_modules/nourl@3.0.0']);
    expect(summary.warnings.every((w) => w.line > 0)).toBe(true);
    expect(lax.stderr).toMatch(/warning: .*package-lock\.json:\d+ node_modules\/nourl@3\.0\.0: no "resolved" URL/);
  });

  it('merges duplicate entries into one fetch, and refuses duplicates that promise different bodies', async () => {
    const t = fresh();
    serve('/dup/one.tgz', 'one\n');
    const digest = `sha256=${sha256('one\n')}`;
    const a = await file(t.work, 'a.txt', `${origin.url}/dup/one.tgz ${digest}\n`);
    const b = await file(t.work, 'SHA256SUMS', `${sha256('one\n')}  ${origin.url}/dup/one.tgz\n`);
    const r = await seedCli(['--netlock', t.netlock, '--upstream-ca', caFile, '--json', a, b, a], { data: t.data });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ count: 1, duplicates: 2, fetched: 1 });
    expect(hits('/dup/one.tgz')).toBe(1);
    const clash = await file(t.work, 'clash.txt', `${origin.url}/dup/one.tgz ${digest}\n${origin.url}/dup/one.tgz sha256=${sha256('two\n')}\n`);
    const c = await seedCli(['--netlock', t.netlock, clash], { data: t.data });
    expect(c.code).toBe(1);
    expect(c.stderr).toContain(`ORACLE_ERR_INVALID_LOCKFILE: ${clash}:2: `);
    expect(c.stderr).toContain(`is also ${clash}:1 ${origin.url}/dup/one.tgz, with a different digest`);
    expect(hits('/dup/one.tgz')).toBe(1);
  });

  it('continues after a failed or interrupted run without fetching again what it recorded', async () => {
    const t = fresh();
    for (const i of [1, 2, 3]) serve(`/resume/${i}.bin`, `file ${i}\n`);
    let release: (() => void) | undefined;
    const held = new Promise<void>((r) => (release = r));
    const abort = new AbortController();
    origin.route('/resume/slow.bin', async (_q, r) => {
      // Holds its answer until the run is interrupted: the run is stopped mid-fetch.
      abort.abort();
      await held;
      r.writeHead(200, { 'content-length': '5' });
      r.end('slow\n');
    });
    const lines = [1, 2, 3].map((i) => `${origin.url}/resume/${i}.bin sha256=${sha256(`file ${i}\n`)}`);
    lines.push(`${origin.url}/resume/missing.bin sha256=${sha256('missing\n')}`);
    const list = await file(t.work, 'urls.txt', `${lines.join('\n')}\n`);

    // 1. One URL is missing upstream (404): the others are recorded, no netlock.
    const first = await seedCli(['--netlock', t.netlock, '--upstream-ca', caFile, '--concurrency', '1', list], { data: t.data });
    expect(first.code).toBe(1);
    expect(first.stderr).toContain(`${list}:4 ${origin.url}/resume/missing.bin: ${origin.url}/resume/missing.bin answered HTTP 404; nothing recorded`);
    expect(existsSync(t.netlock)).toBe(false);
    expect(existsSync(`${t.netlock}.journal`)).toBe(true);
    expect([1, 2, 3].map((i) => hits(`/resume/${i}.bin`))).toEqual([1, 1, 1]);

    // 2. Fixed upstream, plus a new slow entry; interrupted while that one is in flight.
    serve('/resume/missing.bin', 'missing\n');
    await writeFile(list, `${lines.join('\n')}\n${origin.url}/resume/slow.bin sha256=${sha256('slow\n')}\n`);
    const second = await seedCli(['--netlock', t.netlock, '--upstream-ca', caFile, '--concurrency', '1', list], { data: t.data, signal: abort.signal });
    release!();
    expect(second.code).toBe(1);
    expect(second.stderr).toContain('seed: continuing:');
    expect(second.stderr).toContain('interrupted after');
    expect(existsSync(t.netlock)).toBe(false);
    expect([1, 2, 3].map((i) => hits(`/resume/${i}.bin`))).toEqual([1, 1, 1]);
    expect(hits('/resume/missing.bin')).toBe(2);

    // 3. The rerun fetches only the one that never completed.
    const third = await seedCli(['--netlock', t.netlock, '--upstream-ca', caFile, '--json', list], { data: t.data });
    expect(third.code, third.stderr).toBe(0);
    expect(JSON.parse(third.stdout)).toMatchObject({ count: 5, fetched: 1, reused: 4 });
    expect([1, 2, 3].map((i) => hits(`/resume/${i}.bin`))).toEqual([1, 1, 1]);
    expect(hits('/resume/missing.bin')).toBe(2);
    expect(hits('/resume/slow.bin')).toBe(2);
    expect(existsSync(`${t.netlock}.journal`)).toBe(false);
  });

  it('seeds yarn.lock, pnpm-lock.yaml, uv.lock, SHA256SUMS (--base-url) and Dockerfile ADD; checks go.sum h1 dirhashes', async () => {
    const t = fresh();
    const body = (name: string): string => `${name} contents\n`;
    for (const name of ['y.tgz', 'p.tgz', 'u.whl', 's.tar.gz', 'd.bin']) serve(`/eco/${name}`, body(name));
    const sri = (name: string): string => `sha512-${sha512b64(body(name))}`;
    const inputs = [
      await file(t.work, 'yarn.lock', `# yarn lockfile v1\n\ny@^1:\n  version "1.0.0"\n  resolved "${origin.url}/eco/y.tgz#${'0'.repeat(40)}"\n  integrity ${sri('y.tgz')}\n`),
      await file(t.work, 'pnpm-lock.yaml', `lockfileVersion: '9.0'\npackages:\n  p@1.0.0:\n    resolution: {integrity: ${sri('p.tgz')}, tarball: ${origin.url}/eco/p.tgz}\n`),
      await file(t.work, 'uv.lock', `version = 1\n[[package]]\nname = "u"\nversion = "1.0"\nsource = { registry = "${origin.url}/simple" }\nwheels = [{ url = "${origin.url}/eco/u.whl", hash = "sha256:${sha256(body('u.whl'))}" }]\n`),
      await file(t.work, 'SHA256SUMS', `${sha256(body('s.tar.gz'))}  s.tar.gz\n`),
      await file(t.work, 'Dockerfile', `FROM scratch\nADD --checksum=sha256:${sha256(body('d.bin'))} ${origin.url}/eco/d.bin /d.bin\n`),
    ];
    const r = await seedCli(['--netlock', t.netlock, '--upstream-ca', caFile, '--base-url', `${origin.url}/eco/`, '--json', ...inputs], { data: t.data });
    expect(r.code, r.stderr).toBe(0);
    const netlock = JSON.parse(await readFile(t.netlock, 'utf8')) as NetlockJson;
    expect(netlock.entries.map((e) => e.url.replace(origin.url, '')).sort()).toEqual(['/eco/d.bin', '/eco/p.tgz', '/eco/s.tar.gz', '/eco/u.whl', '/eco/y.tgz']);
    expect(JSON.parse(r.stdout)).toMatchObject({ warnings: [], failures: [] });

    // go.sum: an h1 that does not match the module zip is refused, naming both hashes; nothing is recorded.
    const { buildZipForTest } = await import('./zip-fixture.ts');
    const zip = buildZipForTest({ 'example.com/m@v1.0.0/go.mod': 'module example.com/m\n', 'example.com/m@v1.0.0/m.go': 'package m\n' });
    origin.route('/gp/example.com/m/@v/v1.0.0.zip', (_q, res) => {
      res.writeHead(200, { 'content-length': String(zip.byteLength) });
      res.end(zip);
    });
    serve('/gp/example.com/m/@v/v1.0.0.info', '{"Version":"v1.0.0"}');
    const { goZipHash } = await import('../../src/seed/go-dirhash.ts');
    // eslint-disable-next-line @typescript-eslint/require-await -- an in-memory RangeReader: stream() is an AsyncIterable with nothing to await
    const right = await goZipHash({ size: zip.byteLength, read: (o, l) => Promise.resolve(zip.subarray(o, o + l)), stream: async function* (o, l) { yield zip.subarray(o, o + l); } });
    const wrong = `h1:${Buffer.alloc(32, 1).toString('base64')}`;
    const gosum = await file(t.work, 'go.sum', `example.com/m v1.0.0 ${wrong}\n`);
    const bad = await seedCli(['--netlock', join(t.work, 'go.netlock.json'), '--upstream-ca', caFile, '--goproxy', `${origin.url}/gp`, gosum], { data: t.data });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`FAIL ORACLE_ERR_DIGEST_MISMATCH: ${gosum}:1 example.com/m@v1.0.0: ${origin.url}/gp/example.com/m/@v/v1.0.0.zip does not match its lockfile: expected ${wrong}, got ${right}; nothing recorded`);
    expect((await recordLines(t.data)).some((e) => e.key.includes('v1.0.0.zip'))).toBe(false);
    await writeFile(gosum, `example.com/m v1.0.0 ${right}\n`);
    const good = await seedCli(['--netlock', join(t.work, 'go.netlock.json'), '--upstream-ca', caFile, '--goproxy', `${origin.url}/gp`, gosum], { data: t.data });
    expect(good.code, good.stderr).toBe(0);
  });

  it('turns a netlock back into pinned lists (sha256sums, urls, json) that seed reads back to the same requests and bodies', async () => {
    const t = fresh();
    serve('/round/x.tar.gz', 'x archive\n');
    serve('/round/y.zip', 'y archive\n');
    origin.route('/round/z', (_q, r) => {
      r.writeHead(301, { location: '/round/y.zip', 'content-length': '0' });
      r.end();
    });
    const list = await file(t.work, 'urls.txt', `${origin.url}/round/x.tar.gz sha256=${sha256('x archive\n')}\n${origin.url}/round/z sha256=${sha256('y archive\n')}\n`);
    const r = await seedCli(['--netlock', t.netlock, '--upstream-ca', caFile, list], { data: t.data });
    expect(r.code, r.stderr).toBe(0);
    const sums = await lockfileCli([t.netlock, '--format', 'sha256sums'], t.data);
    expect(sums.code, sums.stderr).toBe(0);
    expect(sums.stdout).toBe(`${sha256('x archive\n')}  ${origin.url}/round/x.tar.gz\n${sha256('y archive\n')}  ${origin.url}/round/y.zip\n`);
    const urls = await lockfileCli([t.netlock, '--format', 'urls'], t.data);
    expect(urls.stdout).toBe(`${origin.url}/round/x.tar.gz sha256=${sha256('x archive\n')}\n${origin.url}/round/y.zip sha256=${sha256('y archive\n')}\n`);
    const jsonOut = await lockfileCli([t.netlock, '--format', 'json'], t.data);
    const json = JSON.parse(jsonOut.stdout) as Array<{ status: number; url: string; integrity: string; record: string }>;
    expect(json.map((e) => e.status)).toEqual([200, 200, 301]);
    const toFile = await lockfileCli([t.netlock, '--format', 'json', '--out', join(t.work, 'pinned.json')], t.data);
    expect(toFile.code, toFile.stderr).toBe(0);
    expect(toFile.stdout).toBe('');
    expect(await readFile(join(t.work, 'pinned.json'), 'utf8')).toBe(jsonOut.stdout);
    expect(json[0]!.integrity).toBe(`sha512-${sha512b64('x archive\n')}`);

    // Seeding the pinned list again (in another data directory) gives the same requests and bodies.
    const again = fresh();
    const pinned = await file(again.work, 'pinned.SHA256SUMS', sums.stdout);
    const r2 = await seedCli(['--netlock', again.netlock, '--upstream-ca', caFile, pinned], { data: again.data });
    expect(r2.code, r2.stderr).toBe(0);
    const before = JSON.parse(await readFile(t.netlock, 'utf8')) as NetlockJson;
    const after = JSON.parse(await readFile(again.netlock, 'utf8')) as NetlockJson;
    const view = (nl: NetlockJson): string[] => nl.entries.filter((e) => e.status === 200).map((e) => `${e.url} ${e.accept} ${e.body} ${e.sha256}`);
    expect(view(after)).toEqual(view(before));
    const bad = await lockfileCli([t.netlock, '--format', 'yaml'], t.data);
    expect(bad.code).toBe(2);

    // A record that fails its check midway: exit 1 naming it, and --out leaves no file, whole or partial.
    await tamperBlock(t.data, json[1]!.record, 'not the record');
    const midway = await lockfileCli([t.netlock, '--format', 'json', '--out', join(t.work, 'broken.json')], t.data);
    expect(midway.code).toBe(1);
    expect(midway.stderr).toContain(json[1]!.record);
    expect(existsSync(join(t.work, 'broken.json'))).toBe(false);
    expect((await readdir(t.work)).filter((n) => n.startsWith('broken.json'))).toEqual([]);
  });
});
