// A plain pass-through forward proxy (absolute-form HTTP only, no store, no hashing): the baseline
// the record-overhead target is measured against. Prints `listening http://…` like fetch-oracle.
//
// `--digests`: the same, plus what the contract makes a record compute over every byte of a body, and nothing
// else: the SHA-256 of each 1 MiB leaf (its CID) on this thread, the whole body's SHA-256 and SHA-512 (design
// §2) on two worker threads of their own, the answer ended once all three are done. No store, no record: the
// least a record of a large body can cost on this stack, with both cores used. One body at a time (the
// benchmark's curl); its batches are shared with both workers, never copied to them. Not `record`'s own
// `DigestWorker`, which hashes both on one thread: a floor gets the cheapest split (~4% faster here).
import { hash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Worker } from 'node:worker_threads';

const LEAF = 1024 * 1024;
/** Batches the workers may hold before the body waits: bounds memory as the oracle's digest worker does. */
const MAX_BATCHES = 16;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
let digest = createHash(workerData);
parentPort.on('message', (m) => {
  if (m.end) {
    parentPort.postMessage({ hex: digest.digest('hex') });
    digest = createHash(workerData);
    return;
  }
  digest.update(new Uint8Array(m.batch, 0, m.length));
  parentPort.postMessage({ batch: m.batch });
});
`;

interface Digester {
  worker: Worker;
  next: (hex: string) => void;
}

function digester(algorithm: string, release: (batch: SharedArrayBuffer) => void): Digester {
  const d: Digester = { worker: new Worker(WORKER_SOURCE, { eval: true, workerData: algorithm }), next: () => {} };
  d.worker.on('message', (m: { batch?: SharedArrayBuffer; hex?: string }) => (m.batch !== undefined ? release(m.batch) : d.next(m.hex!)));
  d.worker.unref();
  return d;
}

/** The contract's three digests of one body at a time, fed as it streams. */
class ContractDigests {
  readonly #free: SharedArrayBuffer[] = [];
  readonly #acks = new Map<SharedArrayBuffer, number>();
  readonly #workers: Digester[];
  #made = 0;
  #batch: SharedArrayBuffer | undefined;
  #filled = 0;
  #waiting: (() => void) | undefined;

  constructor() {
    const release = (batch: SharedArrayBuffer): void => {
      const left = this.#acks.get(batch)! - 1;
      if (left > 0) return void this.#acks.set(batch, left);
      this.#acks.delete(batch);
      this.#free.push(batch);
      const wake = this.#waiting;
      this.#waiting = undefined;
      wake?.();
    };
    this.#workers = [digester('sha256', release), digester('sha512', release)];
  }

  async #take(): Promise<SharedArrayBuffer> {
    while (this.#free.length === 0 && this.#made >= MAX_BATCHES) await new Promise<void>((resolve) => (this.#waiting = resolve));
    if (this.#free.length > 0) return this.#free.pop()!;
    this.#made++;
    return new SharedArrayBuffer(LEAF);
  }

  #send(): void {
    const view = new Uint8Array(this.#batch!, 0, this.#filled);
    hash('sha256', view); // the leaf's CID digest
    this.#acks.set(this.#batch!, this.#workers.length);
    for (const w of this.#workers) w.worker.postMessage({ batch: this.#batch, length: this.#filled });
    this.#batch = undefined;
    this.#filled = 0;
  }

  async update(chunk: Uint8Array): Promise<void> {
    for (let at = 0; at < chunk.byteLength; ) {
      this.#batch ??= await this.#take();
      const n = Math.min(chunk.byteLength - at, LEAF - this.#filled);
      new Uint8Array(this.#batch, this.#filled, n).set(chunk.subarray(at, at + n));
      this.#filled += n;
      at += n;
      if (this.#filled === LEAF) this.#send();
    }
  }

  async end(): Promise<string[]> {
    if (this.#filled > 0) this.#send();
    const done = this.#workers.map((w) => new Promise<string>((resolve) => (w.next = resolve)));
    for (const w of this.#workers) w.worker.postMessage({ end: true });
    return Promise.all(done);
  }
}

const digests = process.argv.includes('--digests') ? new ContractDigests() : undefined;

async function relayDigested(upRes: IncomingMessage, res: ServerResponse, d: ContractDigests): Promise<void> {
  for await (const chunk of upRes) {
    await d.update(chunk as Buffer);
    if (!res.write(chunk)) await once(res, 'drain');
  }
  await d.end();
  res.end();
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '');
  const up = request({ host: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, method: req.method, headers: req.headers }, (upRes) => {
    res.writeHead(upRes.statusCode ?? 502, upRes.headers);
    if (digests === undefined) upRes.pipe(res);
    else relayDigested(upRes, res, digests).catch(() => res.destroy());
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
});
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
