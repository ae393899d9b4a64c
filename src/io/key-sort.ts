import { SpillFile } from './spill-file.ts';

/** Pairs held in memory at once by default: ~4 MB of request keys. */
export const DEFAULT_SORT_CHUNK = 32_768;
/** Text of one spilled block of a sorted run (well under `SPILL_MAX_BYTES`). */
const BLOCK_CHARS = 256 * 1024;

export interface KeySortOptions {
  /** Where the sorted runs go when there are more pairs than `chunk` (a scratch file, unlinked at once). */
  readonly dir: string;
  /** Pairs sorted in memory at a time (default `DEFAULT_SORT_CHUNK`). */
  readonly chunk?: number | undefined;
  readonly compare: (a: string, b: string) => number;
}

/**
 * `(key, value)` pairs in key order, holding at most `chunk` of them in memory: each chunk is sorted and
 * written to a scratch file as a run, and the runs are merged. A run of 1,000,000 request keys (~100 MB of
 * strings in the heap) is sorted for its netlock in a few MB this way (issue #15). Fewer pairs than `chunk`
 * are sorted in memory and nothing is written.
 *
 * Written here rather than taken from npm: the external sorts there sort lines of text files, and request keys
 * hold newlines; this one is a merge of a few JSON-lined runs through a scratch file the process already
 * uses. Its reads and writes are synchronous, like `SpillFile`'s (a few hundred KB at a time from the page
 * cache); `pairs` may be asynchronous, so that whoever reads the keys can let other work run between them. The
 * scratch file is closed when the iteration ends, however it ends.
 */
export async function* sortByKey(pairs: Iterable<readonly [string, number]> | AsyncIterable<readonly [string, number]>, options: KeySortOptions): AsyncGenerator<[key: string, value: number]> {
  const chunk = Math.max(1, options.chunk ?? DEFAULT_SORT_CHUNK);
  const byKey = (a: readonly [string, number], b: readonly [string, number]): number => options.compare(a[0], b[0]);
  let pending: Array<[string, number]> = [];
  let spill: SpillFile | undefined;
  const runs: number[][] = [];
  try {
    for await (const [key, value] of pairs) {
      pending.push([key, value]);
      if (pending.length < chunk) continue;
      spill ??= new SpillFile(options.dir);
      runs.push(writeRun(spill, pending.sort(byKey)));
      pending = [];
    }
    pending.sort(byKey);
    if (spill === undefined) {
      yield* pending;
      return;
    }
    if (pending.length > 0) runs.push(writeRun(spill, pending));
    pending = [];
    yield* merge(runs.map((blocks) => new RunCursor(spill!, blocks)), options.compare);
  } finally {
    spill?.close();
  }
}

/** Writes sorted pairs as JSON lines in blocks; returns the blocks' tickets. */
function writeRun(spill: SpillFile, sorted: ReadonlyArray<readonly [string, number]>): number[] {
  const blocks: number[] = [];
  let lines: string[] = [];
  let chars = 0;
  const flush = (): void => {
    const ticket = spill.append(lines.join('\n'));
    if (ticket === undefined) throw new Error('sort scratch file is full (a key over 2 MiB, or 4 GiB of keys)');
    blocks.push(ticket);
    lines = [];
    chars = 0;
  };
  for (const [key, value] of sorted) {
    // JSON escapes every control character, so a line holds no newline whatever the key holds.
    const line = JSON.stringify([value, key]);
    if (lines.length > 0 && chars + line.length > BLOCK_CHARS) flush();
    lines.push(line);
    chars += line.length + 1;
  }
  if (lines.length > 0) flush();
  return blocks;
}

/** One sorted run, read a block at a time; `head` is its next pair, undefined once it is done. */
class RunCursor {
  head: [string, number] | undefined;
  readonly #spill: SpillFile;
  readonly #blocks: readonly number[];
  #block = 0;
  #lines: string[] = [];
  #line = 0;

  constructor(spill: SpillFile, blocks: readonly number[]) {
    this.#spill = spill;
    this.#blocks = blocks;
    this.advance();
  }

  advance(): void {
    while (this.#line >= this.#lines.length) {
      if (this.#block >= this.#blocks.length) {
        this.head = undefined;
        return;
      }
      this.#lines = this.#spill.read(this.#blocks[this.#block++]!).split('\n');
      this.#line = 0;
    }
    const [value, key] = JSON.parse(this.#lines[this.#line++]!) as [number, string];
    this.head = [key, value];
  }
}

/** The runs' pairs in key order: a binary min-heap of the runs by their next key. */
function* merge(cursors: RunCursor[], compare: (a: string, b: string) => number): Generator<[string, number]> {
  const heap = cursors.filter((c) => c.head !== undefined);
  const less = (i: number, j: number): boolean => compare(heap[i]!.head![0], heap[j]!.head![0]) < 0;
  const swap = (i: number, j: number): void => {
    [heap[i], heap[j]] = [heap[j]!, heap[i]!];
  };
  const down = (from: number): void => {
    for (let i = from; ; ) {
      const [l, r] = [2 * i + 1, 2 * i + 2];
      let least = i;
      if (l < heap.length && less(l, least)) least = l;
      if (r < heap.length && less(r, least)) least = r;
      if (least === i) return;
      swap(i, least);
      i = least;
    }
  };
  for (let i = (heap.length >> 1) - 1; i >= 0; i--) down(i);
  while (heap.length > 0) {
    const top = heap[0]!;
    yield top.head!;
    top.advance();
    if (top.head === undefined) {
      const last = heap.pop()!;
      if (heap.length === 0) return;
      heap[0] = last;
    }
    down(0);
  }
}
