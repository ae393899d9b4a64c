import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIVE_HEAD_MIN_INTERVAL_MS, LiveNetlockHead } from '../../src/oracle/live-head.ts';
import type { WrittenNetlock } from '../../src/netlock/file.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import type { TestOracle } from '../helpers/oracle.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { tempDir } from '../helpers/run.ts';

interface Poll {
  entriesVersion: string;
  entries?: Array<{ u: string; s: number }>;
  entriesFrom?: number;
  totals: { entries: number; bytes: number; hosts: number };
  netlock: { root: string; count: number };
}

describe('the live page over a growing record run', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  let oracle: TestOracle;
  let admin: string;
  let tries = 0;

  beforeAll(async () => {
    dir = await tempDir('fo-live-entries-');
    origin = await startOrigin();
    for (const p of ['/a', '/b', '/c']) {
      origin.route(p, (_q, r) => {
        r.writeHead(200, { 'content-type': 'text/plain' });
        r.end(`body of ${p}`);
      });
    }
    // A 5xx is fetched again at each request in record mode: a different body replaces its entry.
    origin.route('/flaky', (_q, r) => {
      r.writeHead(503, { 'content-type': 'text/plain' });
      r.end(`try ${++tries}`);
    });
    oracle = await startTestOracle({ mode: 'record', dataDir: join(dir.path, 'data'), netlockPath: join(dir.path, 'netlock.json'), admin: { host: '127.0.0.1', port: 0 } });
    admin = `http://127.0.0.1:${oracle.oracle.adminAddress()!.port}`;
  });

  afterAll(async () => {
    await oracle?.close();
    await origin?.close();
    await dir?.remove();
  });

  const poll = async (have?: string): Promise<Poll> => (await (await fetch(`${admin}/report.json${have === undefined ? '' : `?have=${encodeURIComponent(have)}`}`)).json()) as Poll;
  const paths = (p: Poll): string[] => (p.entries ?? []).map((e) => new URL(e.u).pathname);

  it('sends a page only the entries added since its version, every entry when one was replaced or the version is not this run\'s', async () => {
    await oracle.fetch(`${origin.url}/a`);
    const first = await poll();
    expect(paths(first)).toEqual(['/a']);
    expect(first.entriesFrom).toBeUndefined();
    expect(first.totals.entries).toBe(1);

    await oracle.fetch(`${origin.url}/b`);
    await oracle.fetch(`${origin.url}/flaky`);
    const added = await poll(first.entriesVersion);
    expect(added.entriesFrom).toBe(1);
    expect(paths(added)).toEqual(['/b', '/flaky']);
    // Totals over added rows alone would be wrong: the page counts them over all it holds.
    expect(added.totals.entries).toBe(-1);
    expect((await poll(added.entriesVersion)).entries).toBeUndefined();

    // Fetched again, the 503 differs: its entry is replaced, so the page gets every row (and the new version).
    expect((await oracle.fetch(`${origin.url}/flaky`)).status).toBe(503);
    const replaced = await poll(added.entriesVersion);
    expect(replaced.entriesFrom).toBeUndefined();
    expect(paths(replaced)).toEqual(['/a', '/b', '/flaky']);
    expect(replaced.totals.entries).toBe(3);

    await oracle.fetch(`${origin.url}/c`);
    const fromOtherRun = await poll(replaced.entriesVersion.replace(/^record:[0-9a-f]+:/, 'record:000000000000:'));
    expect(fromOtherRun.entriesFrom).toBeUndefined();
    expect(paths(fromOtherRun)).toEqual(['/a', '/b', '/flaky', '/c']);
    for (const bad of ['', 'record', 'replay:x', `${replaced.entriesVersion.replace(/:\d+:(\d+)$/, ':99:$1')}`]) {
      const p = await poll(bad);
      expect(p.entriesFrom, bad).toBeUndefined();
      expect(paths(p), bad).toEqual(['/a', '/b', '/flaky', '/c']);
    }
    expect(paths(await poll(replaced.entriesVersion))).toEqual(['/c']);
  });
});

describe('LiveNetlockHead', () => {
  const written = (count: number): WrittenNetlock => ({ netlock: `bafyroot${count}`, version: 1, keyVersion: 1, count, oracles: ['ab'] });

  /** Lets a build started in the background finish. */
  const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

  it('rebuilds when the run changed, no sooner than the interval nor for more than a tenth of the time, while polls get the last head', async () => {
    let clock = 0;
    let version = 1;
    let builds = 0;
    let buildMs = 10;
    const head = new LiveNetlockHead(() => {
      builds++;
      clock += buildMs;
      return Promise.resolve(written(version));
    }, () => String(version), () => clock);
    // The first poll waits for the first head; concurrent ones share its build.
    const [a, b] = await Promise.all([head.current(), head.current()]);
    expect([a.count, b.count, builds]).toEqual([1, 1, 1]);
    // Unchanged: no build, however long after.
    clock += 60_000;
    expect((await head.current()).count).toBe(1);
    expect(builds).toBe(1);
    // Changed: the polls get the last head at once while one rebuild runs, then the new one.
    version = 2;
    buildMs = 500;
    expect((await Promise.all([head.current(), head.current()])).map((h) => h.count)).toEqual([1, 1]);
    await settled();
    expect((await head.current()).count).toBe(2);
    expect(builds).toBe(2);
    // Changed again within the interval: the last head, whose count says what it covers.
    version = 3;
    clock += LIVE_HEAD_MIN_INTERVAL_MS - 1;
    expect((await head.current()).count).toBe(2);
    // The last build took 500 ms: the next comes 5 s after it, not 2 s.
    clock += 2_000;
    await head.current();
    await settled();
    expect(builds).toBe(2);
    clock += 3_000;
    expect((await head.current()).count).toBe(2);
    await settled();
    expect((await head.current()).count).toBe(3);
    expect(builds).toBe(3);
  });

  it('keeps the last head when a rebuild fails, fails a poll only when there is none, and builds again when due', async () => {
    let fail = true;
    let version = 1;
    const head = new LiveNetlockHead(() => (fail ? Promise.reject(new Error('spill file closed')) : Promise.resolve(written(version))), () => String(version), () => 1e9 * version);
    await expect(head.current()).rejects.toThrow(/spill file closed/);
    fail = false;
    expect((await head.current()).count).toBe(1);
    fail = true;
    version = 2;
    expect((await head.current()).count).toBe(1);
    await settled();
    expect((await head.current()).count).toBe(1);
    fail = false;
    await settled();
    expect((await head.current()).count).toBe(1);
    await settled();
    expect((await head.current()).count).toBe(2);
  });
});
