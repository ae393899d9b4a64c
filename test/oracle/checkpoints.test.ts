import { describe, expect, it } from 'vitest';
import { StoreError } from '../../src/errors.ts';
import { NOOP_LOGGER } from '../../src/log.ts';
import { Checkpoints } from '../../src/oracle/checkpoints.ts';
import type { SyncPolicy } from '../../src/oracle/checkpoints.ts';

/** A store and two logs that note, in one list, when each sync starts and ends (each takes a few ms). */
function parts(options: { failFlushes?: number } = {}) {
  const events: string[] = [];
  let failures = options.failFlushes ?? 0;
  const slow = async (name: string): Promise<void> => {
    events.push(`${name} start`);
    await new Promise((done) => setTimeout(done, 5));
    events.push(`${name} end`);
  };
  const store = {
    sync: async (): Promise<void> => {
      await slow('store');
      if (failures-- > 0) throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    },
  };
  const logs = [{ sync: () => slow('index') }, { sync: () => slow('journal') }];
  return { events, store, logs };
}

function checkpoints(policy: SyncPolicy, options?: { failFlushes?: number }) {
  const p = parts(options);
  return { ...p, cp: new Checkpoints({ store: p.store, logs: p.logs }, policy, NOOP_LOGGER) };
}

describe('Checkpoints', () => {
  it('with each: a record resolves only once the store, then both logs, are synced', async () => {
    const { cp, events } = checkpoints('each');
    await cp.recorded();
    expect(events.slice(0, 2)).toEqual(['store start', 'store end']);
    expect(events.slice(2).sort()).toEqual(['index end', 'index start', 'journal end', 'journal start']);
    expect(cp.completed).toBe(1);
  });

  it('with each: records that arrive while a checkpoint runs share the next one (group commit)', async () => {
    const { cp } = checkpoints('each');
    const first = cp.recorded();
    await new Promise((done) => setImmediate(done)); // the first one is running
    await Promise.all([first, ...Array.from({ length: 20 }, () => cp.recorded())]);
    expect(cp.completed).toBe(2);
  });

  it('with an interval: a record returns at once, and one checkpoint follows within the interval for all of them', async () => {
    const { cp, events } = checkpoints({ everyMs: 30 });
    for (let i = 0; i < 10; i++) expect(cp.recorded()).toBeUndefined();
    expect(events).toEqual([]);
    await expect.poll(() => cp.completed, { timeout: 2000 }).toBe(1);
    expect(events[0]).toBe('store start');
    expect(events.indexOf('store end')).toBeLessThan(events.indexOf('index start'));
    await new Promise((done) => setTimeout(done, 80));
    expect(cp.completed).toBe(1); // nothing new was recorded: no more checkpoints
  });

  it('a checkpoint with nothing written since the last one syncs nothing', async () => {
    const { cp, events } = checkpoints({ everyMs: 60_000 });
    await cp.checkpoint();
    expect(events).toEqual([]);
    expect(cp.recorded()).toBeUndefined();
    await cp.checkpoint();
    await cp.checkpoint();
    expect(cp.completed).toBe(1);
  });

  it('close does the last checkpoint, once, and no timer fires after it', async () => {
    const { cp, events } = checkpoints({ everyMs: 20 });
    expect(cp.recorded()).toBeUndefined();
    await Promise.all([cp.close(), cp.close()]);
    expect(cp.completed).toBe(1);
    const seen = events.length;
    await new Promise((done) => setTimeout(done, 60));
    expect(events.length).toBe(seen);
  });

  it('after a failed checkpoint every later record is refused with a StoreError, and the sync is not tried again', async () => {
    const { cp, events } = checkpoints('each', { failFlushes: 1 });
    const failed = await Promise.resolve(cp.recorded()).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(StoreError);
    expect((failed as StoreError).code).toBe('ORACLE_ERR_STORE');
    expect((failed as Error).message).toMatch(/could not be synced \(EIO: i\/o error, fdatasync\).*records nothing more/);
    expect(events).not.toContain('index start'); // the lines never go on disk ahead of their blocks
    expect(() => cp.throwIfFailed()).toThrow(StoreError);
    expect(() => cp.recorded()).toThrow(StoreError);
    await expect(cp.checkpoint()).rejects.toBe(failed);
    expect(events.filter((e) => e === 'store start')).toHaveLength(1);
  });
});
