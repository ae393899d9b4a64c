/** `fetch-oracle recover`: a netlock rebuilt from the journal of a record run that crashed. */
import { resolve } from 'node:path';
import type { Command, CommandContext } from './command.ts';
import { UsageError } from './common.ts';
import { parseOptions, str } from './options.ts';
import { readKeptNetlock } from '../oracle/kept-netlock.ts';
import { RunSet } from '../oracle/run-set.ts';
import { RunJournal } from '../records/journal.ts';
import { FsBlockStore } from '../store/fs-block-store.ts';

export const RECOVER_HELP = `Usage: fetch-oracle recover --netlock FILE [--data DIR]

Writes FILE from FILE.journal, the journal a record run keeps while it runs (for a run killed before it could
write its netlock), keeping the entries FILE already holds. A later 'record' with the same --netlock also
picks the journal up by itself.
`;

export const recoverCommand: Command = {
  summary: 'rebuild a netlock from the journal of a run that crashed',
  help: RECOVER_HELP,
  run: runRecover,
};

export async function runRecover(args: string[], context: CommandContext): Promise<number> {
  const { values } = parseOptions(args, { netlock: { type: 'string' } }, RECOVER_HELP);
  if (values['help'] === true) {
    context.stdout.write(RECOVER_HELP);
    return 0;
  }
  const netlock = str(values['netlock']);
  if (netlock === undefined) throw new UsageError(`recover needs --netlock FILE\n\n${RECOVER_HELP}`);
  const store = new FsBlockStore(resolve(str(values['data']) ?? context.defaultDataDir));
  const journal = new RunJournal(resolve(netlock));
  const { entries, bad } = await journal.recover();
  if (entries.length === 0) throw new UsageError(`No journal entries in ${journal.path}: nothing to recover`);
  const run = new RunSet(journal);
  const kept = await readKeptNetlock(resolve(netlock), store); // what the file holds stays in it (issue 13, defect 1)
  run.keep(kept?.entries ?? []);
  await run.restore(entries, store);
  const file = await run.write(resolve(netlock), store, kept?.variantRules);
  const held = kept === undefined ? '' : `, kept the ${kept.entries.length} it held: ${file.count} in all`;
  context.stdout.write(`recovered ${new Set(entries.map((e) => e.key)).size} entries into ${netlock}${held} (netlock ${file.netlock})${bad.length > 0 ? `; skipped torn lines ${bad.join(', ')}` : ''}\n`);
  return 0;
}
