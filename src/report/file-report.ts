import type { AbortOptions, BlockSource } from '../protocol/blocks.ts';
import { toHex } from '../protocol/signature.ts';
import { openEntryRecords } from '../netlock/entry-records.ts';
import type { CID } from 'multiformats/cid';
import { entryRow, markMutations, missRows, totalsOf } from './model.ts';
import type { EntryRow, ReportData, ReportInput } from './model.ts';

/** Every entry of the netlock at `root`, with its record, as page rows (blocks verified as they are read). */
export async function entryRows(root: CID, store: BlockSource, options: AbortOptions = {}): Promise<{ rows: EntryRow[]; keys: string[]; count: number; variantRules?: Record<string, readonly string[]> }> {
  const netlock = await openEntryRecords(root, store, options);
  const { rootValue } = netlock;
  const rows: EntryRow[] = [];
  for await (const e of netlock.entries()) rows.push(entryRow(e));
  return {
    rows,
    keys: rootValue.oracles.map(toHex),
    count: rootValue.count,
    ...(rootValue.variantRules === undefined ? {} : { variantRules: rootValue.variantRules }),
  };
}

/** The page data of a netlock on disk, with what a replay or record report adds (misses, mutations). */
export async function buildFileReport(root: CID, store: BlockSource, input: ReportInput = {}, options: AbortOptions = {}): Promise<ReportData> {
  const { rows, keys, count, variantRules } = await entryRows(root, store, options);
  const mutations = (input.mutations ?? []).map((m) => ({ m: m.method, u: m.url, oldStatus: m.oldStatus, newStatus: m.newStatus, oldRecord: m.oldRecord, newRecord: m.newRecord }));
  markMutations(rows, mutations);
  const misses = missRows(input.misses ?? []);
  const stats = input.stats ?? {};
  return {
    v: 1,
    live: false,
    mode: 'file',
    netlock: { root: root.toString(), count, keys, ...(variantRules === undefined ? {} : { variantRules }) },
    totals: totalsOf(rows, {
      hits: stats.hits ?? 0,
      misses: stats.misses ?? (input.misses?.length ?? 0),
      upstreamFetches: stats.upstreamFetches ?? 0,
      errors: stats.errors ?? 0,
    }),
    entries: rows,
    misses,
    mutations,
    ...(input.unused === undefined ? {} : { unused: input.unused.length }),
    ...(input.command === undefined ? {} : { command: { argv: input.command, ...(input.commandExitCode === undefined ? {} : { exitCode: input.commandExitCode }) } }),
  };
}
