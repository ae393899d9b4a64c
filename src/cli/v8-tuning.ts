import { constants, PerformanceObserver } from 'node:perf_hooks';
import type { NodeGCPerformanceDetail, PerformanceEntry } from 'node:perf_hooks';
import { getHeapSpaceStatistics, getHeapStatistics, setFlagsFromString } from 'node:v8';
import { paceYoungCollections } from '../io/young-gc.ts';

/** The young generation's size (both semi-spaces) a batch command's process keeps to. */
export const BATCH_YOUNG_GENERATION_BYTES = 8 * 1024 * 1024;

/** The old generation's size a batch command's heap may grow to between full collections, within twice its live data. */
export const BATCH_OLD_GENERATION_BYTES = 48 * 1024 * 1024;

/** The resident size past which a batch command's heap gets no more room than any process's 25%. */
export const BATCH_ROOM_WITHIN_RSS_BYTES = 160 * 1024 * 1024;

/** The old generation's growth past its live data after a full collection, in percent (V8's own is dynamic). */
const OLD_GENERATION_GROWTH_PERCENT = 25;

/**
 * What the `fetch-oracle` process sets in V8 before any work; a benchmark that runs a command in its own
 * process calls it too, to measure what users run. `batch`: the command runs through a data set to its end
 * (`ListedCommand.batch`): its young generation is capped, and its old generation has room while it is small.
 */
export function tuneV8(options: { batch?: boolean } = {}): void {
  if (options.batch === true) {
    capYoungGeneration(BATCH_YOUNG_GENERATION_BYTES);
    roomAboveLiveHeap(BATCH_OLD_GENERATION_BYTES, BATCH_ROOM_WITHIN_RSS_BYTES);
  }
  // V8 lets the old generation grow to several times its live data before a full collection: under a
  // replay of a 100,000-entry netlock (records decoded, kept a while, dropped) that was a 230-290 MB peak
  // RSS over ~50 MB live. Growing by 25% instead gave 166-175 MB for the same load (issue #15). The flag
  // is read at each collection, so setting it before any work takes effect.
  // Measured and dropped for every process (session 20): 40 MiB of room for heaps under 32 MiB, set again
  // after every collection. It took a 1 GiB record from 50-55 full collections to 5 and `seed` from 20 to 2,
  // but a record run writing back a kept 194,700-entry netlock peaked at 255-258 MB against 181. Batch
  // commands get a bounded form of it (`roomAboveLiveHeap`).
  setFlagsFromString(`--heap-growing-percent=${OLD_GENERATION_GROWTH_PERCENT}`);
  // A large body's socket buffers freed by young collections, not full ones (young-gc.ts says why).
  paceYoungCollections();
}

/**
 * Keeps V8's young generation at about `bytes`. V8 grows it (from two 1 MB semi-spaces up to two of 16 MB)
 * while much of what it allocates lives through a scavenge, and a command walking 200,000 entries grows it to
 * the top: its garbage then held ~40 MB of RSS (`seed` of 200,000 entries peaked at 197–218 MB, 171 with
 * `--max-semi-space-size=4`, issue #15). That size is read only when the process starts; what V8 reads at each
 * growth is the factor, so growth is stopped for good (factor 1) once the space has reached `bytes`. Not
 * allowed again when V8 shrinks the space: growth from there went straight past the cap (4 to 16 MB). Measured:
 * the same `seed` at 177 MB in the same CPU time (63.4 against 64.4 s); stopped from the start (1 MB
 * semi-spaces), 159 MB but 35% more CPU.
 */
function capYoungGeneration(bytes: number): void {
  const observer = new PerformanceObserver(() => {
    const size = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
    if (size < bytes) return;
    setFlagsFromString('--semi-space-growth-factor=1');
    observer.disconnect();
  });
  observer.observe({ entryTypes: ['gc'] });
}

/**
 * The old generation's growth, in percent, that lets a heap of `live` bytes reach `size` before its next full
 * collection: at most 100 (twice the live data), at least the 25 every process has.
 */
export function growthPercentToReach(size: number, live: number): number {
  if (live <= 0) return 100;
  return Math.min(100, Math.max(OLD_GENERATION_GROWTH_PERCENT, Math.round(((size - live) / live) * 100)));
}

/**
 * Lets the old generation grow to `size` between full collections, at most to twice its live data and by no
 * more than keeps the process within `rss` bytes, by setting the growth after each full collection (V8 reads
 * the flag each time it sets a limit, so the collection after this one uses it). With 25% growth a ~20 MB
 * heap got V8's minimum step of room (~8 MB), and every buffer read from a socket counts against that limit
 * until a full collection: `seed` of 1,500 packages ran 16-18 full collections, 2-3 with this (issue #15). A
 * large run keeps the 25%: its tables outside the heap already fill the process (`seed` of 300,000 entries
 * peaked at 198 MB with room and no `rss` bound, 186 MB without room, 183 MB with both). Batch commands
 * only: a record run writing back a 194,700-entry netlock peaked 75 MB higher with room like this (session 20).
 */
export function roomAboveLiveHeap(size: number, rss: number): void {
  let percent = OLD_GENERATION_GROWTH_PERCENT;
  const observer = new PerformanceObserver((list) => {
    if (!list.getEntries().some(isFullCollection)) return;
    const live = getHeapStatistics().used_heap_size;
    const next = growthPercentToReach(Math.min(size, live + Math.max(0, rss - process.memoryUsage.rss())), live);
    if (next === percent) return;
    percent = next;
    setFlagsFromString(`--heap-growing-percent=${next}`);
  });
  observer.observe({ entryTypes: ['gc'] });
}

/** A `gc` entry's kind is in its `detail`, which Node's types leave off `PerformanceEntry`. */
function isFullCollection(entry: PerformanceEntry): boolean {
  return (entry as PerformanceEntry & { detail?: NodeGCPerformanceDetail }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR;
}
