/**
 * Defect 1 (issue 13): after `kill -9`, `recover` and then a new `record` on the same `--netlock` wrote only
 * the new run's requests over the recovered file (3 entries became 1). A netlock never shrinks behind its
 * user's back: a record run keeps the entries of the netlock already at its path (verified through the
 * store, with a log line saying how many), and so does `recover`; a file there that cannot be read or
 * verified stops the run with a clear message before anything listens, and is left as it was.
 * Everything through the CLI, against an origin on 127.0.0.1.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tamperBlock } from '../helpers/blocks.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { cli, run, startDaemon, tempDir } from '../helpers/run.ts';

interface FileView {
  netlock: string;
  count: number;
  entries: Array<{ url: string; record: string }>;
}

describe('defect 1: a netlock never shrinks behind its user', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  const env = (): NodeJS.ProcessEnv => ({ PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir.path });
  const urls = (f: FileView): string[] => f.entries.map((e) => e.url.slice(origin.url.length));
  const readView = async (path: string): Promise<FileView> => JSON.parse(await readFile(path, 'utf8')) as FileView;

  beforeAll(async () => {
    dir = await tempDir('fo-defect1-');
    origin = await startOrigin();
    for (const name of ['a', 'b', 'c', 'd', 'e', 'f']) origin.route(`/${name}`, (_q, r) => void r.end(`body of ${name}\n`));
  });

  afterAll(async () => {
    await origin?.close();
    await dir?.remove();
  });

  /** A record run on `netlock` that fetches `paths` with curl, then stops with `signal`. */
  async function record(data: string, netlock: string, paths: string[], signal: NodeJS.Signals): Promise<string> {
    const d = await startDaemon(['record', '--listen', '127.0.0.1:0', '--data', data, '--netlock', netlock], env());
    for (const p of paths) {
      const r = await run('curl', ['-sS', '-x', d.url, `${origin.url}${p}`], { env: env() });
      expect(r.stdout, r.stderr).toBe(`body of ${p.slice(1)}\n`);
    }
    const code = await d.stop(signal);
    if (signal === 'SIGTERM') expect(code, d.stderr()).toBe(0);
    return d.stderr();
  }

  it('kill -9, recover, then a new record run on the same netlock: 3 recovered + 1 new = 4 entries', async () => {
    const data = join(dir.path, 'data-1');
    const netlock = join(dir.path, 'one.netlock.json');
    await record(data, netlock, ['/a', '/b', '/c'], 'SIGKILL');
    const recovered = await cli(['recover', '--netlock', netlock, '--data', data], { env: env() });
    expect(recovered.code, recovered.stderr).toBe(0);
    expect(recovered.stdout).toMatch(/recovered 3 entries/);
    expect(urls(await readView(netlock))).toEqual(['/a', '/b', '/c']);

    const log = await record(data, netlock, ['/d'], 'SIGTERM');
    expect(log).toMatch(/keeping the 3 verified entries of the netlock \S+ already at .*one\.netlock\.json;/);
    // `recover` wrote that file: its signatures were checked now, not taken as checked before.
    expect(log).not.toMatch(/checked by an earlier run/);
    expect(urls(await readView(netlock)), log).toEqual(['/a', '/b', '/c', '/d']);
    expect(origin.hits.get('/a')).toBe(1);
  }, 60_000);

  it('a clean run after a clean run adds to the netlock; recover after a crash keeps what the file held', async () => {
    const data = join(dir.path, 'data-2');
    const netlock = join(dir.path, 'two.netlock.json');
    await record(data, netlock, ['/a', '/b'], 'SIGTERM');
    const second = await record(data, netlock, ['/b', '/c'], 'SIGTERM');
    // A netlock a run of this data directory wrote is kept without its signatures checked again (issue #15).
    expect(second).toMatch(/keeping the 2 verified entries of the netlock \S+ already at \S+ \(its signatures checked by an earlier run of this data directory\)/);
    const both = await readView(netlock);
    expect(urls(both)).toEqual(['/a', '/b', '/c']);
    // A run that keeps those three is killed after one new request: the file is as it was, the journal has /e.
    await record(data, netlock, ['/e'], 'SIGKILL');
    expect((await readView(netlock)).netlock).toBe(both.netlock);
    const recovered = await cli(['recover', '--netlock', netlock, '--data', data], { env: env() });
    expect(recovered.code, recovered.stderr).toBe(0);
    expect(recovered.stdout).toMatch(/recovered 1 entries into \S+, kept the 3 it held: 4 in all/);
    expect(urls(await readView(netlock))).toEqual(['/a', '/b', '/c', '/e']);
    // The same crash without `recover`: the next run keeps the file and restores the journal.
    await record(data, netlock, ['/f'], 'SIGKILL');
    const log = await record(data, netlock, [], 'SIGTERM');
    expect(log).toMatch(/keeping the 4 verified entries/);
    expect(log).toMatch(/recovered 1 request/);
    expect(urls(await readView(netlock))).toEqual(['/a', '/b', '/c', '/e', '/f']);
  }, 90_000);

  it('refuses, before listening, a netlock file at the path that cannot be read or verified, and leaves it as it was', async () => {
    const data = join(dir.path, 'data-3');
    const good = join(dir.path, 'three.netlock.json');
    await record(data, good, ['/a', '/b'], 'SIGTERM');
    const goodText = await readFile(good, 'utf8');
    const cases: Array<{ name: string; netlock: string; data: string; why: RegExp }> = [];
    const garbage = join(dir.path, 'garbage.netlock.json');
    await writeFile(garbage, '{"netlock": "not a cid", "entries": [');
    cases.push({ name: 'not JSON', netlock: garbage, data, why: /not valid JSON/ });
    // A netlock from another data directory: its blocks are not in this one.
    cases.push({ name: 'blocks elsewhere', netlock: good, data: join(dir.path, 'data-empty'), why: /ORACLE_ERR_BLOCK_MISSING|not in the store/ });
    // A record block changed on disk.
    const tampered = join(dir.path, 'data-3-tampered');
    await run('cp', ['-a', data, tampered]);
    const record0 = (JSON.parse(goodText) as FileView).entries[0]!.record;
    await tamperBlock(tampered, record0, 'not the record');
    cases.push({ name: 'corrupt record', netlock: good, data: tampered, why: /does not hash to its CID/ });
    for (const c of cases) {
      const before = await readFile(c.netlock, 'utf8');
      const r = await cli(['record', '--listen', '127.0.0.1:0', '--data', c.data, '--netlock', c.netlock], { env: env(), timeoutMs: 30_000 });
      expect(r.code, `${c.name}: ${r.stdout}${r.stderr}`).toBe(1);
      expect(r.stdout, c.name).not.toMatch(/listening/);
      expect(r.stderr, c.name).toMatch(/ORACLE_ERR_INVALID_NETLOCK/);
      expect(r.stderr, c.name).toMatch(/exists but cannot be kept/);
      expect(r.stderr, c.name).toMatch(c.why);
      expect(r.stderr, c.name).toMatch(/move the file away \(or pass another --netlock\)/);
      expect(await readFile(c.netlock, 'utf8'), c.name).toBe(before);
    }
    expect(await readFile(good, 'utf8')).toBe(goodText);
  }, 90_000);
});
