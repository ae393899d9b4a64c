import { setFlagsFromString } from 'node:v8';
import { paceYoungCollections } from '../io/young-gc.ts';

/**
 * What the `fetch-oracle` process sets in V8 before any work; a benchmark that runs a command in its own
 * process calls it too, to measure what users run.
 */
export function tuneV8(): void {
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
