import type { EntrySummary, RecordSummary } from '../netlock/file.ts';
import { cidText } from '../protocol/blocks.ts';
import { parseKeyId } from '../protocol/request-key.ts';
import type { RequestLogSnapshot } from './request-log.ts';

/** One netlock entry as the page lists it (short names: a page may hold 100,000 of them). */
export interface EntryRow {
  m: string;
  u: string;
  /** Host (with port when not the default). */
  h: string;
  /** The `accept` the key holds ('' for none). */
  a: string;
  s: number;
  /** Body size in bytes. */
  z: number;
  /** Content type recorded. */
  c: string;
  /** When the origin answered (RFC 3339). */
  t: string;
  /** Record CID. */
  r: string;
  /** Redirect target. */
  l?: string;
  /** A negative answer: an error status, or a recorded upstream failure (its reason, or the status). */
  n?: string;
  /** A new version after upstream mutation: the old record's CID. */
  x?: string;
}

/** A miss as the page shows it: what was asked, the nearest recorded requests and what to do. */
export interface MissRow {
  m: string;
  u: string;
  a: string;
  count: number;
  nearest: Array<{ m: string; u: string; differs: readonly string[] }>;
  advice: string[];
}

export interface Totals {
  entries: number;
  bytes: number;
  hosts: number;
  hits: number;
  misses: number;
  recorded: number;
  upstreamFetches: number;
  errors: number;
}

/** Everything the page shows; the same shape for a file (`fetch-oracle report`) and the live admin page. */
export interface ReportData {
  v: 1;
  live: boolean;
  /** record, replay (live), or file. */
  mode: 'record' | 'replay' | 'file';
  netlock: { root: string; count: number; keys: string[]; variantRules?: Record<string, readonly string[]> } | undefined;
  /** Entry totals of -1 (live polls only): the page keeps the entries and totals it has. */
  totals: Totals;
  /** Absent in a live poll when the page already has `entriesVersion`. */
  entries?: EntryRow[];
  /** Live only: the version of the entries (see `LivePoll`). */
  entriesVersion?: string;
  /**
   * Live only: `entries` are those added after the first `entriesFrom` rows the page holds (their totals are
   * -1: the page counts them over all its rows).
   */
  entriesFrom?: number;
  misses: MissRow[];
  mutations: Array<{ m: string; u: string; oldStatus: number; newStatus: number; oldRecord: string; newRecord: string }>;
  /** Netlock entries no request used (a replay report). */
  unused?: number;
  /** The command of a `run --replay` report and its exit code. */
  command?: { argv: string[]; exitCode?: number };
  /** Live only: the requests answered so far. */
  requests?: RequestLogSnapshot;
}

/** What a replay report (`replay --report`, `run --report`) or a record report (`record --report`) may hold. */
export interface ReportInput {
  misses?: Array<{ method: string; url: string; accept: string; nearest: Array<{ method: string; url: string; differs: readonly string[] }> }>;
  unused?: unknown[];
  mutations?: Array<{ method: string; url: string; oldRecord: string; newRecord: string; oldStatus: number; newStatus: number }>;
  stats?: { hits?: number; misses?: number; upstreamFetches?: number; errors?: number };
  command?: string[];
  commandExitCode?: number;
}

function header(record: RecordSummary, name: string): string | undefined {
  return record.response.headers.find(([n]) => n.toLowerCase() === name)?.[1];
}

/** `host[:port]` of a URL. */
export function hostOf(url: string): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]+)/i.exec(url);
  return m === null ? '' : m[1]!.toLowerCase();
}

/** The response headers a row reads: all a summary of a record needs to keep (names lower-case). */
export const ROW_HEADERS: ReadonlySet<string> = new Set(['content-type', 'location', 'x-fetch-oracle-upstream-failure']);

/** Distinct values `sharedText` keeps: far more than the methods, hosts and content types of a real netlock. */
const SHARED_TEXTS = 4096;
const sharedTexts = new Map<string, string>();

/**
 * One string for a value many rows repeat (method, host, accept, content type). Each row's own copy was a
 * string of its own, and a content type decoded from a record a chain of ~10 string pieces: 37 MB of a
 * 100,000-entry report's 100 (issue #15). Values past the first SHARED_TEXTS distinct ones are kept as given.
 */
function sharedText(value: string): string {
  const known = sharedTexts.get(value);
  if (known !== undefined) return known;
  if (sharedTexts.size < SHARED_TEXTS) sharedTexts.set(value, value);
  return value;
}

/** The page's row of one netlock entry. */
export function entryRow(e: EntrySummary): EntryRow {
  const k = parseKeyId(e.key);
  const r = e.record;
  const status = r.response.status;
  const location = status >= 300 && status < 400 ? header(r, 'location') : undefined;
  const failure = header(r, 'x-fetch-oracle-upstream-failure');
  const negative = failure !== undefined ? `upstream failure: ${failure}` : status >= 400 ? `status ${status}` : undefined;
  return {
    m: sharedText(k.method),
    u: k.url,
    h: sharedText(hostOf(k.url)),
    a: sharedText(k.variant['accept'] ?? ''),
    s: status,
    z: r.response.size,
    c: sharedText(header(r, 'content-type') ?? ''),
    t: r.fetchedAt,
    r: cidText(e.signed.record),
    ...(location === undefined ? {} : { l: location }),
    ...(negative === undefined ? {} : { n: negative }),
  };
}

/** What to do about a miss, from the field in which the nearest recorded request differs (as the 504 says). */
export function adviceFor(miss: { url: string; nearest: ReadonlyArray<{ differs: readonly string[] }> }): string[] {
  const near = miss.nearest[0];
  if (near === undefined) {
    return [
      `The netlock has no request to ${hostOf(miss.url)}: record the build again (fetch-oracle run or build without --replay),`,
      'or seed the URL from the lockfile that names it (fetch-oracle seed), and replay the new netlock.',
    ];
  }
  const out: string[] = [];
  for (const d of near.differs) {
    if (d.startsWith('header ')) {
      const h = d.slice('header '.length);
      out.push(`The recorded request had another ${h} header: send the ${h} the build sent when it was recorded, or record again with this one${h === 'accept' ? '' : ` (a header other than accept keys requests only when a --variant-header rule names it)`}.`);
    } else if (d === 'query') out.push('Same path, other query string: a changing parameter (a time stamp, a cache buster) makes each run ask for something new; pin it in the build, or record again.');
    else if (d === 'path') out.push('Same host, other path (a dependency at another version?): record again, or seed it from the lockfile (fetch-oracle seed).');
    else if (d === 'method') out.push('Recorded with another method: the build now asks differently; record again.');
    else if (d === 'request body') out.push('Same URL, other request body: the build posts something that changes between runs; make it stable, or record again.');
  }
  if (out.length === 0) out.push('Record the build again and replay the new netlock.');
  return out;
}

/** Misses grouped by request (clients retry), first seen first, each with its advice. */
export function missRows(misses: ReadonlyArray<NonNullable<ReportInput['misses']>[number]>): MissRow[] {
  const rows = new Map<string, MissRow>();
  for (const m of misses) {
    const id = `${m.method} ${m.url} ${m.accept}`;
    const row = rows.get(id);
    if (row !== undefined) {
      row.count++;
      continue;
    }
    rows.set(id, {
      m: m.method,
      u: m.url,
      a: m.accept,
      count: 1,
      nearest: m.nearest.map((n) => ({ m: n.method, u: n.url, differs: n.differs })),
      advice: adviceFor(m),
    });
  }
  return [...rows.values()];
}

/** Entries' totals, with the request counts a report or a live oracle adds. */
export function totalsOf(entries: readonly EntryRow[], counts: Partial<Omit<Totals, 'entries' | 'bytes' | 'hosts'>> = {}): Totals {
  const counter = new RowCounter();
  counter.add(entries);
  return counter.totals(counts);
}

/** Entry totals counted a page of rows at a time. */
export class RowCounter {
  #entries = 0;
  #bytes = 0;
  readonly #hosts = new Set<string>();

  add(rows: readonly EntryRow[]): void {
    for (const e of rows) {
      this.#bytes += e.z;
      this.#hosts.add(e.h);
    }
    this.#entries += rows.length;
  }

  totals(counts: Partial<Omit<Totals, 'entries' | 'bytes' | 'hosts'>> = {}): Totals {
    return { entries: this.#entries, bytes: this.#bytes, hosts: this.#hosts.size, hits: 0, misses: 0, recorded: 0, upstreamFetches: 0, errors: 0, ...counts };
  }
}

/** Marks the rows that are the new version of an upstream mutation. */
export function markMutations(entries: EntryRow[], mutations: ReportData['mutations']): void {
  const byNew = new Map(mutations.map((m) => [m.newRecord, m.oldRecord]));
  for (const e of entries) {
    const old = byNew.get(e.r);
    if (old !== undefined) e.x = old;
  }
}
