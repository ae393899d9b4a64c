/**
 * How far V8 lets the old generation grow past what a full collection kept, set from the heap's size.
 *
 * Two loads pull opposite ways (issue #15):
 * - Replaying a 100,000-entry netlock keeps ~50 MB live and drops records as it goes. V8's own growth
 *   (up to 4x) took it to 230-290 MB of RSS; growing by 25% gave 166-175 MB.
 * - Recording keeps ~17 MB live while every socket read brings a fresh 64 KiB buffer. V8 counts buffer
 *   bytes allocated since the last full collection against the old generation's limit; the buffers die
 *   young, but a young collection only comes after ~32 MB of them. With 25% of 17 MB (plus V8's minimum
 *   step) as the whole headroom, a full collection started every ~13 MB: 50-55 for a 1 GiB body, a fifth
 *   of its record's CPU; 20 for `seed`'s 1,500 packages, a quarter of its time.
 * So a small heap (a recording's) gets MIN_HEADROOM_BYTES of room, for a young collection to free those
 * buffers first; one over SMALL_HEAP_BYTES (a big netlock's replay) grows by MIN_GROWTH_PERCENT as before.
 * V8 applies the growth to the heap's size at the end of its next full collection, so it is set again
 * after every collection, young ones included, from the size then. Measured and dropped:
 * - the growth set once a second: it was applied to heaps that had grown since, and a record run reading
 *   back a 170,000-entry netlock peaked at 215 MB against 160;
 * - a share of the heap, never less than 48 MiB: the 100,000-entry replay at 195-201 MB against 182;
 * - 25% throughout with a young collection forced every 4 MiB of a body (V8's `gc`, exposed): as good for
 *   one big body, but `seed` kept its 20 full collections.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';

/** Room above a small heap: more than the ~32 MB of young buffers after which V8 collects the young generation. */
export const MIN_HEADROOM_BYTES = 40 * 1024 * 1024;
/** Heaps up to this size get MIN_HEADROOM_BYTES; larger ones MIN_GROWTH_PERCENT. */
export const SMALL_HEAP_BYTES = 32 * 1024 * 1024;
/** Growth of heaps over SMALL_HEAP_BYTES. */
export const MIN_GROWTH_PERCENT = 25;
/** Growth of the smallest heaps (below 16 MiB): a bound, so that a near-empty heap is not given 10x. */
export const MAX_GROWTH_PERCENT = 300;
/** The growth, in percent, for a heap of `heapBytes`: MIN_HEADROOM_BYTES of room while it is small (rounded up to 5%). */
export function growthPercentFor(heapBytes: number): number {
  if (heapBytes > SMALL_HEAP_BYTES) return MIN_GROWTH_PERCENT;
  const wanted = (100 * MIN_HEADROOM_BYTES) / Math.max(heapBytes, 1);
  return Math.min(MAX_GROWTH_PERCENT, Math.ceil(wanted / 5) * 5);
}

export interface HeapGrowthHooks {
  /** Bytes the heap holds now. @default V8's used_heap_size */
  heapBytes?: () => number;
  /** Sets V8's growth. @default `--heap-growing-percent` through node:v8 */
  setPercent?: (percent: number) => void;
  /** Calls back after each collection until the returned function is called. @default a PerformanceObserver of 'gc' */
  afterEachGc?: (callback: () => void) => () => void;
}

function observeGc(callback: () => void): () => void {
  const observer = new PerformanceObserver(callback);
  observer.observe({ entryTypes: ['gc'] });
  return () => observer.disconnect();
}

/** Keeps V8's `--heap-growing-percent` at `growthPercentFor` the heap's size until closed. */
export class HeapGrowth {
  readonly #heapBytes: () => number;
  readonly #setPercent: (percent: number) => void;
  readonly #stop: () => void;
  #percent = 0;
  #closed = false;

  constructor(hooks: HeapGrowthHooks = {}) {
    this.#heapBytes = hooks.heapBytes ?? (() => getHeapStatistics().used_heap_size);
    this.#setPercent = hooks.setPercent ?? ((percent) => setFlagsFromString(`--heap-growing-percent=${percent}`));
    this.check();
    this.#stop = (hooks.afterEachGc ?? observeGc)(() => this.check());
  }

  /** The growth last set. */
  get percent(): number {
    return this.#percent;
  }

  /** Sets the growth for the heap's size now, if it changed. */
  check(): void {
    const percent = growthPercentFor(this.#heapBytes());
    if (percent === this.#percent) return;
    this.#setPercent(percent);
    this.#percent = percent;
  }

  /** Stops following collections (the growth last set stays). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop();
  }
}
