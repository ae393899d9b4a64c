import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { paceYoungCollections } from '../io/young-gc.ts';

/** The young generation's size (both semi-spaces) a batch command's process keeps to. */
export const BATCH_YOUNG_GENERATION_BYTES = 8 * 1024 * 1024;

/**
 * What the `fetch-oracle` process sets in V8 before any work; a benchmark that runs a command in its own
 * process calls it too, to measure what users run. `batch`: the command runs through a data set to its end
 * (`ListedCommand.batch`), and its young generation is capped.
 */
export function tuneV8(options: { batch?: boolean } = {}): void {
  if (options.batch === true) capYoungGeneration(BATCH_YOUNG_GENERATION_BYTES);
  // V8 lets the old generation grow to several times its live data before a full collection: under a
  // replay of a 100,000-entry netlock (records decoded, kept a while, dropped) that was a 230-290 MB peak
  // RSS over ~50 MB live. Growing by 25% instead gave 166-175 MB for the same load (issue #15). The flag
  // is read at each collection, so setting it before any work takes effect.
  // Measured and dropped (session 20): 40 MiB of room for heaps under 32 MiB, set again after every
  // collection. It took a 1 GiB record from 50-55 full collections to 5 and `seed` from 20 to 2, but a
  // record run writing back a kept 194,700-entry netlock peaked at 255-258 MB against 181.
  setFlagsFromString('--heap-growing-percent=25');
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
