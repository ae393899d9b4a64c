import { EventEmitter } from 'node:events';

/**
 * Stops one request's work: `abort()` sets `aborted` and emits 'abort' once. undici takes it as a request's
 * `signal` (an EventEmitter, as its API allows). Not an AbortController, on the record path's hot side:
 * in Node 20 every AbortSignal made is promoted to the old generation and left there for a full collection
 * (~0.7 KB each, measured in a loop that made nothing else survive), and the two a record made cost 5-12%
 * of its throughput (issue #15, session 18).
 */
export class AbortSwitch extends EventEmitter<{ abort: [] }> {
  #aborted = false;

  get aborted(): boolean {
    return this.#aborted;
  }

  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.emit('abort');
  }
}
