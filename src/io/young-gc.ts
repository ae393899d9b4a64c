import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Young-generation collections paced by the bytes of a large body being recorded (issue #15).
 *
 * Every socket read brings a fresh buffer outside V8's heap (64 KiB each; undici reads the upstream that
 * way). The buffers die young, but V8 counts buffer bytes allocated since the last full collection against
 * the old generation's limit, and only a collection frees them. A recording's heap is small (~17 MB) and
 * grows by 25% (src/cli/v8-tuning.ts), so its headroom is ~12 MB, and its young collections come far apart
 * (its heap objects are few): a 1 GiB body ran 50-55 full collections, a fifth of the record's CPU. A young
 * collection each time a body passes another YOUNG_GC_EVERY_BYTES frees the buffers first (256 a GiB, under
 * a millisecond each): 5-8 full collections a GiB. Bodies smaller than that never force one: with many
 * records under way, a forced collection promotes what they hold (measured: `seed` slower).
 */
export const YOUNG_GC_EVERY_BYTES = 4 * 1024 * 1024;

/** Calls `collect` each time a body's bytes pass a multiple of `everyBytes`: never for a smaller body. */
export class YoungGcPacer {
  readonly #collect: () => void;
  readonly #everyBytes: number;

  constructor(collect: () => void, everyBytes = YOUNG_GC_EVERY_BYTES) {
    this.#collect = collect;
    this.#everyBytes = everyBytes;
  }

  /** `bodyBytes` of a body received so far, of which the last `chunkBytes` just now. */
  received(bodyBytes: number, chunkBytes: number): void {
    if (Math.floor(bodyBytes / this.#everyBytes) !== Math.floor((bodyBytes - chunkBytes) / this.#everyBytes)) this.#collect();
  }
}

type V8Gc = (options: { type: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;

let pacer: YoungGcPacer | undefined;

/**
 * Turns pacing on for this process: the CLI's entry point does; an embedder of the library decides for its
 * own process. V8's `gc` is taken from a fresh context while `--expose-gc` is briefly set, so no global
 * `gc` appears in the process's own contexts. Where a runtime gives none, pacing stays off: it only saves
 * CPU. Returns whether it is on. Idempotent.
 */
export function paceYoungCollections(): boolean {
  if (pacer !== undefined) return true;
  setFlagsFromString('--expose-gc');
  let gc: unknown;
  try {
    gc = runInNewContext('typeof gc === "function" ? gc : undefined');
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
  if (typeof gc !== 'function') return false;
  const collect = gc as V8Gc;
  pacer = new YoungGcPacer(() => collect({ type: 'minor' }));
  return true;
}

/** `bodyBytes` of a body received from upstream so far, the last `chunkBytes` just now: a no-op unless pacing is on. */
export function bodyBytesReceived(bodyBytes: number, chunkBytes: number): void {
  pacer?.received(bodyBytes, chunkBytes);
}
