import { afterEach, describe, expect, it } from 'vitest';
import { growthPercentFor, HeapGrowth, MAX_GROWTH_PERCENT, MIN_GROWTH_PERCENT, MIN_HEADROOM_BYTES, SMALL_HEAP_BYTES } from '../../src/cli/heap-growth.ts';

const MiB = 1024 * 1024;

describe('growthPercentFor', () => {
  it('leaves at least MIN_HEADROOM_BYTES above a small heap, and no more than it takes', () => {
    for (const heap of [16, 17, 20, 24, 31, 32].map((m) => m * MiB)) {
      const percent = growthPercentFor(heap);
      expect(percent % 5).toBe(0);
      expect((heap * percent) / 100).toBeGreaterThanOrEqual(MIN_HEADROOM_BYTES);
      expect((heap * (percent - 5)) / 100).toBeLessThan(MIN_HEADROOM_BYTES);
    }
    expect(growthPercentFor(17 * MiB)).toBe(240);
  });

  it('grows a heap over SMALL_HEAP_BYTES by MIN_GROWTH_PERCENT, as a large replay needs', () => {
    expect(growthPercentFor(SMALL_HEAP_BYTES + 1)).toBe(MIN_GROWTH_PERCENT);
    expect(growthPercentFor(50 * MiB)).toBe(MIN_GROWTH_PERCENT);
    expect(growthPercentFor(2 ** 40)).toBe(MIN_GROWTH_PERCENT);
  });

  it('bounds the growth of a near-empty heap', () => {
    expect(growthPercentFor(1 * MiB)).toBe(MAX_GROWTH_PERCENT);
    expect(growthPercentFor(0)).toBe(MAX_GROWTH_PERCENT);
  });
});

describe('HeapGrowth', () => {
  let growth: HeapGrowth | undefined;
  afterEach(() => growth?.close());

  /** A heap of `heap` bytes whose collections the test runs by hand. */
  function fakeHeap(heap: { bytes: number }) {
    const set: number[] = [];
    let afterGc: (() => void) | undefined;
    let stopped = 0;
    const hooks = {
      heapBytes: () => heap.bytes,
      setPercent: (p: number) => set.push(p),
      afterEachGc: (callback: () => void) => {
        afterGc = callback;
        return () => void stopped++;
      },
    };
    return { set, hooks, collect: () => afterGc?.(), stopped: () => stopped };
  }

  it('sets the growth at once, then after a collection only when the heap size calls for another', () => {
    const heap = { bytes: 17 * MiB };
    const fake = fakeHeap(heap);
    growth = new HeapGrowth(fake.hooks);
    expect(fake.set).toEqual([240]);
    expect(growth.percent).toBe(240);
    fake.collect();
    fake.collect();
    expect(fake.set).toEqual([240]); // unchanged heap: V8's flag is not set again
    heap.bytes = 60 * MiB;
    fake.collect();
    expect(fake.set).toEqual([240, MIN_GROWTH_PERCENT]);
    heap.bytes = 24 * MiB;
    fake.collect();
    expect(fake.set).toEqual([240, MIN_GROWTH_PERCENT, 170]);
  });

  it('stops following collections once closed, and closes twice without harm', () => {
    const fake = fakeHeap({ bytes: 17 * MiB });
    growth = new HeapGrowth(fake.hooks);
    growth.close();
    growth.close();
    expect(fake.stopped()).toBe(1);
  });

  it('follows V8s own collections by default', async () => {
    const set: number[] = [];
    let bytes = 17 * MiB;
    growth = new HeapGrowth({ heapBytes: () => bytes, setPercent: (p) => set.push(p) });
    bytes = 60 * MiB;
    // Allocate until V8 collects the young generation: its 'gc' entry reaches the observer.
    const deadline = Date.now() + 5000;
    while (set.length < 2 && Date.now() < deadline) {
      let junk: unknown[] = [];
      for (let i = 0; i < 100_000; i++) junk.push({ i });
      junk = [];
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(set).toEqual([240, MIN_GROWTH_PERCENT]);
  });
});
