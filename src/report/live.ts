import type { ReplayMiss } from '../oracle/replayer.ts';
import type { UpstreamMutation } from '../oracle/recorder.ts';
import type { OracleStats } from '../oracle/stats.ts';
import { markMutations, missRows, RowCounter } from './model.ts';
import type { EntryRow, ReportData, Totals } from './model.ts';
import type { RequestLog } from './request-log.ts';

/** Rows a live view gives a page at a time (the live page's JSON is written as they come). */
export const LIVE_ROW_PAGE = 256;

/** What a running oracle's mode shows on the live page: its netlock so far, and its misses. */
export interface LiveView {
  netlock: ReportData['netlock'];
  /** Changes whenever the rows do (a page that has this version is not sent them again). */
  version: string;
  /** Every row, a page at a time (rows of its own: they are marked). */
  rows(): Iterable<EntryRow[]>;
  /**
   * When all a page holding version `have` lacks is entries added since: those rows, and how many rows the
   * page must already hold (`from`). Undefined when it needs every row again.
   */
  rowsSince?(have: string): { from: number; rows: Iterable<EntryRow[]> } | undefined;
  misses: readonly ReplayMiss[];
}

/** What a polling page already has: the entries of `have`, the requests up to `after`. */
export interface LivePoll {
  have?: string;
  after?: number;
}

/**
 * The live page's data (`GET /report.json`, `ReportData`) as JSON text, written a page of rows at a time: a
 * page opened over a run of 400,000 entries is sent ~150 MB of rows, which built as one array and one string
 * took ~7 KB of memory per entry at once (issue #15). The entry totals follow the rows (they are counted as
 * the rows go; key order means nothing to the page's parser).
 *
 * A poll that already has the entries' version gets no entries (`entries` omitted) and only the requests
 * after its last, so a page over a 100,000-entry replay does not fetch the netlock every second; one whose
 * entries lack only those added since gets those (`entriesFrom`, totals -1: the page counts them over all
 * it holds), so neither does a page over a growing record run.
 */
export function* liveReportJson(mode: 'record' | 'replay', view: LiveView, stats: OracleStats, log: RequestLog, mutations: readonly UpstreamMutation[], poll: LivePoll = {}): Generator<string> {
  const muts = mutations.map((m) => ({ m: m.method, u: m.url, oldStatus: m.oldStatus, newStatus: m.newStatus, oldRecord: m.oldRecord, newRecord: m.newRecord }));
  const same = poll.have !== undefined && poll.have === view.version;
  const added = same || poll.have === undefined ? undefined : view.rowsSince?.(poll.have);
  const { pages: events, ...requests } = log.pages(poll.after);
  const head: Omit<ReportData, 'totals' | 'entries' | 'requests'> = {
    v: 1,
    live: true,
    mode,
    netlock: view.netlock,
    entriesVersion: view.version,
    ...(added === undefined ? {} : { entriesFrom: added.from }),
    misses: missRows(view.misses),
    mutations: muts,
  };
  yield JSON.stringify(head).slice(0, -1);
  yield `,"requests":${JSON.stringify(requests).slice(0, -1)},"events":[`;
  yield* arrayItems(events);
  yield ']}';
  const counter = new RowCounter();
  if (!same) {
    yield ',"entries":[';
    yield* arrayItems(added?.rows ?? view.rows(), (page) => {
      markMutations(page, muts);
      counter.add(page);
    });
    yield ']';
  }
  const whole = !same && added === undefined;
  const counted = counter.totals({ hits: stats.hits, misses: stats.misses, recorded: requests.counts.recorded, upstreamFetches: stats.upstreamFetches, errors: stats.errors });
  const totals: Totals = whole ? counted : { ...counted, entries: -1, bytes: -1, hosts: -1 };
  yield `,"totals":${JSON.stringify(totals)}}`;
}

/** The items of `pages` as the inside of a JSON array, a page a piece (`before` sees each page first). */
function* arrayItems<T>(pages: Iterable<T[]>, before?: (page: T[]) => void): Generator<string> {
  let first = true;
  for (const page of pages) {
    if (page.length === 0) continue;
    before?.(page);
    yield `${first ? '' : ','}${JSON.stringify(page).slice(1, -1)}`;
    first = false;
  }
}

/** `LiveView.rows` over rows held whole: copies, a page at a time. */
export function* pagesOf(rows: readonly EntryRow[]): Generator<EntryRow[]> {
  for (let i = 0; i < rows.length; i += LIVE_ROW_PAGE) yield rows.slice(i, i + LIVE_ROW_PAGE).map((r) => ({ ...r }));
}
