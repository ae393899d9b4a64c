import { constants, PerformanceObserver } from 'node:perf_hooks';
import type { PerformanceEntry } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { bodyBytesReceived, paceYoungCollections, YOUNG_GC_EVERY_BYTES, YoungGcPacer } from '../../src/io/young-gc.ts';

const KiB = 1024;

describe('YoungGcPacer', () => {
  it('collects each time a body passes another YOUNG_GC_EVERY_BYTES, counted in its own bytes', () => {
    let collections = 0;
    const pacer = new YoungGcPacer(() => collections++);
    const chunk = 64 * KiB;
    let body = 0;
    for (let i = 0; i < YOUNG_GC_EVERY_BYTES / chunk - 1; i++) pacer.received((body += chunk), chunk);
    expect(collections).toBe(0);
    pacer.received((body += chunk), chunk); // the chunk that makes 4 MiB
    expect(collections).toBe(1);
    for (let i = 0; i < (3 * YOUNG_GC_EVERY_BYTES) / chunk; i++) pacer.received((body += chunk), chunk);
    expect(collections).toBe(4);
  });

  it('never collects for bodies smaller than the pace, however many', () => {
    let collections = 0;
    const pacer = new YoungGcPacer(() => collections++, 1000);
    for (let body = 0; body < 100; body++) for (let got = 100; got <= 900; got += 100) pacer.received(got, 100);
    expect(collections).toBe(0);
  });

  it('collects once for a chunk that passes one or more multiples at once', () => {
    let collections = 0;
    const pacer = new YoungGcPacer(() => collections++, 1000);
    pacer.received(5000, 5000);
    expect(collections).toBe(1);
    pacer.received(5999, 999);
    expect(collections).toBe(1);
    pacer.received(6000, 1);
    expect(collections).toBe(2);
  });
});

describe('paceYoungCollections', () => {
  it('makes a large body run real young collections of V8, and exposes no global gc', async () => {
    const minors: PerformanceEntry[] = [];
    const observer = new PerformanceObserver((list) => minors.push(...list.getEntries().filter((e) => (e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR)));
    observer.observe({ entryTypes: ['gc'] });
    try {
      expect(paceYoungCollections()).toBe(true);
      expect(paceYoungCollections()).toBe(true); // idempotent
      expect('gc' in globalThis).toBe(false);
      // Nothing else in this test allocates enough to collect the young generation by itself.
      for (let i = 1; i <= 4; i++) bodyBytesReceived(i * YOUNG_GC_EVERY_BYTES, YOUNG_GC_EVERY_BYTES);
      await new Promise((resolve) => setTimeout(resolve, 50)); // gc entries are delivered asynchronously
      expect(minors.length).toBeGreaterThanOrEqual(4);
    } finally {
      observer.disconnect();
    }
  });
});
