/** `fetch-oracle recover`: a netlock rebuilt from the journal of a record run that crashed. */
import { resolve } from 'node:path';
import type { Command, CommandContext } from './command.ts';
import { parseTrustedKeys, UsageError } from './common.ts';
import { parseOptions, str, strs } from './options.ts';
import { recoverMessages, recoverNetlock } from '../records/recover.ts';
import { LocalSigner } from '../signing/local-signer.ts';
import { FsBlockStore } from '../store/fs-block-store.ts';

export const RECOVER_HELP = `Usage: fetch-oracle recover --netlock FILE [--data DIR] [--trust KEY]...

Writes FILE from FILE.journal, the journal a record run keeps while it runs (for a run killed before it could
write its netlock), keeping the entries FILE already holds (a FILE that cannot be verified is refused, and
nothing is touched). A later 'record' with the same --netlock also picks the journal up by itself. Every line's
record block and signature are verified (by this data directory's key unless --trust names others); lines
that fail are refused and counted, the journal is then kept, and the exit status is 1. With nothing to
recover, FILE is left as it is and the message says what it holds (exit 2).
`;

export const recoverCommand: Command = {
  help: RECOVER_HELP,
  run: runRecover,
};

export async function runRecover(args: string[], context: CommandContext): Promise<number> {
  const { values } = parseOptions(args, { netlock: { type: 'string' }, trust: { type: 'string', multiple: true } }, RECOVER_HELP);
  if (values['help'] === true) {
    context.stdout.write(RECOVER_HELP);
    return 0;
  }
  const netlock = str(values['netlock']);
  if (netlock === undefined) throw new UsageError(`recover needs --netlock FILE\n\n${RECOVER_HELP}`);
  const dataDir = resolve(str(values['data']) ?? context.defaultDataDir);
  const own = await LocalSigner.publicKeyIn(dataDir);
  const trust = strs(values['trust']);
  const trusted = trust.length > 0 ? parseTrustedKeys(trust) : own === undefined ? undefined : [own];
  const outcome = await recoverNetlock(resolve(netlock), new FsBlockStore(dataDir), trusted);
  const said = recoverMessages(outcome, netlock, `${netlock}.journal`);
  context.stdout.write(said.out);
  if (said.err !== '') context.stderr.write(said.err.replace(/^(?=.)/gm, 'fetch-oracle: '));
  return said.code;
}
