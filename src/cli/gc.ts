import { resolve } from 'node:path';
import { collectGarbage, renderGcReport } from '../store/gc.ts';
import type { Command, CommandContext } from './command.ts';
import { UsageError } from './common.ts';
import { parseOptions, str, strs } from './options.ts';

export const GC_HELP = `Usage: fetch-oracle gc [--data DIR] [--dry-run] [--keep NETLOCK]... [--min-age SECONDS] [--json]

Removes from the data directory's embedded store every block that nothing needs, and the temp files of
processes that are gone. Kept: every record of the record index (old versions too) with its body DAG and
attestation document; every netlock given with --keep or found in the data directory, and every netlock
root held in the store, with their index pages, records and bodies; every journal in the data directory or
beside a --keep netlock. Prints counts and bytes kept and removed.

Options:
  --data DIR          data directory (default $FETCH_ORACLE_DATA or ~/.local/share/fetch-oracle)
  --keep NETLOCK      also keep this netlock's DAG (repeatable; a file that cannot be read stops gc)
  --dry-run           report what would be removed; remove nothing
  --min-age SECONDS   keep unreferenced blocks younger than this: a record run may be importing them now
                      (default 3600; 0 when nothing is recording into DIR)
  --json              print the report as JSON
  -h, --help          show this help

Kubo (--ipfs) collects its own garbage ('ipfs repo gc'); records and netlocks written there are pinned.
`;

export const gcCommand: Command = {
  help: GC_HELP,
  run: runGc,
};

/** `fetch-oracle gc`; resolves to the exit code. */
export async function runGc(args: string[], context: CommandContext): Promise<number> {
  const { values, positionals } = parseOptions(
    args,
    { keep: { type: 'string', multiple: true }, 'dry-run': { type: 'boolean' }, 'min-age': { type: 'string' }, json: { type: 'boolean' } },
    GC_HELP,
  );
  if (values['help'] === true) {
    context.stdout.write(GC_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`gc takes no positional arguments (netlocks to keep go with --keep)\n\n${GC_HELP}`);
  const minAge = str(values['min-age']);
  if (minAge !== undefined && !/^\d+$/.test(minAge)) throw new UsageError(`--min-age expects a number of seconds, got ${JSON.stringify(minAge)}`);
  const report = await collectGarbage({
    dataDir: resolve(str(values['data']) ?? context.defaultDataDir),
    keep: strs(values['keep']),
    dryRun: values['dry-run'] === true,
    ...(minAge === undefined ? {} : { minAgeMs: Number(minAge) * 1000 }),
  });
  context.stdout.write(values['json'] === true ? `${JSON.stringify(report, null, 2)}\n` : renderGcReport(report));
  return 0;
}
