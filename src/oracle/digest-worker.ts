import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { AbortedError } from '../errors.ts';
import { digestOnce } from '../protocol/blocks.ts';

/** Bytes a job may have in flight to the worker before `update` waits: bounds memory. */
export const MAX_IN_FLIGHT_BYTES = 16 * 1024 * 1024;
/** Bytes gathered per message to the worker. */
export const BATCH_BYTES = 1024 * 1024;
/** The first batch buffer of a body whose size is not known in advance; it doubles up to a batch. */
const MIN_BATCH_BUFFER = 64 * 1024;
/** Whole batch buffers the worker has handed back, kept for the next batches (one body's in-flight share). */
const MAX_SPARE_BATCHES = MAX_IN_FLIGHT_BYTES / BATCH_BYTES + 1;

// The worker's code, kept inline so it needs no separate build step or file resolution under tsx.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const jobs = new Map();
parentPort.on('message', (m) => {
  if (m.type === 'update') {
    let job = jobs.get(m.id);
    if (job === undefined) { job = { sha256: createHash('sha256'), sha512: createHash('sha512') }; jobs.set(m.id, job); }
    const bytes = new Uint8Array(m.buffer, 0, m.length);
    job.sha256.update(bytes);
    job.sha512.update(bytes);
    // The buffer goes back to be filled again: no 1 MiB allocation per batch on either thread.
    parentPort.postMessage({ type: 'ack', id: m.id, bytes: m.length, buffer: m.buffer }, [m.buffer]);
  } else if (m.type === 'digest') {
    const job = jobs.get(m.id) ?? { sha256: createHash('sha256'), sha512: createHash('sha512') };
    jobs.delete(m.id);
    parentPort.postMessage({ type: 'digest', id: m.id, sha256: job.sha256.digest(), sha512: job.sha512.digest() });
  } else if (m.type === 'drop') {
    jobs.delete(m.id);
  }
});
`;

export interface BodyDigests {
  sha256: Uint8Array;
  sha512: Uint8Array;
}

export interface DigestJob {
  /** Adds body bytes; waits while MAX_IN_FLIGHT_BYTES are with the worker. */
  update(chunk: Uint8Array): Promise<void>;
  /** The whole-body digests; a `sha256` already known for these bytes (`rawBodySha256`) is taken, not computed again. */
  digest(known?: { sha256?: Uint8Array | undefined }): Promise<BodyDigests>;
  /** Gives up on this body: a waiting call rejects, the worker forgets it. */
  abandon(): void;
}

interface Job {
  inFlight: number;
  digests: BodyDigests | undefined;
  /** Everyone waiting for progress of this job (the producer, `digest()`). */
  waiters: Set<() => void>;
  failed: Error | undefined;
}

interface WorkerMessage {
  type: 'ack' | 'digest';
  id: number;
  bytes?: number;
  buffer?: ArrayBuffer;
  sha256?: Uint8Array;
  sha512?: Uint8Array;
}

function wake(job: Job): void {
  const waiters = [...job.waiters];
  job.waiters.clear();
  for (const w of waiters) w();
}

/**
 * A body declared to fit one batch (most bodies) is hashed on this thread as it comes: cheaper than the
 * worker's round trip, and no copy of it is kept (a buffer of its size per body, outside V8's heap, was
 * counted against the next full collection: young-gc.ts). A body longer than declared is still hashed
 * whole; the recorder refuses it anyway. A body that comes as one chunk (a small body, nearly always) is
 * hashed at the end at once (`digestOnce`), held by reference until then: the Hash objects cost
 * more than hashing 4 KiB (issue #15, session 26).
 */
function hashedHere(sha256Given: boolean): DigestJob {
  let sha256: Hash | undefined;
  let sha512: Hash | undefined;
  /** The body's only chunk so far, not yet hashed. */
  let only: Uint8Array | undefined;
  let abandoned = false;
  const refused = (): Promise<never> => Promise.reject(new AbortedError('Body digest abandoned'));
  const incremental = (): Hash => {
    sha256 = sha256Given ? undefined : createHash('sha256');
    const hash = createHash('sha512');
    if (only !== undefined) {
      sha256?.update(only);
      hash.update(only);
      only = undefined;
    }
    return (sha512 = hash);
  };
  return {
    update: (chunk) => {
      if (abandoned) return refused();
      if (sha512 === undefined && only === undefined) only = chunk;
      else {
        const hash = sha512 ?? incremental();
        sha256?.update(chunk);
        hash.update(chunk);
      }
      return Promise.resolve();
    },
    digest: (known) => {
      if (abandoned) return refused();
      if (sha512 === undefined) {
        const bytes = only ?? new Uint8Array(0);
        only = undefined;
        const whole = known?.sha256 ?? (sha256Given ? undefined : digestOnce('sha256', bytes));
        if (whole === undefined) return Promise.reject(new Error('DigestJob: sha256Given, but digest() was given no sha256'));
        return Promise.resolve({ sha256: whole, sha512: digestOnce('sha512', bytes) });
      }
      const whole = known?.sha256 ?? (sha256 === undefined ? undefined : new Uint8Array(sha256.digest()));
      if (whole === undefined) return Promise.reject(new Error('DigestJob: sha256Given, but digest() was given no sha256'));
      return Promise.resolve({ sha256: whole, sha512: new Uint8Array(sha512.digest()) });
    },
    abandon: () => {
      abandoned = true;
      only = undefined;
    },
  };
}

/**
 * Computes the whole-body sha256 and sha512 every record carries (design §2) on a worker thread, off the
 * thread that pipes and imports the body (sha512 alone runs at ~0.5 GB/s here). Bytes are gathered into
 * batches that are transferred, not copied again; each job waits once MAX_IN_FLIGHT_BYTES are with the
 * worker, so memory stays bounded. A body that fits one batch (most) is hashed here: cheaper than the
 * round trip. Measured alternatives that also moved the leaf hashing to workers (two workers on pooled
 * shared buffers; one buffer passed worker to worker) spent more CPU in postMessage than they moved, on
 * 2 cores shared with the client and the origin (docs/benchmarks.md). Whole batch buffers come back with
 * the worker's ack and are reused: allocated fresh, a 1 GiB record left up to ~100 MB of dead 1 MiB buffers
 * between collections on the two threads (issue #15, peak RSS).
 */
export class DigestWorker {
  #worker: Worker | undefined;
  readonly #jobs = new Map<number, Job>();
  /** Batch buffers of BATCH_BYTES back from the worker, for any job's next batch. */
  readonly #spare: ArrayBuffer[] = [];
  #nextId = 1;
  #closed = false;

  #ensure(): Worker {
    if (this.#closed) throw new Error('DigestWorker is closed');
    if (this.#worker === undefined) {
      const worker = new Worker(WORKER_SOURCE, { eval: true });
      worker.unref();
      worker.on('message', (m: WorkerMessage) => this.#onMessage(m));
      worker.on('error', (err) => this.#failAll(err));
      this.#worker = worker;
    }
    return this.#worker;
  }

  #onMessage(m: WorkerMessage): void {
    if (m.type === 'ack' && m.buffer?.byteLength === BATCH_BYTES && this.#spare.length < MAX_SPARE_BATCHES) this.#spare.push(m.buffer);
    const job = this.#jobs.get(m.id);
    if (job === undefined) return;
    if (m.type === 'ack') job.inFlight -= m.bytes ?? 0;
    else job.digests = { sha256: new Uint8Array(m.sha256!), sha512: new Uint8Array(m.sha512!) };
    wake(job);
  }

  /** The worker died: every job under way fails with its error, and the next job starts a fresh worker. */
  #failAll(err: Error): void {
    for (const job of this.#jobs.values()) {
      job.failed = err;
      wake(job);
    }
    this.#jobs.clear();
    const dead = this.#worker;
    this.#worker = undefined;
    void dead?.terminate();
  }

  /**
   * Starts a digest job for one body; `sizeHint` (a Content-Length) sizes its buffers. `sha256Given`: the
   * caller passes the SHA-256 to `digest()` (a body of one raw leaf: `rawBodySha256`), so it is not computed.
   */
  begin(options: { sizeHint?: number; sha256Given?: boolean } = {}): DigestJob {
    if (this.#closed) throw new Error('DigestWorker is closed');
    const hint = options.sizeHint !== undefined && Number.isSafeInteger(options.sizeHint) && options.sizeHint >= 0 ? options.sizeHint : undefined;
    if (hint !== undefined && hint <= BATCH_BYTES) return hashedHere(options.sha256Given === true);
    const worker = this.#ensure();
    const id = this.#nextId++;
    const job: Job = { inFlight: 0, digests: undefined, waiters: new Set(), failed: undefined };
    this.#jobs.set(id, job);
    let expected = hint;
    let batch = new ArrayBuffer(0);
    let filled = 0;
    let sent = false;
    let abandoned = false;
    const progress = (): Promise<void> => {
      if (abandoned) return Promise.reject(new AbortedError('Body digest abandoned'));
      if (job.failed !== undefined) return Promise.reject(job.failed);
      return new Promise<void>((resolve) => job.waiters.add(resolve));
    };
    // Sized by what is left of the body when known, else small and doubling, never above a batch.
    const room = (needed: number): void => {
      const hinted = expected !== undefined && expected > 0 ? filled + expected : MIN_BATCH_BUFFER;
      const size = Math.min(BATCH_BYTES, Math.max(filled + needed, hinted, batch.byteLength * 2));
      const bigger = (size === BATCH_BYTES ? this.#spare.pop() : undefined) ?? Buffer.allocUnsafeSlow(size).buffer; // only bytes copied in are read
      new Uint8Array(bigger).set(new Uint8Array(batch, 0, filled));
      batch = bigger;
    };
    const flush = async (): Promise<void> => {
      if (filled === 0) return;
      job.inFlight += filled;
      worker.postMessage({ type: 'update', id, buffer: batch, length: filled }, [batch]);
      sent = true;
      batch = new ArrayBuffer(0);
      filled = 0;
      while (job.inFlight > MAX_IN_FLIGHT_BYTES) await progress();
    };
    return {
      update: async (chunk) => {
        if (abandoned) throw new AbortedError('Body digest abandoned');
        for (let offset = 0; offset < chunk.byteLength; ) {
          const n = Math.min(chunk.byteLength - offset, BATCH_BYTES - filled);
          if (filled + n > batch.byteLength) room(n);
          new Uint8Array(batch, filled, n).set(chunk.subarray(offset, offset + n));
          filled += n;
          offset += n;
          if (expected !== undefined) expected = Math.max(0, expected - n);
          if (filled === BATCH_BYTES) await flush();
        }
      },
      digest: async (known) => {
        if (abandoned) throw new AbortedError('Body digest abandoned');
        if (!sent) {
          // The whole body is in this one batch: hash it here.
          const bytes = new Uint8Array(batch, 0, filled);
          this.#jobs.delete(id);
          return { sha256: known?.sha256 ?? new Uint8Array(createHash('sha256').update(bytes).digest()), sha512: new Uint8Array(createHash('sha512').update(bytes).digest()) };
        }
        await flush();
        worker.postMessage({ type: 'digest', id });
        while (job.digests === undefined) await progress();
        this.#jobs.delete(id);
        return job.digests;
      },
      abandon: () => {
        if (abandoned) return;
        abandoned = true;
        this.#jobs.delete(id);
        if (sent) worker.postMessage({ type: 'drop', id });
        wake(job);
      },
    };
  }

  /** Ends the worker thread. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const w = this.#worker;
    this.#worker = undefined;
    await w?.terminate();
  }
}
