import { Worker } from 'node:worker_threads';

/** Bytes a job may have in flight to the worker before `update` waits: bounds memory. */
export const MAX_IN_FLIGHT_BYTES = 16 * 1024 * 1024;
/** Bytes gathered per message to the worker. */
export const BATCH_BYTES = 1024 * 1024;

// The worker's code, kept inline so it needs no separate build step or file resolution under tsx.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const jobs = new Map();
parentPort.on('message', (m) => {
  if (m.type === 'update') {
    let job = jobs.get(m.id);
    if (job === undefined) { job = { sha256: createHash('sha256'), sha512: createHash('sha512') }; jobs.set(m.id, job); }
    job.sha256.update(m.chunk);
    job.sha512.update(m.chunk);
    parentPort.postMessage({ type: 'ack', id: m.id, bytes: m.chunk.byteLength });
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

interface Job {
  inFlight: number;
  wake: (() => void) | undefined;
  done: ((d: BodyDigests) => void) | undefined;
}

/**
 * Computes the whole-body sha256 and sha512 every record carries on a worker thread, off the thread that
 * pipes and imports the body (sha512 alone runs at ~0.5 GB/s here). Chunks are copied to the worker;
 * each job waits once MAX_IN_FLIGHT_BYTES are unacknowledged, so memory stays bounded.
 */
export class DigestWorker {
  #worker: Worker | undefined;
  readonly #jobs = new Map<number, Job>();
  #nextId = 1;
  #closed = false;

  #ensure(): Worker {
    if (this.#closed) throw new Error('DigestWorker is closed');
    if (this.#worker === undefined) {
      const worker = new Worker(WORKER_SOURCE, { eval: true });
      worker.unref();
      worker.on('message', (m: { type: string; id: number; bytes?: number; sha256?: Uint8Array; sha512?: Uint8Array }) => {
        const job = this.#jobs.get(m.id);
        if (job === undefined) return;
        if (m.type === 'ack') {
          job.inFlight -= m.bytes ?? 0;
          if (job.inFlight <= MAX_IN_FLIGHT_BYTES / 2) {
            job.wake?.();
            job.wake = undefined;
          }
        } else if (m.type === 'digest') {
          this.#jobs.delete(m.id);
          job.done?.({ sha256: new Uint8Array(m.sha256!), sha512: new Uint8Array(m.sha512!) });
        }
      });
      this.#worker = worker;
    }
    return this.#worker;
  }

  /** Starts a digest job for one body. */
  begin(): { update(chunk: Uint8Array): Promise<void>; digest(): Promise<BodyDigests>; abandon(): void } {
    const worker = this.#ensure();
    const id = this.#nextId++;
    const job: Job = { inFlight: 0, wake: undefined, done: undefined };
    this.#jobs.set(id, job);
    // Chunks are gathered into BATCH_BYTES buffers that are transferred, not copied: one message per batch.
    let batch = new Uint8Array(BATCH_BYTES);
    let filled = 0;
    const flush = async (): Promise<void> => {
      if (filled === 0) return;
      const chunk = filled === batch.byteLength ? batch : batch.slice(0, filled);
      job.inFlight += filled;
      worker.postMessage({ type: 'update', id, chunk }, [chunk.buffer]);
      batch = new Uint8Array(BATCH_BYTES);
      filled = 0;
      if (job.inFlight > MAX_IN_FLIGHT_BYTES) await new Promise<void>((r) => (job.wake = r));
    };
    return {
      update: async (chunk) => {
        let offset = 0;
        while (offset < chunk.byteLength) {
          const n = Math.min(chunk.byteLength - offset, BATCH_BYTES - filled);
          batch.set(chunk.subarray(offset, offset + n), filled);
          filled += n;
          offset += n;
          if (filled === BATCH_BYTES) await flush();
        }
      },
      digest: async () => {
        await flush();
        return new Promise<BodyDigests>((resolve) => {
          job.done = resolve;
          worker.postMessage({ type: 'digest', id });
        });
      },
      abandon: () => {
        this.#jobs.delete(id);
        worker.postMessage({ type: 'drop', id });
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
