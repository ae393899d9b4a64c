import type { Handover } from '../io/handover.ts';
import type { BlockSink } from '../protocol/blocks.ts';
import { CHUNK_BYTES } from '../protocol/unixfs.ts';

/**
 * Between a fresh upstream body being imported and the client reading it (`live`, absent for `seed`): the
 * head goes out only once the body's first block is stored (or the answer is recorded, for a body of one
 * block or none), so that a failure before that (a full disk, a store that is down, an origin that breaks off
 * within the first MiB) is answered with an error, not a head and a dropped connection; until then the chunks
 * wait here, about one block of them. After the head, every chunk but the newest is handed on as it arrives;
 * the newest is held back until `release()`, after the record is persisted: a client never sees a complete
 * body that was not recorded.
 */
export class LiveTee {
  readonly #live: Handover | undefined;
  readonly #sendHead: () => void;
  #headOut: boolean;
  #firstStored = false;
  readonly #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  readonly #firstPut: Promise<void>;
  #settle!: { resolve: () => void; reject: (err: unknown) => void };
  #held: Uint8Array | undefined;

  constructor(live: Handover | undefined, sendHead: () => void) {
    this.#live = live;
    this.#sendHead = sendHead;
    this.#headOut = live === undefined;
    this.#firstPut = new Promise<void>((resolve, reject) => (this.#settle = { resolve, reject }));
    this.#firstPut.catch(() => {}); // awaited when it matters; a failed put fails the import anyway
  }

  /** `store` as the import sees it: its first stored block lets the head go. */
  sink(store: BlockSink): BlockSink {
    return {
      putKeepsNoBytes: store.putKeepsNoBytes === true,
      put: (cid, bytes, options) => {
        const put = store.put(cid, bytes, options);
        void put.then(() => {
          this.#firstStored = true;
          this.#settle.resolve();
        }, this.#settle.reject);
        return put;
      },
    };
  }

  /** Takes the newest chunk of the body; hands the one before it on (or keeps it until the head is out). */
  async pass(chunk: Uint8Array): Promise<void> {
    if (!this.#headOut && (this.#firstStored || this.#pendingBytes >= CHUNK_BYTES)) {
      await this.#firstPut; // its leaf is being written by now
      await this.#headNow();
    }
    if (this.#held !== undefined) await this.#handOn(this.#held);
    this.#held = chunk;
  }

  /** The record is persisted: the head (if still waiting), the held-back chunk, and the end go out. */
  async release(): Promise<void> {
    await this.#headNow();
    await this.#handOn(this.#held);
    this.#live?.end();
  }

  async #handOn(bytes: Uint8Array | undefined): Promise<void> {
    if (!this.#headOut) {
      if (bytes !== undefined) this.#pending.push(bytes);
      this.#pendingBytes += bytes?.byteLength ?? 0;
      return;
    }
    for (const p of this.#pending.splice(0)) await this.#live?.push(p);
    if (bytes !== undefined) await this.#live?.push(bytes);
  }

  async #headNow(): Promise<void> {
    if (this.#headOut) return;
    this.#headOut = true;
    this.#sendHead();
    await this.#handOn(undefined);
  }
}
