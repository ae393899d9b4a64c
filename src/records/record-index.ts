import { appendFile, mkdir, open, readFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.ts';
import { NOOP_LOGGER } from '../log.ts';
import type { SignedRecord } from '../protocol/signature.ts';
import { parseLines, toLine } from './record-log.ts';

/**
 * Request key → newest signed record, for record mode. Persisted append-only as JSON lines in
 * `<dir>/records.jsonl`; the last line for a key wins. A torn last line (crash mid-append) is skipped
 * with a warning; the record blocks themselves live in the block store.
 */
export class FsRecordIndex {
  readonly path: string;
  readonly #byKey = new Map<string, SignedRecord>();
  #file: Promise<FileHandle> | undefined;
  private constructor(path: string) {
    this.path = path;
  }

  static async open(dir: string, logger: Logger = NOOP_LOGGER): Promise<FsRecordIndex> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const index = new FsRecordIndex(join(dir, 'records.jsonl'));
    let text = '';
    try {
      text = await readFile(index.path, 'utf8');
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') throw cause;
    }
    const { entries, bad } = parseLines(text);
    for (const e of entries) index.#byKey.set(e.key, e.signed);
    if (bad.length > 0) logger.warn('skipped %d malformed line(s) of %s: %s', bad.length, index.path, bad.slice(0, 10).join(', '));
    if (text !== '' && !text.endsWith('\n')) await appendFile(index.path, '\n');
    return index;
  }

  get(key: string): SignedRecord | undefined {
    return this.#byKey.get(key);
  }

  /**
   * Appends a line. Not fsync'd: the line survives a process crash (it is in the page cache); a machine
   * crash may lose the newest lines, which only costs a re-fetch, never a wrong answer.
   */
  async put(key: string, signed: SignedRecord): Promise<void> {
    // One handle, opened once even when puts race: concurrent appends of whole lines do not interleave.
    this.#file ??= open(this.path, 'a', 0o600);
    await (await this.#file).appendFile(toLine(key, signed));
    this.#byKey.set(key, signed);
  }

  async close(): Promise<void> {
    const file = this.#file;
    this.#file = undefined;
    await (await file)?.close();
  }

  /** Every key whose URL is `url` (any method or variant). */
  keysForUrl(url: string): string[] {
    const prefix = `${url}\n`;
    return [...this.#byKey.keys()].filter((k) => k.startsWith(prefix)).sort();
  }

  get size(): number {
    return this.#byKey.size;
  }
}
