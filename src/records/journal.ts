import { open, readFile, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { SignedRecord } from '../protocol/signature.ts';
import { parseLines, toLine } from './record-log.ts';

/**
 * The run journal beside a netlock file (`<netlock>.journal`): one line per request key served in this
 * run, appended before the response completes. After a crash (`kill -9`) the next run, or
 * `fetch-oracle recover`, rebuilds the netlock from it.
 */
export class RunJournal {
  readonly path: string;
  #file: Promise<FileHandle> | undefined;

  constructor(netlockPath: string) {
    this.path = `${netlockPath}.journal`;
  }

  /** Entries left by an earlier run that did not finish, plus line numbers of torn lines. */
  async recover(): Promise<{ entries: Array<{ key: string; signed: SignedRecord }>; bad: number[] }> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], bad: [] };
      throw cause;
    }
    return parseLines(text);
  }

  async append(key: string, signed: SignedRecord): Promise<void> {
    // One handle, opened once even when puts race: concurrent appends of whole lines do not interleave.
    this.#file ??= open(this.path, 'a', 0o600);
    await (await this.#file).appendFile(toLine(key, signed));
  }

  async remove(): Promise<void> {
    const file = this.#file;
    this.#file = undefined;
    await (await file)?.close();
    await unlink(this.path).catch((cause: NodeJS.ErrnoException) => {
      if (cause.code !== 'ENOENT') throw cause;
    });
  }
}
