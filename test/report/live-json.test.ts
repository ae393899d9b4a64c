import { describe, expect, it } from 'vitest';
import { createStats } from '../../src/oracle/stats.ts';
import type { UpstreamMutation } from '../../src/oracle/recorder.ts';
import { reportHtmlPieces, renderReportHtml } from '../../src/report/html.ts';
import { LIVE_ROW_PAGE, liveReportJson, pagesOf } from '../../src/report/live.ts';
import type { LiveView } from '../../src/report/live.ts';
import type { EntryRow, ReportData } from '../../src/report/model.ts';
import { RequestLog } from '../../src/report/request-log.ts';

/** Rows over three hosts, one a redirect to `</script>` (escaped in the page), one the new version of a mutation. */
function rows(count: number): EntryRow[] {
  return Array.from({ length: count }, (_, i) => ({
    m: 'GET',
    u: `https://h${i % 3}.test/p/${i}`,
    h: `h${i % 3}.test`,
    a: '',
    s: i === 5 ? 302 : 200,
    z: i,
    c: 'application/octet-stream',
    t: '2026-12-04T20:00:00.000Z',
    r: `bafyrecord${i}`,
    ...(i === 5 ? { l: 'https://x.test/</script><b>\u2028' } : {}),
  }));
}

const mutation: UpstreamMutation = { method: 'GET', url: 'https://h1.test/p/7', oldRecord: 'bafyold', newRecord: 'bafyrecord7', oldStatus: 503, newStatus: 200, oldBody: null, newBody: null };

function view(all: EntryRow[], from?: number): LiveView {
  return {
    netlock: { root: 'bafyroot', count: all.length, keys: ['ab'] },
    version: `v:${all.length}`,
    rows: () => pagesOf(all),
    rowsSince: (have) => (have === 'v:old' && from !== undefined ? { from, rows: pagesOf(all.slice(from)) } : undefined),
    misses: [],
  };
}

const parse = (pieces: Iterable<string>): ReportData & { requests: { events: unknown[] } } => JSON.parse([...pieces].join('')) as ReportData & { requests: { events: unknown[] } };

describe('liveReportJson: the live page data written a page of rows at a time (issue #15: a page opened late over a large run)', () => {
  it('gives every row across pages, marked and counted, in as many pieces as pages', () => {
    const all = rows(LIVE_ROW_PAGE * 2 + 10);
    const stats = { ...createStats('record'), hits: 3, errors: 1 };
    const pieces = [...liveReportJson('record', view(all), stats, new RequestLog(), [mutation])];
    expect(pieces.length).toBeGreaterThanOrEqual(3 + 3); // head, '[' and ']', totals, and one piece per page
    const data = parse(pieces);
    expect(data.entries).toHaveLength(all.length);
    expect(data.entries!.map((e) => e.r)).toEqual(all.map((e) => e.r));
    expect(data.entries![7]!.x).toBe('bafyold');
    expect(data.entries!.filter((e) => e.x !== undefined)).toHaveLength(1);
    expect(data.totals).toMatchObject({ entries: all.length, bytes: (all.length * (all.length - 1)) / 2, hosts: 3, hits: 3, errors: 1 });
    expect(data).toMatchObject({ v: 1, live: true, mode: 'record', entriesVersion: `v:${all.length}`, netlock: { root: 'bafyroot' } });
    expect('entriesFrom' in data).toBe(false);
    expect(all[7]!.x).toBeUndefined(); // the view's rows are copied before they are marked
  });

  it('sends only the rows added since a version, or none for the same version, with entry totals of -1', () => {
    const all = rows(50);
    const added = parse(liveReportJson('record', view(all, 40), createStats('record'), new RequestLog(), [], { have: 'v:old' }));
    expect(added.entriesFrom).toBe(40);
    expect(added.entries!.map((e) => e.r)).toEqual(all.slice(40).map((e) => e.r));
    expect([added.totals.entries, added.totals.bytes, added.totals.hosts]).toEqual([-1, -1, -1]);
    const same = parse(liveReportJson('record', view(all), createStats('record'), new RequestLog(), [], { have: 'v:50' }));
    expect('entries' in same).toBe(false);
    expect(same.totals.entries).toBe(-1);
    const other = parse(liveReportJson('record', view(all, 40), createStats('record'), new RequestLog(), [], { have: 'v:another' }));
    expect(other.entries).toHaveLength(50);
    expect(other.totals.entries).toBe(50);
  });

  it('embeds the pieces in the page as renderReportHtml embeds the whole data, escaped alike', () => {
    const log = new RequestLog(); // one log: its start time is in the data
    const data = parse(liveReportJson('replay', view(rows(30)), createStats('replay'), log, []));
    const streamed = [...reportHtmlPieces('bafyroot', liveReportJson('replay', view(rows(30)), createStats('replay'), log, []))].join('');
    const script = (html: string): unknown => JSON.parse(/<script type="application\/json" id="fo-data">([^]*?)<\/script>/.exec(html)![1]!);
    expect(streamed).not.toContain('</script><b>');
    expect(script(streamed)).toEqual(data);
    expect(script(renderReportHtml(data))).toEqual(data);
    expect(streamed.replace(/id="fo-data">[^]*?<\/script>/, '')).toBe(renderReportHtml(data).replace(/id="fo-data">[^]*?<\/script>/, ''));
  });
});
