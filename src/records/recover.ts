import { stat } from 'node:fs/promises';
import { readNetlockRoot } from '../netlock/file.ts';
import type { WrittenNetlock } from '../netlock/file.ts';
import { readKeptNetlock } from '../oracle/kept-netlock.ts';
import { RunSet } from '../oracle/run-set.ts';
import type { BlockSink, BlockSource } from '../protocol/blocks.ts';
import { describeRefused } from './journal-check.ts';
import type { RefusedJournalLine } from './journal-check.ts';
import { RunJournal } from './journal.ts';

export type RecoverOutcome =
  | { kind: 'recovered'; file: WrittenNetlock; recovered: number; kept: number; refused: RefusedJournalLine[]; torn: number[]; journalKept: boolean }
  | { kind: 'nothing'; torn: number[]; refused: RefusedJournalLine[]; previous: string };

/** What is at `path` now, in words: the previous run's netlock (root, entries, time) or nothing. */
export async function describeExistingNetlock(path: string): Promise<string> {
  let mtime: Date;
  try {
    mtime = (await stat(path)).mtime;
  } catch {
    return `there is no netlock at ${path} either`;
  }
  try {
    const { root, file } = await readNetlockRoot(path);
    const count = file === undefined ? '' : `, ${file.count} entries`;
    return `${path} is left as it was: netlock ${root.toString()}${count}, written ${mtime.toISOString()} (an earlier run's)`;
  } catch (err) {
    return `${path} is left as it was (written ${mtime.toISOString()}; unreadable: ${(err as Error).message})`;
  }
}

/**
 * `fetch-oracle recover`: rebuilds the netlock at `netlockPath` from its journal. Lines whose record or
 * signature does not verify (or that a key outside `trusted` signed) are refused; when any is, the journal
 * is kept for inspection. With nothing to recover, nothing is written and the outcome says what the path
 * holds (the previous netlock stays in place: the caller must say so).
 */
export async function recoverNetlock(netlockPath: string, store: BlockSource & BlockSink, trusted?: readonly Uint8Array[]): Promise<RecoverOutcome> {
  const journal = new RunJournal(netlockPath);
  const { entries, bad } = await journal.recover();
  const run = new RunSet();
  const refused = entries.length === 0 ? [] : await run.restore(entries, store, trusted);
  if (run.size === 0) return { kind: 'nothing', torn: bad, refused, previous: await describeExistingNetlock(netlockPath) };
  const recovered = run.size;
  // What the netlock at the path holds stays in it (issue 13, defect 1); one that cannot be verified is
  // refused (InvalidNetlockError), and neither it nor the journal is touched.
  const kept = await readKeptNetlock(netlockPath, store, run);
  const file = await run.write(netlockPath, store, kept?.variantRules);
  const journalKept = refused.length > 0;
  if (!journalKept) await journal.remove();
  return { kind: 'recovered', file, recovered, kept: file.count - recovered, refused, torn: bad, journalKept };
}

/** The lines `recover` prints: stdout (what was written) and stderr (what was refused or left alone). */
export function recoverMessages(outcome: RecoverOutcome, netlockPath: string, journalPath: string): { out: string; err: string; code: number } {
  const torn = outcome.torn.length > 0 ? `skipped ${outcome.torn.length} torn line(s) (${outcome.torn.slice(0, 10).join(', ')})` : '';
  const refused = outcome.refused.length > 0 ? `${describeRefused(outcome.refused, journalPath)}\n` : '';
  if (outcome.kind === 'nothing') {
    const why = outcome.refused.length > 0 ? 'every journal line was refused' : outcome.torn.length > 0 ? `${journalPath} holds only torn lines` : `no journal entries in ${journalPath}`;
    return { out: '', err: `${refused}nothing to recover (${why}); ${outcome.previous}\n`, code: outcome.refused.length > 0 ? 1 : 2 };
  }
  const held = outcome.kept > 0 ? `, kept the ${outcome.kept} it held: ${outcome.file.count} in all` : '';
  const out = `recovered ${outcome.recovered} entries into ${netlockPath}${held} (netlock ${outcome.file.netlock})${torn === '' ? '' : `; ${torn}`}\n`;
  const kept = outcome.journalKept ? `kept ${journalPath} for inspection\n` : '';
  return { out, err: `${refused}${kept}`, code: outcome.refused.length > 0 ? 1 : 0 };
}
