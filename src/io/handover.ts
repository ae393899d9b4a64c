/**
 * Hands chunks from one producer to one reader, one at a time: `push` resolves when the reader has taken
 * the chunk (the producer runs at most one chunk ahead of a slow reader, as with a socket's `drain`), or at
 * once when the reader has left. The producer ends it with `end()` or `fail(err)`; the reader leaves by
 * stopping its iteration (or `leave()`), and the producer then goes on alone.
 */
export class Handover implements AsyncIterable<Uint8Array> {
  #chunk: Uint8Array | undefined;
  #taken: (() => void) | undefined;
  #wake: (() => void) | undefined;
  #ended = false;
  #failed: { error: unknown } | undefined;
  #left = false;

  /** Whether the reader has left (no pushed chunk will be read). */
  get left(): boolean {
    return this.#left;
  }

  push(chunk: Uint8Array): Promise<void> {
    if (this.#left) return Promise.resolve();
    this.#chunk = chunk;
    const taken = new Promise<void>((resolve) => (this.#taken = resolve));
    this.#wakeReader();
    return taken;
  }

  end(): void {
    this.#ended = true;
    this.#wakeReader();
  }

  fail(error: unknown): void {
    this.#failed ??= { error };
    this.#wakeReader();
  }

  /** The reader stops: a waiting `push` resolves, later ones resolve at once. Idempotent. */
  leave(): void {
    this.#left = true;
    this.#chunk = undefined;
    this.#release();
  }

  #release(): void {
    const taken = this.#taken;
    this.#taken = undefined;
    taken?.();
  }

  #wakeReader(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async #next(): Promise<IteratorResult<Uint8Array>> {
    for (;;) {
      if (this.#left) return { value: undefined, done: true };
      const chunk = this.#chunk;
      if (chunk !== undefined) {
        this.#chunk = undefined;
        this.#release();
        return { value: chunk, done: false };
      }
      if (this.#failed !== undefined) throw this.#failed.error;
      if (this.#ended) return { value: undefined, done: true };
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: () => this.#next(),
      return: () => {
        this.leave();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
