import { appendFile, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CID } from 'multiformats/cid';

/** The file, in the data directory. */
export const VERIFIED_NETLOCKS_FILE = 'verified-netlocks';
/**
 * What a line vouches for: the checks `readKeptNetlock` makes (every record signed by a key its root names and
 * answering its entry's key, the blocks' hashes). Lines of another version are ignored, so a stricter check
 * in a later version runs once more on every netlock.
 */
const CHECKS = 'v1';
/** Roots remembered; the file is cut back to these when it holds four times as many. */
const KEEP_ROOTS = 1024;

/**
 * The netlock roots this data directory checked whole or wrote itself (`<dataDir>/verified-netlocks`, one
 * `v1 <root CID>` line each, mode 0600). A netlock is a DAG: its root CID names its entries and records byte for
 * byte, and every block is still checked against its CID as it is read, so a root checked once need not have its
 * signatures checked again when a record run keeps it (issue #15: a kept netlock of 100,000 entries took 11.8 s
 * before `record` listened, 4.1 s without the signature checks). A root a record run wrote is as good as the
 * data directory it came from, which `record` already trusts (it serves answers from `records.jsonl`), and so
 * is this file, beside the signing key: whoever can write it can replace the key too. A line lost to a crash
 * only means the check runs again.
 */
export class VerifiedNetlocks {
  readonly #path: string;
  readonly #roots: Set<string>;

  private constructor(path: string, roots: Set<string>) {
    this.#path = path;
    this.#roots = roots;
  }

  /** Reads the file of `dataDir` (none, or one it cannot read: nothing verified, every kept netlock checked). */
  static async open(dataDir: string): Promise<VerifiedNetlocks> {
    const path = join(dataDir, VERIFIED_NETLOCKS_FILE);
    const text = await readFile(path, 'utf8').catch(() => '');
    const roots: string[] = [];
    for (const line of text.split('\n')) {
      const [checks, root, extra] = line.split(' ');
      if (checks === CHECKS && root !== undefined && root.length > 0 && extra === undefined) roots.push(root);
    }
    const kept = roots.slice(-KEEP_ROOTS);
    if (roots.length > 4 * KEEP_ROOTS) {
      // Cut back (temporary file + rename: a crash leaves the old file or the new one, whole); if it cannot
      // be, the file stays as it is.
      const tmp = `${path}.${process.pid}.tmp`;
      await writeFile(tmp, kept.map((r) => `${CHECKS} ${r}\n`).join(''), { mode: 0o600 })
        .then(() => rename(tmp, path))
        .catch(() => unlink(tmp).catch(() => {}));
    }
    return new VerifiedNetlocks(path, new Set(kept));
  }

  has(root: CID): boolean {
    return this.#roots.has(root.toString());
  }

  /**
   * Remembers `root` as checked whole (or written here). Never fails: a line that cannot be written (a full
   * disk) only means the next run checks that netlock again, and must not fail the run that wrote it.
   */
  async add(root: CID): Promise<void> {
    const text = root.toString();
    if (this.#roots.has(text)) return;
    try {
      await appendFile(this.#path, `${CHECKS} ${text}\n`, { mode: 0o600 });
      this.#roots.add(text);
    } catch {
      // not remembered
    }
  }
}
