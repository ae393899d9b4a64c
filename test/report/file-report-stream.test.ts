/**
 * `fetch-oracle report` writes its page a thousand rows at a time as the netlock is read (issue #15): the data
 * in the page is what `buildFileReport` gives whole, mutations marked and totals counted over every page.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { fileReportJson, buildFileReport, openFileReport } from '../../src/report/file-report.ts';
import { reportHtmlPieces, reportHtmlPiecesAsync } from '../../src/report/html.ts';
import type { ReportInput } from '../../src/report/model.ts';
import { MemoryBlockStore } from '../../src/store/memory-block-store.ts';
import { buildFixtureNetlock, manySmallResponses } from '../netlock/netlock-fixture.ts';
import type { FixtureNetlock } from '../netlock/netlock-fixture.ts';

async function collect(pieces: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const p of pieces) out.push(p);
  return out;
}

describe('the file report read a page of rows at a time', () => {
  let store: MemoryBlockStore;
  let fixture: FixtureNetlock;

  beforeAll(async () => {
    store = new MemoryBlockStore();
    fixture = await buildFixtureNetlock(manySmallResponses(2100, 64), store);
  }, 120_000);

  it('gives the data buildFileReport gives, in pieces of at most a thousand rows, totals last', async () => {
    const marked = fixture.file.entries[1500]!;
    const input: ReportInput = {
      mutations: [{ method: 'GET', url: marked.url, oldRecord: 'bafyold', newRecord: marked.record, oldStatus: 503, newStatus: 200 }],
      stats: { hits: 7 },
    };
    const whole = await buildFileReport(fixture.root, store, input);
    expect(whole.entries).toHaveLength(2100);
    expect(whole.totals).toMatchObject({ entries: 2100, hits: 7 });
    expect(whole.entries!.filter((e) => e.x !== undefined).map((e) => e.u)).toEqual([marked.url]);

    const pieces = await collect(fileReportJson(await openFileReport(fixture.root, store, input)));
    expect(pieces).toHaveLength(2 + 3); // head, three pages of rows, totals
    expect(pieces.at(-1)).toMatch(/^\],"totals":\{"entries":2100,/);
    expect(JSON.parse(pieces.join(''))).toEqual(whole);
  });

  it('embeds the pieces in the page as the whole data is embedded, escaped alike', async () => {
    const streamed = (await collect(reportHtmlPiecesAsync(fixture.root.toString(), fileReportJson(await openFileReport(fixture.root, store))))).join('');
    const whole = [...reportHtmlPieces(fixture.root.toString(), [JSON.stringify(await buildFileReport(fixture.root, store))])].join('');
    const data = (html: string): unknown => JSON.parse(/<script type="application\/json" id="fo-data">([^]*?)<\/script>/.exec(html)![1]!);
    expect(data(streamed)).toEqual(data(whole));
    const withoutData = (html: string): string => html.replace(/id="fo-data">[^]*?<\/script>/, '');
    expect(withoutData(streamed)).toBe(withoutData(whole));
  });
});
