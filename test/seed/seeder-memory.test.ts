import { describe, expect, it } from 'vitest';
import type { DecodedEntry } from '../../src/netlock/file.ts';
import { seed } from '../../src/seed/seeder.ts';
import type { SeedRecorder } from '../../src/seed/session.ts';
import type { SeedEntry, SeedPlan } from '../../src/seed/types.ts';
import { collectGarbage } from '../helpers/gc.ts';

/** A lockfile's plan of `count` entries, and weak references to them (nothing else here holds them). */
function lockPlan(count: number): { plans: SeedPlan[]; entries: WeakRef<SeedEntry>[] } {
  const entries: SeedEntry[] = Array.from({ length: count }, (_, i) => ({ source: { file: 'package-lock.json', line: i + 2, name: `p${i}` }, url: `http://127.0.0.1:9/p${i}.tgz`, accept: '*/*', expect: [] }));
  return { plans: [{ entries, resolvers: [], warnings: [] }], entries: entries.map((e) => new WeakRef(e)) };
}

const RECORDED = { record: { response: { status: 200, size: 1, headers: [] } } } as unknown as DecodedEntry;

describe('seed memory', () => {
  it('holds none of a plan\'s entries while the run goes on (they are queued packed), when no resolver can add entries', async () => {
    const { plans, entries } = lockPlan(40);
    let calls = 0;
    const held: number[] = [];
    const recorder: SeedRecorder = {
      record: async () => {
        // A macrotask between records, so no WeakRef target is still kept for the job that made it.
        await new Promise((resolve) => setImmediate(resolve));
        if (++calls === 30) {
          collectGarbage();
          for (let i = 0; i < 20; i++) if (entries[i]!.deref() !== undefined) held.push(i);
        }
        return { entry: RECORDED, fetched: true };
      },
      bodyReader: () => {
        throw new Error('no body is read here');
      },
    };
    const result = await seed(plans.splice(0), { recorder, concurrency: 1 });
    expect(result).toMatchObject({ total: 40, done: 40, fetched: 40, failed: 0, duplicates: 0 });
    expect(held).toEqual([]);
  });
});
