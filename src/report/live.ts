import type { ReplayMiss } from '../oracle/replayer.ts';
import type { UpstreamMutation } from '../oracle/recorder.ts';
import type { OracleStats } from '../oracle/stats.ts';
import { markMutations, missRows, totalsOf } from './model.ts';
import type { EntryRow, ReportData } from './model.ts';
import type { RequestLog } from './request-log.ts';

/** What a running oracle's mode shows on the live page: its netlock so far, and its misses. */
export interface LiveView {
  netlock: ReportData['netlock'];
  rows: EntryRow[];
  misses: readonly ReplayMiss[];
}

/** The live page's data (`GET /report.json`): the mode's view, the counters and the request log. */
export function liveReportData(mode: 'record' | 'replay', view: LiveView, stats: OracleStats, log: RequestLog, mutations: readonly UpstreamMutation[]): ReportData {
  const muts = mutations.map((m) => ({ m: m.method, u: m.url, oldStatus: m.oldStatus, newStatus: m.newStatus, oldRecord: m.oldRecord, newRecord: m.newRecord }));
  const rows = view.rows.map((r) => ({ ...r }));
  markMutations(rows, muts);
  const requests = log.snapshot();
  return {
    v: 1,
    live: true,
    mode,
    netlock: view.netlock,
    totals: totalsOf(rows, { hits: stats.hits, misses: stats.misses, recorded: requests.counts.recorded, upstreamFetches: stats.upstreamFetches, errors: stats.errors }),
    entries: rows,
    misses: missRows(view.misses),
    mutations: muts,
    requests,
  };
}
