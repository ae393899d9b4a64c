import { describe, expect, it } from 'vitest';
import { syncInitFromFlags } from '../../src/cli/front-flags.ts';
import { InvalidConfigError } from '../../src/errors.ts';
import { cliInProcess } from '../helpers/cli-in-process.ts';

describe('--sync each|DUR', () => {
  it('is each, or a duration to the millisecond; absent, it sets nothing (the 1 s default applies)', () => {
    expect(syncInitFromFlags({})).toEqual({});
    expect(syncInitFromFlags({ sync: 'each' })).toEqual({ sync: 'each' });
    expect(syncInitFromFlags({ sync: '250ms' })).toEqual({ sync: { everyMs: 250 } });
    expect(syncInitFromFlags({ sync: '2' })).toEqual({ sync: { everyMs: 2000 } });
    expect(syncInitFromFlags({ sync: '1m' })).toEqual({ sync: { everyMs: 60_000 } });
  });

  it('refuses anything else, naming the flag and what it takes', () => {
    for (const bad of ['never', '0', '-1s', '25h', '']) {
      expect(() => syncInitFromFlags({ sync: bad }), bad).toThrow(InvalidConfigError);
      expect(() => syncInitFromFlags({ sync: bad }), bad).toThrow(/--sync/);
    }
  });

  it('is refused as a record option (exit 2, nothing started) by replay, run --replay and build --replay', async () => {
    const r = await cliInProcess(['replay', '--netlock', 'none.netlock.json', '--sync', 'each']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--sync is a record option: replay writes no records');
    for (const args of [['run', '--replay', 'none.netlock.json', '--sync', 'each', '--', 'true'], ['build', '--replay', 'none.netlock.json', '--sync', '1s', '.']]) {
      const refused = await cliInProcess(args);
      expect(refused.code, args[0]).toBe(2);
      expect(refused.stderr, args[0]).toContain('--sync is a record option; with --replay FILE the netlock is FILE and nothing is fetched');
    }
  });
});
