/**
 * When a record run puts what it wrote on disk (docs/formats.md, "Durability"), seen from the outside: the
 * real `fetch-oracle record` runs under strace, which logs every fdatasync, fsync, rename and unlink with
 * the path of its file. Blocks (pack entries, 1 MiB leaf files and their folders) must be synced before the
 * lines that name them, the netlock file before the journal that could rebuild it is removed; with `--sync
 * each` before every answer, with a checkpoint interval not once per answer.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pseudoRandomChunks, startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { run, startDaemon, tempDir } from '../helpers/run.ts';

/** One completed syscall: which, on what path (a descriptor's file, or the first path argument). */
interface Call {
  call: string;
  path: string;
}

/**
 * The completed calls in the order strace saw them end. With -f a call another thread interrupts is logged
 * as `<unfinished ...>` and completed by a `<... NAME resumed>` line of the same thread: it counts there.
 */
function tracedCalls(log: string): Call[] {
  const pending = new Map<string, Call>();
  const calls: Call[] = [];
  for (const line of log.split('\n')) {
    const m = /^(\d+)\s+(?:(\w+)\((?:\d+<([^>]*)>|"([^"]*)")(.*)|<\.\.\. (\w+) resumed>(.*))$/.exec(line);
    if (m === null) continue;
    const [, tid, name, fdPath, argPath, rest, resumedName, resumedRest] = m;
    if (name !== undefined) {
      const call = { call: name, path: fdPath ?? argPath ?? '' };
      if (rest!.includes('<unfinished ...>')) pending.set(tid!, call);
      else if (/= 0$/.test(rest!)) calls.push(call);
    } else {
      const call = pending.get(tid!);
      pending.delete(tid!);
      if (call !== undefined && call.call === resumedName && /= 0$/.test(resumedRest!)) calls.push(call);
    }
  }
  return calls;
}

describe('record durability, traced with strace', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  const env = (): NodeJS.ProcessEnv => ({ PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir.path });
  // Three full 1 MiB leaves of different bytes (block files) and a small last one (packed).
  const big = Buffer.concat([...pseudoRandomChunks(3 * 1024 * 1024 + 100)]);

  beforeAll(async () => {
    dir = await tempDir('fo-durability-');
    origin = await startOrigin();
    origin.route('*', (q, r) => void r.end(q.url === '/big' ? big : `small body ${q.url}\n`));
  });

  afterAll(async () => {
    await origin?.close();
    await dir?.remove();
  });

  /** A record run under strace that fetches `paths` one after the other with curl, then stops (SIGTERM to node). */
  async function tracedRecord(name: string, sync: string, paths: string[]): Promise<{ calls: Call[]; data: string; netlock: string }> {
    const data = join(dir.path, `data-${name}`);
    const netlock = join(dir.path, `${name}.netlock.json`);
    const log = join(dir.path, `${name}.strace`);
    const under = ['strace', '-f', '-y', '-qq', '-e', 'trace=fdatasync,fsync,rename,unlink', '-o', log];
    const d = await startDaemon(['record', '--listen', '127.0.0.1:0', '--data', data, '--netlock', netlock, '--sync', sync], env(), under);
    for (const p of paths) {
      const r = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', '-x', d.url, `${origin.url}${p}`], { env: env() });
      expect(r.stdout, r.stderr).toBe(`200 ${p === '/big' ? big.byteLength : `small body ${p}\n`.length}`);
    }
    const exited = once(d.child, 'exit');
    const node = readFileSync(`/proc/${d.child.pid}/task/${d.child.pid}/children`, 'utf8').trim().split(/\s+/)[0];
    process.kill(Number(node), 'SIGTERM'); // strace passes no signal on: the traced process is told itself
    await exited;
    expect(d.stderr()).toMatch(/wrote netlock/);
    return { calls: tracedCalls(await readFile(log, 'utf8')), data, netlock };
  }

  it('with --sync 60s: blocks, leaf files and their folders, then the lines, once at the end; then the netlock; then the journal goes', async () => {
    const paths = [...Array.from({ length: 12 }, (_, i) => `/s${i}`), '/big'];
    const { calls, data, netlock } = await tracedRecord('interval', '60s', paths);
    const at = (test: (c: Call) => boolean): number[] => calls.flatMap((c, i) => (test(c) ? [i] : []));
    const index = at((c) => c.call === 'fdatasync' && c.path === join(data, 'records.jsonl'));
    const journal = at((c) => c.call === 'fdatasync' && c.path === `${netlock}.journal`);
    const packs = at((c) => c.call === 'fdatasync' && c.path.startsWith(join(data, 'blocks', 'packs') + '/'));
    const leaves = at((c) => c.call === 'fdatasync' && /\/blocks\/[a-z2-7]{2}\/b[a-z2-7]+$/.test(c.path));
    const folders = at((c) => c.call === 'fsync' && (c.path === join(data, 'blocks') || /\/blocks\/([a-z2-7]{2}|packs)$/.test(c.path)));
    // Thirteen records, one checkpoint: at the end of the run, before its netlock.
    expect(index, JSON.stringify(calls, null, 1)).toHaveLength(1);
    expect(journal).toHaveLength(1);
    expect(leaves).toHaveLength(3);
    expect(packs.length).toBeGreaterThanOrEqual(1);
    expect(folders.length).toBeGreaterThanOrEqual(2); // the packs folder and the leaves' shard(s)
    const lines = Math.min(index[0]!, journal[0]!);
    expect(Math.max(packs[0]!, ...leaves, ...folders.filter((i) => i < lines))).toBeLessThan(lines);
    // The netlock: its pages synced, its file synced under the temporary name, renamed, its folder synced, then the journal removed.
    const netlockSync = at((c) => c.call === 'fsync' && c.path.startsWith(`${netlock}.`) && c.path.endsWith('.tmp'));
    const renamed = at((c) => c.call === 'rename' && c.path.startsWith(`${netlock}.`));
    const journalGone = at((c) => c.call === 'unlink' && c.path === `${netlock}.journal`);
    expect(netlockSync).toHaveLength(1);
    expect(packs.some((i) => i > lines && i < netlockSync[0]!)).toBe(true);
    expect(netlockSync[0]!).toBeLessThan(renamed[0]!);
    expect(renamed[0]!).toBeLessThan(journalGone[0]!);
    expect(calls.slice(renamed[0], journalGone[0]).some((c) => c.call === 'fsync' && c.path === dir.path)).toBe(true);
    expect(JSON.parse(await readFile(netlock, 'utf8'))).toMatchObject({ count: 13 });
  });

  it('with --sync each: every new record is synced, blocks first, before its answer ends', async () => {
    const paths = Array.from({ length: 8 }, (_, i) => `/e${i}`);
    const { calls, data } = await tracedRecord('each', 'each', paths);
    const index = calls.flatMap((c, i) => (c.call === 'fdatasync' && c.path === join(data, 'records.jsonl') ? [i] : []));
    // One sync of the index per request (curl waits for each answer), and the store's before each of them.
    expect(index.length, JSON.stringify(calls, null, 1)).toBeGreaterThanOrEqual(paths.length);
    let from = 0;
    for (const i of index.slice(0, paths.length)) {
      expect(calls.slice(from, i).some((c) => c.call === 'fdatasync' && c.path.includes('/blocks/packs/'))).toBe(true);
      from = i + 1;
    }
  });
});
