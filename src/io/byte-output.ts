import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { AbortedError } from '../errors.ts';

/** Small sections are gathered into writes of about this size. */
const WRITE_BATCH_BYTES = 1024 * 1024;

/** Where a command writes its output: bytes in order, then `finish` (the output is complete) or `abort`. */
export interface ByteOutput {
  write(parts: readonly Uint8Array[]): Promise<void>;
  finish(): Promise<void>;
  abort(): Promise<void>;
}

/**
 * A path is written to a temporary file, fsynced and renamed, so no partial output (a CAR, a pinned list) is
 * ever left under the name; a Writable is written with backpressure and not ended (the caller owns it).
 */
export async function openByteOutput(out: Writable | string): Promise<ByteOutput> {
  return typeof out === 'string' ? FileOutput.create(out) : new StreamOutput(out);
}

/** Writes to `<path>.<random>.tmp`, then fsync + rename: the file appears whole or not at all. */
class FileOutput implements ByteOutput {
  readonly #path: string;
  readonly #tmp: string;
  readonly #handle: FileHandle;
  #batch: Uint8Array[] = [];
  #batchBytes = 0;

  private constructor(path: string, tmp: string, handle: FileHandle) {
    this.#path = path;
    this.#tmp = tmp;
    this.#handle = handle;
  }

  static async create(path: string): Promise<FileOutput> {
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    return new FileOutput(path, tmp, await open(tmp, 'w'));
  }

  async write(parts: readonly Uint8Array[]): Promise<void> {
    for (const p of parts) {
      this.#batch.push(p);
      this.#batchBytes += p.byteLength;
    }
    if (this.#batchBytes >= WRITE_BATCH_BYTES) await this.#flush();
  }

  async #flush(): Promise<void> {
    const batch = this.#batch;
    this.#batch = [];
    this.#batchBytes = 0;
    // writev may write less than asked; loop over what is left.
    let pending = batch;
    while (pending.length > 0) {
      const { bytesWritten } = await this.#handle.writev(pending);
      let left = bytesWritten;
      const rest: Uint8Array[] = [];
      for (const p of pending) {
        if (left >= p.byteLength) left -= p.byteLength;
        else {
          rest.push(p.subarray(left));
          left = 0;
        }
      }
      pending = rest;
    }
  }

  async finish(): Promise<void> {
    await this.#flush();
    await this.#handle.sync();
    await this.#handle.close();
    await rename(this.#tmp, this.#path);
  }

  async abort(): Promise<void> {
    await this.#handle.close().catch(() => {});
    await unlink(this.#tmp).catch(() => {});
  }
}

/** Writes to a caller's stream, waiting for `drain` when it is full; a stream error fails the output. */
class StreamOutput implements ByteOutput {
  readonly #out: Writable;

  constructor(out: Writable) {
    this.#out = out;
  }

  async write(parts: readonly Uint8Array[]): Promise<void> {
    for (const p of parts) {
      if (this.#out.destroyed || this.#out.writableEnded) throw new AbortedError('the output stream closed before the output was complete');
      if (!this.#out.write(p)) await drained(this.#out);
    }
  }

  finish(): Promise<void> {
    return Promise.resolve();
  }

  abort(): Promise<void> {
    return Promise.resolve();
  }
}

function drained(out: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      out.off('drain', onDrain);
      out.off('error', onError);
      out.off('close', onClose);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onDrain = (): void => done();
    const onError = (err: Error): void => done(err);
    const onClose = (): void => done(new AbortedError('the output stream closed before the output was complete'));
    out.on('drain', onDrain);
    out.on('error', onError);
    out.on('close', onClose);
  });
}
