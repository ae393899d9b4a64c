import { appendFile, readFile, unlink } from 'node:fs/promises';
import type { SignedRecord } from '../protocol/signature.ts';
import { parseLines, toLine } from './signed-record-json.ts';

/**
 * The run journal beside a netlock file (`<netlock>.journal`): one line per request key served in this
 * run, appended before the response completes. After a crash (`kill -9`) the next run, or
 * `fetch-oracle recover`, rebuilds the netlock from it.
 */
export class RunJournal {
  readonly path: string;

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
    await appendFile(this.path, toLine(key, signed), { mode: 0o600 });
  }

  async remove(): Promise<void> {
    await unlink(this.path).catch((cause: NodeJS.ErrnoException) => {
      if (cause.code !== 'ENOENT') throw cause;
    });
  }
}
