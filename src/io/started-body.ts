/**
 * A body whose first chunk is already read (`startedBody`): it yields that chunk, then the rest. The source
 * is released (its iterator's `return`) once: at the end, on a failure, or when the reader stops early. An
 * iterator object, not an async generator: V8 (Node 20) keeps what a generator's frame refers to alive
 * through young collections, so every answer read through one was promoted whole to the old generation and
 * left there for a full collection (issue #15, session 18).
 */
export class StartedBody implements AsyncIterableIterator<Uint8Array> {
  readonly #it: AsyncIterator<Uint8Array>;
  #first: IteratorResult<Uint8Array> | undefined;
  #finished = false;

  constructor(it: AsyncIterator<Uint8Array>, first: IteratorResult<Uint8Array>) {
    this.#it = it;
    this.#first = first;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    if (this.#finished) return { done: true, value: undefined };
    const first = this.#first;
    if (first !== undefined) {
      this.#first = undefined;
      return first.done === true ? this.#finish() : first;
    }
    let next: IteratorResult<Uint8Array>;
    try {
      next = await this.#it.next();
    } catch (err) {
      await this.#finish();
      throw err;
    }
    return next.done === true ? this.#finish() : next;
  }

  /** A reader that stops early releases the source. */
  return(): Promise<IteratorResult<Uint8Array>> {
    return this.#finish();
  }

  async #finish(): Promise<IteratorResult<Uint8Array>> {
    if (!this.#finished) {
      this.#finished = true;
      await this.#it.return?.();
    }
    return { done: true, value: undefined };
  }
}

/** Reads `body`'s first chunk (a failure that early throws here) and resolves with the body from there. */
export async function startedBody(body: AsyncIterable<Uint8Array>): Promise<StartedBody> {
  const it = body[Symbol.asyncIterator]();
  return new StartedBody(it, await it.next());
}
