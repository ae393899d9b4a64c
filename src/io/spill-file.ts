import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** Longest text a ticket can name (its length shares the number with its position). */
export const SPILL_MAX_BYTES = 2 ** 21 - 1;
const POSITION_LIMIT = 2 ** 32;

/**
 * Texts written to a temporary file and read back by the ticket `append` returns: what a process must keep
 * until it ends but reads only once (a run's entries until its netlock is written) stays out of the heap,
 * where 100,000 of them would be walked by every full collection (issue #15).
 *
 * The file is unlinked as soon as it is open, so nothing is left behind whatever ends the process; it is
 * scratch, never synced (the run journal is what survives a crash). Reads and writes are synchronous on
 * purpose: a few hundred bytes to or from the page cache cost less than a thread-pool round trip, as the
 * record log's appends do.
 */
export class SpillFile {
  #fd: number | undefined;
  #end = 0;

  constructor(dir: string) {
    const path = join(dir, `.spill-${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
    this.#fd = openSync(path, 'w+', 0o600);
    unlinkSync(path);
  }

  /**
   * Writes `text`; returns its ticket, or undefined when it is longer than `SPILL_MAX_BYTES` or the file has
   * grown past 4 GiB (the caller keeps such a text itself). Throws what the write throws (e.g. ENOSPC); a
   * failed write leaves the file as it was for the next one.
   */
  append(text: string): number | undefined {
    const bytes = Buffer.from(text, 'utf8');
    if (bytes.byteLength > SPILL_MAX_BYTES || this.#end + bytes.byteLength > POSITION_LIMIT) return undefined;
    const fd = this.#open();
    for (let done = 0; done < bytes.byteLength; ) done += writeSync(fd, bytes, done, bytes.byteLength - done, this.#end + done);
    const ticket = this.#end * (SPILL_MAX_BYTES + 1) + bytes.byteLength;
    this.#end += bytes.byteLength;
    return ticket;
  }

  /** The text `ticket` names. */
  read(ticket: number): string {
    const fd = this.#open();
    const length = ticket % (SPILL_MAX_BYTES + 1);
    const position = (ticket - length) / (SPILL_MAX_BYTES + 1);
    const bytes = Buffer.allocUnsafe(length);
    for (let done = 0; done < length; ) {
      const n = readSync(fd, bytes, done, length - done, position + done);
      if (n === 0) throw new Error(`spill file ended at ${position + done} of a ${length}-byte text at ${position}`);
      done += n;
    }
    return bytes.toString('utf8');
  }

  /** Closes (and so frees) the file. Idempotent; reads and appends afterwards throw. */
  close(): void {
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd !== undefined) closeSync(fd);
  }

  #open(): number {
    if (this.#fd === undefined) throw new Error('spill file is closed');
    return this.#fd;
  }
}
