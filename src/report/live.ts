import type { ReplayMiss } from '../oracle/replayer.ts';
import type { UpstreamMutation } from '../oracle/recorder.ts';
import type { OracleStats } from '../oracle/stats.ts';
import { markMutations, missRows, totalsOf } from './model.ts';
import type { EntryRow, ReportData } from './model.ts';
import type { RequestLog } from './request-log.ts';

/** What a running oracle's mode shows on the live page: its netlock so far, and its misses. */
export interface LiveView {
  netlock: ReportData['netlock'];
  /** Changes whenever the rows do (a page that has this version is not sent them again). */
  version: string;
  rows(): EntryRow[];
  /**
   * When all a page holding version `have` lacks is entries added since: those rows, and how many rows the
   * page must already hold (`from`). Undefined when it needs every row again.
   */
  rowsSince?(have: string): { from: number; rows: EntryRow[] } | undefined;
  misses: readonly ReplayMiss[];
}

/** What a polling page already has: the entries of `have`, the requests up to `after`. */
export interface LivePoll {
  have?: string;
  after?: number;
}

/**
 * The live page's data (`GET /report.json`): the mode's view, the counters and the request log. A poll that
 * already has the entries' version gets no entries (`entries` omitted) and only the requests after its last,
 * so a page over a 100,000-entry replay does not fetch the netlock every second; one whose entries lack only
 * those added since gets those (`entriesFrom`), so neither does a page over a growing record run.
 */
export function liveReportData(mode: 'record' | 'replay', view: LiveView, stats: OracleStats, log: RequestLog, mutations: readonly UpstreamMutation[], poll: LivePoll = {}): ReportData {
  const muts = mutations.map((m) => ({ m: m.method, u: m.url, oldStatus: m.oldStatus, newStatus: m.newStatus, oldRecord: m.oldRecord, newRecord: m.newRecord }));
  const same = poll.have !== undefined && poll.have === view.version;
  const added = same || poll.have === undefined ? undefined : view.rowsSince?.(poll.have);
  const rows = same ? [] : (added?.rows ?? view.rows());
  markMutations(rows, muts);
  const requests = log.snapshot(poll.after);
  // Added rows alone do not give the totals: the page counts them over all it holds.
  const totals = same || added !== undefined ? undefined : totalsOf(rows);
  return {
    v: 1,
    live: true,
    mode,
    netlock: view.netlock,
    totals: {
      entries: totals?.entries ?? -1,
      bytes: totals?.bytes ?? -1,
      hosts: totals?.hosts ?? -1,
      hits: stats.hits,
      misses: stats.misses,
      recorded: requests.counts.recorded,
      upstreamFetches: stats.upstreamFetches,
      errors: stats.errors,
    },
    entriesVersion: view.version,
    ...(same ? {} : { entries: rows }),
    ...(added === undefined ? {} : { entriesFrom: added.from }),
    misses: missRows(view.misses),
    mutations: muts,
    requests,
  };
}
