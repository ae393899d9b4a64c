/**
 * A record path whose data directory cannot be synced (the store's sync fails as an EIO would): the records
 * it was writing are refused with the failure, it records nothing more, writes no netlock, and closing it
 * still closes its files (the index, the journal, its scratch file) before it reports the failure.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreError } from '../../src/errors.ts';
import { NOOP_LOGGER } from '../../src/log.ts';
import { RecordPath } from '../../src/oracle/record-path.ts';
import type { SyncPolicy } from '../../src/oracle/checkpoints.ts';
import { createStats } from '../../src/oracle/stats.ts';
import type { BlockStore } from '../../src/store/block-store.ts';
import { FsBlockStore } from '../../src/store/fs-block-store.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { tempDir } from '../helpers/run.ts';

/** The real store, but its sync fails the way fdatasync does on a failing disk. */
function unsyncable(store: FsBlockStore): BlockStore {
  const eio = (): Promise<void> => Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
  return new Proxy(store, { get: (target, prop) => (prop === 'sync' ? eio : (Reflect.get(target, prop, target) as unknown as (...a: unknown[]) => unknown).bind?.(target) ?? Reflect.get(target, prop, target)) });
}

/** Paths under `dir` this process holds open. */
function openUnder(dir: string): string[] {
  return readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      return target.startsWith(dir) ? [target] : [];
    } catch {
      return [];
    }
  });
}

describe('a record path that cannot sync', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;

  beforeAll(async () => {
    dir = await tempDir('fo-unsyncable-');
    origin = await startOrigin();
    origin.route('*', (q, r) => void r.end(`body of ${q.url}\n`));
  });

  afterAll(async () => {
    await origin?.close();
    await dir?.remove();
  });

  async function open(name: string, sync: SyncPolicy): Promise<{ path: RecordPath; data: string; store: FsBlockStore }> {
    const data = join(dir.path, name);
    const store = new FsBlockStore(data);
    const path = await RecordPath.open({ store: unsyncable(store), dataDir: data, netlockPath: join(data, 'run.netlock.json'), stats: createStats('record'), logger: NOOP_LOGGER, sync });
    return { path, data, store };
  }

  const get = (path: RecordPath, p: string) => path.recorder.recordDirect({ method: 'GET', url: `${origin.url}${p}`, headers: [] });

  it('with --sync each: the first record is refused with the failure, and so is every later one', async () => {
    const { path, data, store } = await open('each', 'each');
    const first = await get(path, '/a').catch((e: unknown) => e);
    expect(first).toBeInstanceOf(StoreError);
    expect((first as Error).message).toMatch(/could not be synced \(EIO: i\/o error, fdatasync\)/);
    const hitsBefore = origin.hits.get('/b') ?? 0;
    await expect(get(path, '/b')).rejects.toBe(first);
    expect(origin.hits.get('/b') ?? 0).toBe(hitsBefore + 1); // fetched, then refused before anything was written
    await expect(path.writeNetlock()).rejects.toBe(first);
    await expect(path.close()).rejects.toBe(first);
    // The index, the journal and the run's scratch file are closed; the store is its owner's to close.
    expect(openUnder(data).filter((p) => !p.includes('/blocks/'))).toEqual([]);
    await path.close(); // idempotent: nothing left to close
    await store.close();
    expect(openUnder(data)).toEqual([]);
  });

  it('with a checkpoint interval: records are answered until the checkpoint fails, then refused; close reports it', async () => {
    const { path, data, store } = await open('interval', { everyMs: 20 });
    expect((await get(path, '/c')).fetched).toBe(true);
    await expect.poll(() => get(path, `/d${Date.now()}`).then(() => undefined, (e: unknown) => e), { timeout: 5000 }).toBeInstanceOf(StoreError);
    await expect(path.close()).rejects.toBeInstanceOf(StoreError);
    await store.close();
    expect(openUnder(data)).toEqual([]);
  });
});
