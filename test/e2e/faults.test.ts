import { createConnection } from 'node:net';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isQuarantined, tamperBlock } from '../helpers/blocks.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { expectReplayMiss, parseCurlHead } from '../helpers/replay-miss.ts';
import { cli, run, startDaemon, tempDir } from '../helpers/run.ts';

/** Bad input against the real CLI: crashes, tampering, malformed requests. Each must fail clearly and lose nothing. */
describe('fault handling (CLI)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  const env = (): NodeJS.ProcessEnv => ({ PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir.path });

  beforeAll(async () => {
    dir = await tempDir('fo-faults-');
    origin = await startOrigin();
    for (const name of ['a', 'b', 'c']) {
      origin.route(`/${name}`, (_q, r) => {
        r.end(`body of ${name}\n`);
      });
    }
  });

  afterAll(async () => {
    await origin.close();
    await dir.remove();
  });

  async function record(data: string, netlock: string, paths: string[]): Promise<void> {
    const d = await startDaemon(['record', '--listen', '127.0.0.1:0', '--data', data, '--netlock', netlock], env());
    for (const p of paths) {
      const r = await run('curl', ['-sS', '-x', d.url, `${origin.url}${p}`], { env: env() });
      expect(r.code, r.stderr).toBe(0);
    }
    expect(await d.stop('SIGTERM')).toBe(0);
  }

  it('rebuilds the netlock from the journal after kill -9, both by the next run and by `recover`', async () => {
    const data = join(dir.path, 'crash-data');
    const netlock = join(dir.path, 'crash.netlock.json');
    const d = await startDaemon(['record', '--listen', '127.0.0.1:0', '--data', data, '--netlock', netlock], env());
    for (const p of ['/a', '/b']) expect((await run('curl', ['-sS', '-x', d.url, `${origin.url}${p}`], { env: env() })).code).toBe(0);
    await d.stop('SIGKILL');
    await expect(readFile(netlock)).rejects.toThrow(/ENOENT/);
    expect((await readFile(`${netlock}.journal`, 'utf8')).trim().split('\n')).toHaveLength(2);

    const recovered = await cli(['recover', '--netlock', netlock, '--data', data], { env: env() });
    expect(recovered.code, recovered.stderr).toBe(0);
    expect(recovered.stdout).toMatch(/recovered 2 entries/);
    const file = JSON.parse(await readFile(netlock, 'utf8')) as { entries: Array<{ url: string }> };
    expect(file.entries.map((e) => e.url)).toEqual([`${origin.url}/a`, `${origin.url}/b`]);
    expect((await readdir(dir.path)).filter((f) => f.endsWith('.journal'))).toEqual([]);

    // The next run with the same netlock path keeps what the file holds (issue 13, defect 1) and, after another
    // crash, carries the journal's entries forward.
    const d2 = await startDaemon(['record', '--listen', '127.0.0.1:0', '--data', data, '--netlock', netlock], env());
    await run('curl', ['-sS', '-x', d2.url, `${origin.url}/c`], { env: env() });
    await d2.stop('SIGKILL');
    const d3 = await startDaemon(['record', '--listen', '127.0.0.1:0', '--data', data, '--netlock', netlock], env());
    expect(d3.stderr()).toMatch(/recovered 1 request/);
    expect(await d3.stop('SIGTERM'), d3.stderr()).toBe(0);
    const after = JSON.parse(await readFile(netlock, 'utf8')) as { entries: Array<{ url: string }> };
    expect(after.entries.map((e) => e.url), d3.stderr()).toEqual([`${origin.url}/a`, `${origin.url}/b`, `${origin.url}/c`]);
    expect(origin.hits.get('/a')).toBe(1);
  }, 60_000);

  it('refuses tampered body blocks and records in replay and verify, naming the entry', async () => {
    const data = join(dir.path, 'tamper-data');
    const netlock = join(dir.path, 'tamper.netlock.json');
    await record(data, netlock, ['/a', '/b']);
    const file = JSON.parse(await readFile(netlock, 'utf8')) as { entries: Array<{ url: string; body: string }> };
    const victim = file.entries.find((e) => e.url.endsWith('/b'))!;
    await tamperBlock(data, victim.body, 'body of X\n');

    const verified = await cli(['verify', netlock, '--data', data], { env: env() });
    expect(verified.code).toBe(1);
    expect(verified.stdout).toMatch(new RegExp(`FAIL GET ${origin.url}/b: ORACLE_ERR_BLOCK_CORRUPT`));
    expect(verified.stdout).not.toMatch(/FAIL GET .*\/a:/);

    const d = await startDaemon(['replay', '--listen', '127.0.0.1:0', '--data', data, '--netlock', netlock], env());
    const good = await run('curl', ['-sS', '-x', d.url, `${origin.url}/a`], { env: env() });
    expect(good.stdout).toBe('body of a\n');
    // A one-block body is checked before the head: an error answer, never the wrong bytes (a larger body
    // whose later block is bad fails its transfer instead).
    const bad = await run('curl', ['-sS', '-i', '-x', d.url, `${origin.url}/b`], { env: env() });
    expect(bad.stdout).toMatch(/^HTTP\/1\.1 502 [\s\S]*\r\nx-oracle-error: ORACLE_ERR_BLOCK_CORRUPT\r\n/i);
    expect(bad.stdout).not.toContain('body of X');
    const stillGood = await run('curl', ['-sS', '-x', d.url, `${origin.url}/a`], { env: env() });
    expect(stillGood.stdout).toBe('body of a\n');
    await d.stop();
    expect(d.stderr()).toMatch(/does not hash to its CID/);
  }, 60_000);

  it('writes `replay --report`: every miss with its nearest candidates, every unused entry', async () => {
    const data = join(dir.path, 'report-data');
    const netlock = join(dir.path, 'report.netlock.json');
    await record(data, netlock, ['/a', '/b']);
    const reportPath = join(dir.path, 'report.json');
    const d = await startDaemon(['replay', '--listen', '127.0.0.1:0', '--data', data, '--netlock', netlock, '--report', reportPath], env());
    expect((await run('curl', ['-sS', '-x', d.url, `${origin.url}/a`], { env: env() })).stdout).toBe('body of a\n');
    const miss = await run('curl', ['-s', '-i', '-x', d.url, '-H', 'Accept: application/json', `${origin.url}/a`], { env: env() });
    expect(miss.stdout).toMatch(/differs in: header accept/);
    const head = parseCurlHead(miss.stdout);
    expectReplayMiss({ ...head, body: head.rest }, 'GET', `${origin.url}/a`);
    expect(await d.stop('SIGTERM')).toBe(0);
    const report = JSON.parse(await readFile(reportPath, 'utf8')) as {
      entries: number;
      used: number;
      misses: Array<{ url: string; accept: string; nearest: Array<{ url: string; differs: string[] }> }>;
      unused: Array<{ url: string }>;
    };
    expect(report).toMatchObject({ entries: 2, used: 1 });
    expect(report.misses).toEqual([{ method: 'GET', url: `${origin.url}/a`, accept: 'application/json', nearest: expect.arrayContaining([{ method: 'GET', url: `${origin.url}/a`, differs: ['header accept'] }]) as unknown }]);
    expect(report.unused.map((u) => u.url)).toEqual([`${origin.url}/b`]);
  }, 60_000);

  it('refuses records signed by an untrusted key and a netlock file with a bad signature', async () => {
    const data = join(dir.path, 'trust-data');
    const netlock = join(dir.path, 'trust.netlock.json');
    await record(data, netlock, ['/a']);
    const otherKey = 'ab'.repeat(32);
    const d = await startDaemon(['replay', '--listen', '127.0.0.1:0', '--data', data, '--netlock', netlock, '--trust', otherKey], env());
    const r = await run('curl', ['-s', '-i', '-x', d.url, `${origin.url}/a`], { env: env() });
    expect(r.stdout).toMatch(/^HTTP\/1.1 502/);
    expect(r.stdout).toMatch(/x-oracle-error: ORACLE_ERR_UNTRUSTED_KEY/);
    expect(r.stdout).toMatch(/not trusted/);
    await d.stop();

    // A netlock whose root points at records with a forged signature fails verify, naming the entry.
    const text = await readFile(netlock, 'utf8');
    const parsed = JSON.parse(text) as { netlock: string; entries: Array<{ signature: string }> };
    const { FsBlockStore } = await import('../../src/store/fs-block-store.ts');
    const { NetlockReader, buildNetlock } = await import('../../src/netlock/dag.ts');
    const { CID } = await import('multiformats/cid');
    const store = new FsBlockStore(data);
    const entries = [];
    for await (const e of new NetlockReader(CID.parse(parsed.netlock), store).entries()) {
      const sig = e.signed.signature.slice();
      sig[0] = sig[0]! ^ 0xff;
      entries.push({ key: e.key, signed: { record: e.signed.record, signature: sig } });
    }
    const forged = await buildNetlock(entries, [], store);
    const forgedPath = join(dir.path, 'forged.netlock.json');
    await writeFile(forgedPath, JSON.stringify({ ...parsed, netlock: forged.root.toString() }));
    const verified = await cli(['verify', forgedPath, '--data', data], { env: env() });
    expect(verified.code).toBe(1);
    expect(verified.stdout).toMatch(new RegExp(`FAIL GET ${origin.url}/a: ORACLE_ERR_BAD_SIGNATURE`));
  }, 60_000);

  it('re-fetches when a record block in the data dir is corrupt, instead of serving it', async () => {
    const data = join(dir.path, 'corrupt-data');
    const netlock = join(dir.path, 'corrupt.netlock.json');
    await record(data, netlock, ['/c']);
    const file = JSON.parse(await readFile(netlock, 'utf8')) as { entries: Array<{ record: string }> };
    const rec = file.entries[0]!.record;
    await tamperBlock(data, rec, 'garbage');
    const hits = origin.hits.get('/c') ?? 0;
    const d = await startDaemon(['record', '--listen', '127.0.0.1:0', '--data', data], env());
    const r = await run('curl', ['-sS', '-x', d.url, `${origin.url}/c`], { env: env() });
    expect(r.stdout).toBe('body of c\n');
    expect(origin.hits.get('/c')).toBe(hits + 1);
    await d.stop();
    expect(d.stderr()).toMatch(/is unusable .*fetching again/);
    expect(await isQuarantined(data, rec)).toBe(true);
  }, 60_000);

  it('answers malformed requests and bad CONNECT targets with clear errors and keeps serving', async () => {
    const data = join(dir.path, 'bad-data');
    const d = await startDaemon(['record', '--listen', '127.0.0.1:0', '--data', data], env());
    const port = Number(new URL(d.url).port);
    const raw = (text: string): Promise<string> =>
      new Promise((resolve) => {
        const s = createConnection(port, '127.0.0.1');
        let out = '';
        s.on('data', (c) => (out += c.toString()));
        s.on('close', () => resolve(out));
        s.on('error', () => resolve(out));
        s.end(text);
      });
    expect(await raw('GARBAGE\r\n\r\n')).toMatch(/^HTTP\/1.1 400 Bad Request[\s\S]*Malformed HTTP request/);
    expect(await raw('CONNECT nohost HTTP/1.1\r\nhost: nohost\r\n\r\n')).toMatch(/^HTTP\/1.1 400[\s\S]*Invalid CONNECT target/);
    expect(await raw('CONNECT example.com:99999 HTTP/1.1\r\nhost: x\r\n\r\n')).toMatch(/^HTTP\/1.1 400/);
    expect(await raw(`GET http://x/ HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(70 * 1024)}\r\n\r\n`)).toMatch(/^HTTP\/1.1 431/);
    expect(await raw(`GET ftp://x/ HTTP/1.1\r\nhost: x\r\n\r\n`)).toMatch(/^HTTP\/1.1 400/);
    const many = Array.from({ length: 300 }, (_, i) => `x-h${i}: v\r\n`).join('');
    expect(await raw(`GET ${origin.url}/a HTTP/1.1\r\nhost: x\r\n${many}\r\n`)).toMatch(/^HTTP\/1.1 431[\s\S]*more than 256 header fields/);
    expect(await raw(`GET ${origin.url}/a?${'q'.repeat(40 * 1024)} HTTP/1.1\r\nhost: x\r\n\r\n`)).toMatch(/^HTTP\/1.1 414[\s\S]*exceeds the 32768-byte limit/);
    // A client hanging up mid-request-body.
    await raw(`POST ${origin.url}/a HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\npartial`);
    const ok = await run('curl', ['-sS', '-x', d.url, `${origin.url}/a`], { env: env() });
    expect(ok.stdout).toBe('body of a\n');
    await d.stop();
  }, 60_000);
});
