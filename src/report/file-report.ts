import type { AbortOptions, BlockSource } from '../protocol/blocks.ts';
import { toHex } from '../protocol/signature.ts';
import { openEntryRecords } from '../netlock/entry-records.ts';
import type { CID } from 'multiformats/cid';
import { entryRow, markMutations, missRows, RowCounter } from './model.ts';
import type { EntryRow, ReportData, ReportInput, Totals } from './model.ts';

/** Rows per page of `FileReport.pages`. */
const PAGE_ROWS = 1000;

/** Every entry of the netlock at `root`, with its record, as page rows (blocks verified as they are read). */
export async function entryRows(root: CID, store: BlockSource, options: AbortOptions = {}): Promise<{ rows: EntryRow[]; keys: string[]; count: number; variantRules?: Record<string, readonly string[]> }> {
  const report = await openFileReport(root, store, {}, options);
  const { count, keys, variantRules } = report.head.netlock;
  return { rows: await allRows(report), keys, count, ...(variantRules === undefined ? {} : { variantRules }) };
}

/**
 * The page data of a netlock on disk, its rows read a page at a time: `fetch-oracle report` writes each page
 * as it comes, so a 100,000-entry netlock never has its rows in memory at once (issue #15).
 */
export interface FileReport {
  /** The page data but its entries and totals. */
  head: Omit<ReportData, 'entries' | 'totals' | 'netlock'> & { netlock: NonNullable<ReportData['netlock']> };
  /** The rows, in key order, a page at a time (marked with the mutations); read once. */
  pages(): AsyncGenerator<EntryRow[]>;
  /** The totals of the rows read so far (all of them, once `pages` is done). */
  totals(): Totals;
}

/** Opens the page data of a netlock on disk, with what a replay or record report adds (misses, mutations). */
export async function openFileReport(root: CID, store: BlockSource, input: ReportInput = {}, options: AbortOptions = {}): Promise<FileReport> {
  const netlock = await openEntryRecords(root, store, options);
  const { rootValue } = netlock;
  const mutations = (input.mutations ?? []).map((m) => ({ m: m.method, u: m.url, oldStatus: m.oldStatus, newStatus: m.newStatus, oldRecord: m.oldRecord, newRecord: m.newRecord }));
  const stats = input.stats ?? {};
  const counter = new RowCounter();
  const page = (rows: EntryRow[]): EntryRow[] => {
    markMutations(rows, mutations);
    counter.add(rows);
    return rows;
  };
  return {
    head: {
      v: 1,
      live: false,
      mode: 'file',
      netlock: { root: root.toString(), count: rootValue.count, keys: rootValue.oracles.map(toHex), ...(rootValue.variantRules === undefined ? {} : { variantRules: rootValue.variantRules }) },
      misses: missRows(input.misses ?? []),
      mutations,
      ...(input.unused === undefined ? {} : { unused: input.unused.length }),
      ...(input.command === undefined ? {} : { command: { argv: input.command, ...(input.commandExitCode === undefined ? {} : { exitCode: input.commandExitCode }) } }),
    },
    async *pages(): AsyncGenerator<EntryRow[]> {
      let rows: EntryRow[] = [];
      for await (const e of netlock.entries()) {
        rows.push(entryRow(e));
        if (rows.length < PAGE_ROWS) continue;
        yield page(rows);
        rows = [];
      }
      if (rows.length > 0) yield page(rows);
    },
    totals: () =>
      counter.totals({
        hits: stats.hits ?? 0,
        misses: stats.misses ?? (input.misses?.length ?? 0),
        upstreamFetches: stats.upstreamFetches ?? 0,
        errors: stats.errors ?? 0,
      }),
  };
}

/** The page data of a netlock on disk, whole (`openFileReport` with every row collected). */
export async function buildFileReport(root: CID, store: BlockSource, input: ReportInput = {}, options: AbortOptions = {}): Promise<ReportData> {
  const report = await openFileReport(root, store, input, options);
  const entries = await allRows(report);
  return { ...report.head, totals: report.totals(), entries };
}

async function allRows(report: FileReport): Promise<EntryRow[]> {
  const rows: EntryRow[] = [];
  for await (const page of report.pages()) for (const row of page) rows.push(row);
  return rows;
}

/**
 * The page data as JSON text in pieces, a page of rows at a time and the totals last: the page of a
 * 100,000-entry netlock is ~40 MB of JSON, which was stringified whole, then escaped, then joined into the page,
 * from ~300 MB (issue #15). `JSON.parse` of the pieces joined equals `buildFileReport`'s data.
 */
export async function* fileReportJson(report: FileReport): AsyncGenerator<string> {
  yield `${JSON.stringify(report.head).slice(0, -1)},"entries":[`;
  let first = true;
  for await (const rows of report.pages()) {
    if (rows.length === 0) continue;
    yield `${first ? '' : ','}${JSON.stringify(rows).slice(1, -1)}`;
    first = false;
  }
  yield `],"totals":${JSON.stringify(report.totals())}}`;
}
