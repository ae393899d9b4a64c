import { SpillFile } from './spill-file.ts';

/** A text the spill file did not take (too long, or a write failed): held in the heap instead. */
const IN_HEAP = -1;

/**
 * The last `capacity` texts pushed, numbered from 0: what a long-running process shows of its recent past
 * (the live page's request log) without holding it in the heap. With `dir` the texts go to scratch files there
 * (`SpillFile`) and the process holds 8 bytes a text: texts `g·capacity … (g+1)·capacity − 1` share a file,
 * and a file is dropped once its texts are all out of the window, so the disk holds at most twice the window
 * and memory does not grow with the texts at all. Without `dir` they are held in a ring in the heap.
 *
 * A write that fails (a full disk) keeps that text in the heap rather than lose it or throw into whoever
 * pushed it. `close()` frees the files.
 */
export class TextRing {
  readonly #capacity: number;
  readonly #dir: string | undefined;
  #next = 0;
  /** Text number mod capacity → its ticket in its generation's file (or `IN_HEAP`). */
  readonly #tickets: Float64Array | undefined;
  /** Texts not in a file (every text without `dir`), by number mod capacity: a ring of pointers, 8 bytes a slot. */
  readonly #inHeap: Array<string | undefined> = [];
  /** The files of the current generation (index `g % 2`) and of the one before. */
  readonly #files: Array<SpillFile | undefined> = [undefined, undefined];
  #closed = false;

  constructor(capacity: number, dir?: string) {
    this.#capacity = Math.max(1, Math.floor(capacity));
    this.#dir = dir;
    this.#tickets = dir === undefined ? undefined : new Float64Array(this.#capacity);
  }

  /** The number of the oldest text kept. */
  get first(): number {
    return Math.max(0, this.#next - this.#capacity);
  }

  /** The number the next text pushed gets (how many were pushed in all). */
  get next(): number {
    return this.#next;
  }

  push(text: string): void {
    const n = this.#next++;
    const slot = n % this.#capacity;
    this.#inHeap[slot] = undefined; // the text it held is now out of the window
    if (this.#tickets === undefined || this.#closed) {
      this.#inHeap[slot] = text;
      return;
    }
    const generation = Math.floor(n / this.#capacity);
    if (slot === 0) {
      // A new generation reuses the file of the one two back, whose texts are all older than the window now.
      this.#files[generation % 2]?.close();
      this.#files[generation % 2] = undefined;
    }
    let ticket: number | undefined;
    try {
      const file = (this.#files[generation % 2] ??= new SpillFile(this.#dir!));
      ticket = file.append(text);
    } catch {
      ticket = undefined;
    }
    this.#tickets[slot] = ticket ?? IN_HEAP;
    if (ticket === undefined) this.#inHeap[slot] = text;
  }

  /** Text number `n` (`first <= n < next`). */
  read(n: number): string {
    if (!Number.isInteger(n) || n < this.first || n >= this.#next) throw new RangeError(`text ${n} is not in the window ${this.first}..${this.#next - 1}`);
    const slot = n % this.#capacity;
    const held = this.#inHeap[slot];
    if (held !== undefined || this.#tickets === undefined) return held!;
    const file = this.#files[Math.floor(n / this.#capacity) % 2];
    if (file === undefined) throw new Error(`text ${n} was in a scratch file that is closed`);
    return file.read(this.#tickets[slot]!);
  }

  /** Frees the files; texts pushed afterwards are held in the heap, those in the files can no longer be read. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const [i, f] of this.#files.entries()) {
      f?.close();
      this.#files[i] = undefined;
    }
  }
}
