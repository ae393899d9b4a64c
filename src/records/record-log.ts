import { closeSync, createReadStream, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { open, readFile, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { CID } from 'multiformats/cid';
import { throwIfAborted } from '../errors.ts';
import { cidText } from '../protocol/blocks.ts';
import type { AbortOptions } from '../protocol/blocks.ts';
import type { SignedRecord } from '../protocol/signature.ts';

/** One line of a record log: a request key and the signed record that answers it. */
export interface SignedRecordLine {
  key: string;
  record: string;
  signature: string;
}

export interface RecordLogEntry {
  readonly key: string;
  readonly signed: SignedRecord;
}

export interface RecordLogContents {
  /** The well-formed lines, in file order (a later line for a key supersedes an earlier one). */
  entries: RecordLogEntry[];
  /** 1-based numbers of lines that were not complete, well-formed lines (torn by a crash mid-append). */
  bad: number[];
}

/**
 * An append-only JSON-lines file of signed records, one `{key, record, signature}` line each: the format of
 * the record index (`records.jsonl`) and of a run's journal (`NETLOCK.journal`). Nothing is touched until
 * the first call. `append` returns once the line is written (a killed process loses none); `sync` puts
 * every line written before it on disk (fdatasync; syncs asked for while one runs share the next), which
 * the record path does at its checkpoints (`Checkpoints`, docs/formats.md). `read` skips torn lines and
 * reports their numbers, so a crash mid-append costs that one line, never the file. The line is written with
 * one blocking `write` on this thread: a short append to the page cache costs less than a thread-pool round
 * trip (`appendFile` was ~10% of a 4 KiB record's time, issue #15); only the fdatasync goes through the pool.
 */
export class RecordLog {
  readonly path: string;
  #file: Promise<FileHandle> | undefined;
  /** Where this process's next append lands when no other process appends meanwhile; unknown after a failed write. */
  #end: number | undefined;
  /** A descriptor for `lineAt`, opened on first use. */
  #readFd: number | undefined;
  /** The sync that covers appends written since the running one started; not started yet. */
  #nextSync: Promise<void> | undefined;
  #runningSync: Promise<void> | undefined;
  /** A write failed part-way: the next line starts on a line of its own, so only the torn one is lost. */
  #torn = false;
  /** Lines were written since the last sync started. */
  #unsynced = false;

  constructor(path: string) {
    this.path = path;
  }

  /** Every line in the file; an absent file is an empty log. */
  async read(options?: AbortOptions): Promise<RecordLogContents> {
    throwIfAborted(options?.signal);
    let text: string;
    try {
      text = await readFile(this.path, { encoding: 'utf8', ...(options?.signal === undefined ? {} : { signal: options.signal }) });
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], bad: [] };
      throw cause;
    }
    return parseLines(text);
  }

  /**
   * Every well-formed line, given to `onEntry` with the byte offset it starts at, in file order as the file
   * is read (a log of 100,000 lines is never held whole, as text or as entries); returns the 1-based numbers
   * of the bad lines. An absent file is an empty log.
   */
  async readEach(onEntry: (entry: RecordLogEntry, offset: number) => void, options?: AbortOptions): Promise<{ bad: number[] }> {
    return this.#scan(fromLine, onEntry, options);
  }

  /**
   * `readEach` for what an index of the file needs, each line's key and offset: a line is taken when it has
   * the shape of a record line (a key, a record CID's text, a 64-byte signature's base64), without decoding
   * the CID or the signature (with their garbage, half the time of opening a million lines). Whoever reads a
   * record reads its line whole (`lineAt`), and a line that does not decode is no record: its key is recorded
   * again.
   */
  async readKeys(onKey: (key: string, offset: number) => void, options?: AbortOptions): Promise<{ bad: number[] }> {
    return this.#scan(keyOfLine, onKey, options);
  }

  async #scan<T>(parse: (line: string) => T | undefined, onLine: (value: T, offset: number) => void, options?: AbortOptions): Promise<{ bad: number[] }> {
    throwIfAborted(options?.signal);
    const bad: number[] = [];
    let lineNo = 0;
    const stream = createReadStream(this.path, { highWaterMark: 256 * 1024, ...(options?.signal === undefined ? {} : { signal: options.signal }) });
    // Split on newline bytes, not with readline: the byte offset of each line is what the index keeps.
    const decoder = new StringDecoder('utf8');
    let partial = '';
    let lineStart = 0;
    let position = 0;
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        let from = 0;
        for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, from)) {
          const line = partial + decoder.write(chunk.subarray(from, nl));
          partial = '';
          takeLine(line, ++lineNo, parse, (v) => onLine(v, lineStart), bad);
          from = nl + 1;
          lineStart = position + from;
        }
        partial += decoder.write(chunk.subarray(from));
        position += chunk.byteLength;
      }
      const last = partial + decoder.end();
      if (last !== '') takeLine(last, ++lineNo, parse, (v) => onLine(v, lineStart), bad);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return { bad: [] };
      throw cause;
    } finally {
      stream.destroy();
    }
    return { bad };
  }

  /**
   * The line for `key` (or for a key `key` accepts) that starts at byte `offset` (one `readEach` or `append`
   * gave), read now with blocking calls (a few hundred bytes from the page cache). Should another process
   * have appended meanwhile, the line is further on: the first well-formed line for such a key within
   * `SCAN_BYTES` of `offset` is returned with where it starts. Undefined when there is none.
   */
  lineAt(offset: number, key: string | ((key: string) => boolean)): { entry: RecordLogEntry; offset: number } | undefined {
    const wanted = typeof key === 'string' ? (k: string) => k === key : key;
    this.#readFd ??= openSync(this.path, 'r');
    const chunk = Buffer.allocUnsafe(LINE_READ_BYTES);
    const decoder = new StringDecoder('utf8');
    let partial = '';
    let lineStart = offset;
    for (let position = offset; position < offset + SCAN_BYTES; ) {
      const n = readSync(this.#readFd, chunk, 0, chunk.byteLength, position);
      if (n === 0) return undefined;
      let from = 0;
      for (let nl = chunk.indexOf(0x0a); nl !== -1 && nl < n; nl = chunk.indexOf(0x0a, from)) {
        const entry = fromLine(partial + decoder.write(chunk.subarray(from, nl)));
        if (entry !== undefined && wanted(entry.key)) return { entry, offset: lineStart };
        partial = '';
        from = nl + 1;
        lineStart = position + from;
      }
      partial += decoder.write(chunk.subarray(from, n));
      position += n;
    }
    return undefined;
  }

  /**
   * Appends one line (written when this resolves; on disk after the next `sync`); returns the byte offset the
   * line starts at (exact while this process is the file's only writer: a caller reading it back with
   * `lineAt` checks the key).
   */
  async append(key: string, signed: SignedRecord, options?: AbortOptions): Promise<number> {
    throwIfAborted(options?.signal);
    // One handle, opened once even when appends race: concurrent appends of whole lines do not interleave.
    this.#file ??= openForAppend(this.path).catch((cause: unknown) => {
      this.#file = undefined; // the next append tries again
      throw cause;
    });
    const file = await this.#file;
    const line = Buffer.from(this.#torn ? `\n${toLine(key, signed)}` : toLine(key, signed));
    let offset: number;
    try {
      const start = this.#end ?? fstatSync(file.fd).size;
      offset = start + (this.#torn ? 1 : 0);
      // One whole line per call: appends from this thread never interleave (O_APPEND, no await in between).
      for (let done = 0; done < line.byteLength; ) done += writeSync(file.fd, line, done, line.byteLength - done);
      this.#torn = false;
      this.#end = start + line.byteLength;
    } catch (cause) {
      this.#torn = true; // e.g. ENOSPC after part of the line
      this.#end = undefined;
      throw cause;
    } finally {
      this.#unsynced = true; // a torn line's bytes too: the file's length moved
    }
    return offset;
  }

  /** Puts every line written before this call on disk. Nothing to do when none was written since the last sync. */
  async sync(options?: AbortOptions): Promise<void> {
    throwIfAborted(options?.signal);
    const file = this.#file;
    if (file === undefined) return;
    const handle = await file;
    if (this.#unsynced) return this.#sync(handle);
    // Lines written before the sync under way started are on disk when it ends.
    await this.#runningSync;
  }

  /** Closes the file handle (appends reopen it). Idempotent. */
  async close(): Promise<void> {
    const file = this.#file;
    this.#file = undefined;
    this.#end = undefined;
    if (this.#readFd !== undefined) closeSync(this.#readFd);
    this.#readFd = undefined;
    // A handle that failed to open has nothing to close (its append reported why).
    const handle = await file?.catch(() => undefined);
    if (handle === undefined) return;
    await this.#runningSync?.catch(() => {});
    await this.#nextSync?.catch(() => {});
    await handle.close();
  }

  /** Closes and deletes the file (a journal whose run finished). */
  async remove(): Promise<void> {
    await this.close();
    await unlink(this.path).catch((cause: NodeJS.ErrnoException) => {
      if (cause.code !== 'ENOENT') throw cause;
    });
  }

  /** Group commit: one fdatasync for every append written before it starts. */
  #sync(file: FileHandle): Promise<void> {
    if (this.#nextSync !== undefined) return this.#nextSync;
    const start = async (): Promise<void> => {
      await this.#runningSync?.catch(() => {});
      this.#nextSync = undefined;
      this.#unsynced = false;
      const running = file.datasync();
      this.#runningSync = running;
      try {
        await running;
      } catch (err) {
        this.#unsynced = true; // those lines are still to be synced
        throw err;
      } finally {
        if (this.#runningSync === running) this.#runningSync = undefined;
      }
    };
    const next = start();
    this.#nextSync = next;
    return next;
  }
}

/** Bytes `lineAt` reads at a time: most lines (a URL, a CID, a signature) fit one read. */
const LINE_READ_BYTES = 1024;
/** How far past its offset `lineAt` looks for a line that other processes' appends pushed on. */
const SCAN_BYTES = 1024 * 1024;

/**
 * Opens for appending (0600: a record log names every URL a build fetched). A last line without its
 * newline (torn by a crash) is ended first, so the next line starts on a line of its own.
 */
async function openForAppend(path: string): Promise<FileHandle> {
  const file = await open(path, 'a+', 0o600);
  try {
    const { size } = await file.stat();
    if (size > 0) {
      const last = new Uint8Array(1);
      await file.read(last, 0, 1, size - 1);
      if (last[0] !== 0x0a) await file.appendFile('\n');
    }
    return file;
  } catch (cause) {
    await file.close();
    throw cause;
  }
}

export function toLine(key: string, signed: SignedRecord): string {
  const line: SignedRecordLine = { key, record: cidText(signed.record), signature: Buffer.from(signed.signature).toString('base64') };
  return `${JSON.stringify(line)}\n`;
}

/** A line's three fields, undecoded; undefined when it is not a JSON object with them as strings (a torn write). */
function lineFields(text: string): SignedRecordLine | undefined {
  try {
    const v = JSON.parse(text) as Partial<SignedRecordLine>;
    return typeof v.key === 'string' && typeof v.record === 'string' && typeof v.signature === 'string' ? (v as SignedRecordLine) : undefined;
  } catch {
    return undefined;
  }
}

/** Parses one line; undefined when it is not a complete, well-formed line (a torn write after a crash). */
export function fromLine(text: string): RecordLogEntry | undefined {
  const v = lineFields(text);
  if (v === undefined) return undefined;
  const signature = new Uint8Array(Buffer.from(v.signature, 'base64'));
  if (signature.byteLength !== 64) return undefined;
  try {
    return { key: v.key, signed: { record: CID.parse(v.record), signature } };
  } catch {
    return undefined;
  }
}

/** Parses the text of a record log, returning good lines and the 1-based numbers of bad ones. */
export function parseLines(text: string): RecordLogContents {
  const entries: RecordLogEntry[] = [];
  const bad: number[] = [];
  text.split('\n').forEach((line, i) => takeLine(line, i + 1, fromLine, (e) => entries.push(e), bad));
  return { entries, bad };
}

/** One line of a log: blank lines are skipped, a well-formed one goes to `onValue`, any other is noted in `bad`. */
function takeLine<T>(line: string, lineNo: number, parse: (line: string) => T | undefined, onValue: (value: T) => void, bad: number[]): void {
  if (line.trim() === '') return;
  const parsed = parse(line);
  if (parsed === undefined) bad.push(lineNo);
  else onValue(parsed);
}

/** The base64 text of a 64-byte signature, padding included. */
const SIGNATURE_BASE64_CHARS = 88;

/** The key of a line shaped as a record line (see `readKeys`); undefined for any other (a torn write). */
export function keyOfLine(text: string): string | undefined {
  const v = lineFields(text);
  return v !== undefined && v.record !== '' && v.signature.length === SIGNATURE_BASE64_CHARS ? v.key : undefined;
}
