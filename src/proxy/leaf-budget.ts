/**
 * Leaves that streamed answers may hold at once, all of them together (32 MiB): eight streams' worth of read
 * ahead. Each stream reads up to READ_AHEAD_LEAVES ahead of the leaf it sends, so without a bound a replay's
 * memory grew with its number of streams (64 clients of a 10 MiB body: 239–277 MB of RSS; issue #15's limit
 * is 200 MB whatever the body).
 */
export const LEAVES_HELD_MAX = 32;

/**
 * Permits for leaf memory, handed out in the order they are asked for. A permit is given back once the socket
 * has sent its leaf, or when its answer ends; a stream only ever waits for permits that other streams' sockets
 * give back, never for its own, so streams keep moving as their clients read.
 */
export class LeafBudget {
  #free: number;
  readonly #waiting: Array<() => void> = [];

  constructor(permits: number) {
    this.#free = permits;
  }

  /** Permits nobody holds (for tests and metrics). */
  get free(): number {
    return this.#free;
  }

  /** Streams waiting for a permit. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Resolves once a permit is the caller's. */
  acquire(): Promise<void> {
    if (this.#free > 0 && this.#waiting.length === 0) {
      this.#free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Gives back `count` permits, each to the longest waiting caller if any. */
  release(count = 1): void {
    for (let i = 0; i < count; i++) {
      const next = this.#waiting.shift();
      if (next === undefined) this.#free++;
      else next();
    }
  }
}

/** The budget every streamed answer of this process shares. */
export const LEAF_BUDGET = new LeafBudget(LEAVES_HELD_MAX);
