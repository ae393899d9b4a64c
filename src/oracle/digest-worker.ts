import { createHash } from 'node:crypto';
import { MessageChannel, Worker } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { AbortedError, throwIfAborted } from '../errors.ts';
import type { AbortOptions, BlockSink } from '../protocol/blocks.ts';
import { buildFileDag, CHUNK_BYTES, rawLeafCid } from '../protocol/unixfs.ts';
import type { ImportedBody, StoredLeaf } from '../protocol/unixfs.ts';

/** Leaves a job may have dispatched and not yet released before `update` waits: bounds memory (16 MiB). */
export const MAX_LEAVES_IN_FLIGHT = 16;
/** The first buffer of a leaf whose size is not known in advance; it doubles up to a leaf. */
const MIN_LEAF_BUFFER = 64 * 1024;
/** Blocks at least this big are hashed on a worker when reads are verified. */
const OFFLOAD_HASH_BYTES = 256 * 1024;
/** Leaf writes a store may have under way at once while a body is imported. */
const LEAF_WRITES_IN_FLIGHT = 4;

// The workers' code, kept inline so it needs no separate build step or file resolution under tsx. Each leaf
// buffer travels main → "a" → "b" → main, transferred (never copied): "a" hashes the leaf (its raw-block
// CID) and feeds the whole-body sha256, "b" feeds sha512, the slowest of the three (no hardware help), so
// the two hash in parallel on different leaves. Messages between them stay in order, so each job's digests
// cover its leaves in body order.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { role, next } = workerData;
const algorithm = role === 'a' ? 'sha256' : 'sha512';
const jobs = new Map();
const onMessage = (m) => {
  if (m.type === 'leaf') {
    let job = jobs.get(m.id);
    if (job === undefined) { job = createHash(algorithm); jobs.set(m.id, job); }
    const bytes = new Uint8Array(m.buffer, 0, m.length);
    job.update(bytes);
    if (role === 'a') {
      const leaf = m.hashLeaf ? createHash('sha256').update(bytes).digest() : undefined;
      next.postMessage({ ...m, leaf }, [m.buffer]);
    } else {
      parentPort.postMessage(m, [m.buffer]);
    }
  } else if (m.type === 'digest') {
    const job = jobs.get(m.id) ?? createHash(algorithm);
    jobs.delete(m.id);
    parentPort.postMessage({ type: 'digest', id: m.id, role, digest: job.digest() });
    if (role === 'a') next.postMessage(m);
  } else if (m.type === 'drop') {
    jobs.delete(m.id);
    if (role === 'a') next.postMessage(m);
  } else if (m.type === 'hash') {
    parentPort.postMessage({ type: 'hash', id: m.id, digest: createHash('sha256').update(m.bytes).digest() });
  }
};
parentPort.on('message', onMessage);
if (role === 'b') next.on('message', onMessage);
`;

export interface BodyDigests {
  sha256: Uint8Array;
  sha512: Uint8Array;
}

/** A leaf of the body whose raw-block digest is known: ready to be stored under `rawLeafCid(sha256)`. */
export interface HashedLeaf {
  sha256: Uint8Array;
  bytes: Uint8Array;
  /** Lets the job dispatch another leaf in its place (call once the leaf is stored). */
  release(): void;
}

export interface DigestJob {
  /** Adds body bytes; waits while MAX_LEAVES_IN_FLIGHT leaves are under way. */
  update(chunk: Uint8Array): Promise<void>;
  /** The whole-body digests; ends the body (a last partial leaf, or the one empty leaf of an empty body). */
  digest(): Promise<BodyDigests>;
  /** The leaves in body order, when begun with `{ leaves: true }`; ends once `end()` or `digest()` is called. */
  leaves(): AsyncGenerator<HashedLeaf>;
  /** Ends the body without waiting for the digests. */
  end(): void;
  /** Gives up on this body: waiting calls reject, the workers forget it. */
  abandon(): void;
}

interface Slot {
  seq: number;
  /** The leaf once both workers have hashed it (its buffer is back on this thread). */
  bytes: Uint8Array | undefined;
  leaf: Uint8Array | undefined;
  released: boolean;
}

interface Job {
  slots: Map<number, Slot>;
  digests: { a?: Uint8Array; b?: Uint8Array };
  /** Everyone waiting for progress of this job: the producer, the leaf consumer, `digest()`. */
  waiters: Set<() => void>;
  failed: Error | undefined;
}

interface WorkerMessage {
  type: 'leaf' | 'digest' | 'hash';
  id: number;
  seq?: number;
  buffer?: ArrayBuffer;
  length?: number;
  leaf?: Uint8Array;
  role?: 'a' | 'b';
  digest?: Uint8Array;
}

/** A leaf no longer counts against the in-flight bound once both workers hashed it and (for imports) it is stored. */
function settle(job: Job, slot: Slot): void {
  if (slot.bytes !== undefined && slot.released) job.slots.delete(slot.seq);
}

function wake(job: Job): void {
  const waiters = [...job.waiters];
  job.waiters.clear();
  for (const w of waiters) w();
}

/**
 * Hashes record bodies off the thread that pipes them: the whole-body sha256 and sha512 every record carries
 * (design §2) and, for imports, each 1 MiB leaf's sha256 (its CID), on two worker threads. The body is
 * copied once, into leaf buffers that pass through both workers and come back to be stored.
 */
export class DigestWorker {
  #workers: { a: Worker; b: Worker } | undefined;
  readonly #jobs = new Map<number, Job>();
  #nextId = 1;
  #closed = false;
  readonly #hashes = new Map<number, { resolve: (digest: Uint8Array) => void; reject: (err: Error) => void }>();
  #nextHash = 1;

  /**
   * sha2-256 of one block, for verifying reads (`verifyingSource(store, workers.sha256)`): a big block is
   * hashed by a worker (a copy is posted: the caller's buffer may be shared or cached), so that replay
   * verifies the next leaf while this thread sends the last one; a small one costs less here.
   */
  readonly sha256 = async (bytes: Uint8Array): Promise<Uint8Array> => {
    if (bytes.byteLength < OFFLOAD_HASH_BYTES) return createHash('sha256').update(bytes).digest();
    const worker = this.#ensure().a;
    const id = this.#nextHash++;
    return new Promise<Uint8Array>((resolve, reject) => {
      this.#hashes.set(id, { resolve, reject });
      worker.postMessage({ type: 'hash', id, bytes });
    });
  };

  #ensure(): { a: Worker; b: Worker } {
    if (this.#closed) throw new Error('DigestWorker is closed');
    if (this.#workers === undefined) {
      const { port1, port2 } = new MessageChannel();
      const start = (role: 'a' | 'b', next: MessagePort): Worker => {
        const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { role, next }, transferList: [next] });
        worker.unref();
        worker.on('message', (m: WorkerMessage) => this.#onMessage(m));
        worker.on('error', (err) => this.#failAll(err));
        return worker;
      };
      this.#workers = { a: start('a', port1), b: start('b', port2) };
    }
    return this.#workers;
  }

  #onMessage(m: WorkerMessage): void {
    if (m.type === 'hash') {
      this.#hashes.get(m.id)?.resolve(new Uint8Array(m.digest!));
      this.#hashes.delete(m.id);
      return;
    }
    const job = this.#jobs.get(m.id);
    if (job === undefined) return;
    if (m.type === 'leaf') {
      const slot = job.slots.get(m.seq!);
      if (slot === undefined) return;
      slot.bytes = new Uint8Array(m.buffer!, 0, m.length);
      if (m.leaf !== undefined) slot.leaf = new Uint8Array(m.leaf);
      settle(job, slot);
    } else if (m.type === 'digest') {
      job.digests[m.role!] = new Uint8Array(m.digest!);
    }
    wake(job);
  }

  /** A worker died: everything under way fails with its error, and the next call starts fresh workers. */
  #failAll(err: Error): void {
    for (const h of this.#hashes.values()) h.reject(err);
    this.#hashes.clear();
    for (const job of this.#jobs.values()) {
      job.failed = err;
      wake(job);
    }
    this.#jobs.clear();
    const dead = this.#workers;
    this.#workers = undefined;
    void dead?.a.terminate();
    void dead?.b.terminate();
  }

  /**
   * Starts a job for one body; with `leaves`, its leaves must be consumed (`leaves()`) or it stalls.
   * `sizeHint` (a Content-Length) sizes the leaf buffers, so a small body does not cost a 1 MiB buffer.
   */
  begin(options: { leaves?: boolean; sizeHint?: number } = {}): DigestJob {
    const workers = this.#ensure();
    const id = this.#nextId++;
    const hashLeaves = options.leaves === true;
    const job: Job = { slots: new Map(), digests: {}, waiters: new Set(), failed: undefined };
    this.#jobs.set(id, job);
    let expected = options.sizeHint !== undefined && Number.isSafeInteger(options.sizeHint) && options.sizeHint >= 0 ? options.sizeHint : undefined;
    // The leaf being filled: allocated when bytes arrive, as big as the rest of the body is expected to be
    // (up to a leaf); without a hint, or past it, it starts small and doubles.
    let current = new ArrayBuffer(0);
    let filled = 0;
    let seq = 0;
    let ended = false;
    let abandoned = false;
    // Resolves on any progress of this job; callers re-check their condition.
    const progress = (): Promise<void> => {
      if (abandoned) return Promise.reject(new AbortedError('Body digest abandoned'));
      if (job.failed !== undefined) return Promise.reject(job.failed);
      return new Promise<void>((resolve) => job.waiters.add(resolve));
    };
    const dispatch = (): void => {
      if (ended && seq === 0) {
        // The whole body is one leaf (at most 1 MiB, most bodies): hashing it here costs less than the round
        // trip through the workers, and its leaf digest is the whole-body sha256.
        const bytes = new Uint8Array(current, 0, filled);
        const sha256 = new Uint8Array(createHash('sha256').update(bytes).digest());
        job.digests = { a: sha256, b: new Uint8Array(createHash('sha512').update(bytes).digest()) };
        job.slots.set(0, { seq: 0, bytes, leaf: hashLeaves ? sha256 : undefined, released: !hashLeaves });
        settle(job, job.slots.get(0)!);
        seq++;
        return;
      }
      job.slots.set(seq, { seq, bytes: undefined, leaf: undefined, released: !hashLeaves });
      workers.a.postMessage({ type: 'leaf', id, seq, buffer: current, length: filled, hashLeaf: hashLeaves }, [current]);
      seq++;
      current = new ArrayBuffer(0);
      filled = 0;
      wake(job);
    };
    const room = (needed: number): void => {
      const hinted = expected !== undefined && expected > 0 ? filled + expected : MIN_LEAF_BUFFER;
      const want = Math.min(CHUNK_BYTES, Math.max(filled + needed, hinted, current.byteLength * 2));
      const bigger = new ArrayBuffer(want);
      new Uint8Array(bigger).set(new Uint8Array(current, 0, filled));
      current = bigger;
    };
    const end = (): void => {
      if (ended) return;
      ended = true;
      // The remainder; an empty body is one empty leaf.
      if (filled > 0 || seq === 0) dispatch();
      wake(job);
    };
    return {
      update: async (chunk) => {
        if (ended) throw new Error('DigestJob.update after the body ended');
        let offset = 0;
        while (offset < chunk.byteLength) {
          const n = Math.min(chunk.byteLength - offset, CHUNK_BYTES - filled);
          if (filled + n > current.byteLength) room(n);
          new Uint8Array(current, filled, n).set(chunk.subarray(offset, offset + n));
          filled += n;
          offset += n;
          if (expected !== undefined) expected = Math.max(0, expected - n);
          if (filled === CHUNK_BYTES) {
            while (job.slots.size >= MAX_LEAVES_IN_FLIGHT) await progress();
            dispatch();
          }
        }
      },
      end,
      digest: async () => {
        end();
        if (job.digests.a === undefined) workers.a.postMessage({ type: 'digest', id });
        while (job.digests.a === undefined || job.digests.b === undefined) await progress();
        this.#jobs.delete(id);
        return { sha256: job.digests.a, sha512: job.digests.b };
      },
      leaves: async function* (): AsyncGenerator<HashedLeaf> {
        if (!hashLeaves) throw new Error('DigestJob.leaves needs begin({ leaves: true })');
        for (let next = 0; ; next++) {
          let slot = job.slots.get(next);
          while (slot?.bytes === undefined) {
            if (ended && next >= seq) return;
            await progress();
            slot = job.slots.get(next);
          }
          const ready = slot;
          yield {
            sha256: ready.leaf!,
            bytes: ready.bytes!,
            release: () => {
              ready.released = true;
              settle(job, ready);
              wake(job);
            },
          };
        }
      },
      abandon: () => {
        if (abandoned) return;
        abandoned = true;
        this.#jobs.delete(id);
        workers.a.postMessage({ type: 'drop', id });
        wake(job);
      },
    };
  }

  /** Ends the worker threads. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const w = this.#workers;
    this.#workers = undefined;
    await Promise.all([w?.a.terminate(), w?.b.terminate()]);
  }
}

/**
 * Imports a body as its UnixFS DAG (the same CIDs as `importBody`) while `job` hashes it: `source` is fed
 * to the job, hashed leaves are stored as they come back (a few writes at a time, in order) and the DAG is
 * built over them. Fails, and abandons the job, if the source, a write or the workers fail.
 */
export async function importThroughWorkers(source: AsyncIterable<Uint8Array>, job: DigestJob, sink: BlockSink, options: AbortOptions = {}): Promise<ImportedBody> {
  throwIfAborted(options.signal);
  const stored = async function* (): AsyncGenerator<StoredLeaf> {
    const writes: Promise<StoredLeaf>[] = [];
    for await (const leaf of job.leaves()) {
      const cid = rawLeafCid(leaf.sha256);
      const write = sink.put(cid, leaf.bytes, options).then(() => {
        leaf.release();
        return { cid, size: leaf.bytes.byteLength };
      });
      // A write that fails while an earlier one is awaited is reported when its turn comes, not as unhandled.
      write.catch(() => undefined);
      writes.push(write);
      if (writes.length >= LEAF_WRITES_IN_FLIGHT) yield await writes.shift()!;
    }
    while (writes.length > 0) yield await writes.shift()!;
  };
  const feed = async (): Promise<void> => {
    for await (const chunk of source) await job.update(chunk);
    job.end();
  };
  const fed = feed();
  const built = buildFileDag(stored(), sink, options);
  try {
    const [root] = await Promise.all([built, fed]);
    return root;
  } catch (err) {
    job.abandon();
    // Whichever side failed first, the other stops once the job is abandoned; neither is left unhandled.
    await Promise.allSettled([built, fed]);
    throw err;
  }
}
