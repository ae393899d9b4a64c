import { describe, expect, it } from 'vitest';
import type { FetchRecord } from '../../src/protocol/record.ts';
import { parseRange, planResponse } from '../../src/protocol/replay.ts';
import { textRecord } from '../helpers/records.ts';

const BODY = 'abcdefghijklmnopqrstuvwxyz';

function record(status = 200, extra: Array<[string, string]> = []): Promise<FetchRecord> {
  const headers: Array<[string, string]> = [['content-type', 'text/plain'], ['etag', '"e1"'], ['last-modified', 'Mon, 01 Jan 2024 00:00:00 GMT'], ['content-length', '26'], ...extra];
  return textRecord(BODY, 'https://h.example/f.txt', headers, status);
}

/** Renders the plan's body as the client would receive it. */
function render(plan: ReturnType<typeof planResponse>): string {
  return (plan.body?.parts ?? []).map((p) => ('text' in p ? p.text : BODY.slice(p.offset, p.offset + p.length))).join('');
}

const h = (plan: ReturnType<typeof planResponse>, name: string): string | undefined => plan.headers.find(([n]) => n === name)?.[1];

describe('planResponse', () => {
  it('replays status, headers in recorded order and Date = fetchedAt', async () => {
    const plan = planResponse(await record(), { method: 'GET', headers: {} });
    expect(plan.status).toBe(200);
    expect(plan.headers.map(([n]) => n)).toEqual(['date', 'content-type', 'etag', 'last-modified', 'content-length']);
    expect(h(plan, 'date')).toBe('Sat, 03 Feb 2024 04:05:06 GMT');
    expect(render(plan)).toBe(BODY);
  });

  it('frames the body by its recorded size when a recorded content-length contradicts it', async () => {
    const r = await record();
    const lying: FetchRecord = { ...r, response: { ...r.response, headers: r.response.headers.map(([n, v]): [string, string] => [n, n === 'content-length' ? '999' : v]) } };
    const plan = planResponse(lying, { method: 'GET', headers: {} });
    expect(h(plan, 'content-length')).toBe('26');
    expect(render(plan)).toBe(BODY);
  });

  it('answers HEAD with the headers and no body', async () => {
    const plan = planResponse(await record(), { method: 'HEAD', headers: {} });
    expect(plan.body).toBeNull();
    expect(h(plan, 'content-length')).toBe('26');
  });

  it('serves single, open-ended and suffix ranges as 206', async () => {
    const r = await record();
    for (const [range, want, cr] of [
      ['bytes=0-4', 'abcde', 'bytes 0-4/26'],
      ['bytes=20-', 'uvwxyz', 'bytes 20-25/26'],
      ['bytes=-3', 'xyz', 'bytes 23-25/26'],
      ['bytes=24-100', 'yz', 'bytes 24-25/26'],
      ['bytes=-100', BODY, 'bytes 0-25/26'],
    ] as const) {
      const plan = planResponse(r, { method: 'GET', headers: { range } });
      expect(plan.status, range).toBe(206);
      expect(render(plan), range).toBe(want);
      expect(h(plan, 'content-range')).toBe(cr);
      expect(h(plan, 'content-length')).toBe(String(want.length));
    }
  });

  it('serves several ranges as multipart/byteranges with a deterministic boundary and exact length', async () => {
    const plan = planResponse(await record(), { method: 'GET', headers: { range: 'bytes=0-1, 10-12,-2' } });
    expect(plan.status).toBe(206);
    const type = h(plan, 'content-type')!;
    const boundary = /boundary=(\S+)/.exec(type)![1]!;
    expect(boundary).toMatch(/^fetch-oracle-[0-9a-f]{24}$/);
    const text = render(plan);
    expect(Buffer.byteLength(text)).toBe(Number(h(plan, 'content-length')));
    expect(text).toBe(
      `--${boundary}\r\ncontent-type: text/plain\r\ncontent-range: bytes 0-1/26\r\n\r\nab` +
        `\r\n--${boundary}\r\ncontent-type: text/plain\r\ncontent-range: bytes 10-12/26\r\n\r\nklm` +
        `\r\n--${boundary}\r\ncontent-type: text/plain\r\ncontent-range: bytes 24-25/26\r\n\r\nyz` +
        `\r\n--${boundary}--\r\n`,
    );
    expect(planResponse(await record(), { method: 'GET', headers: { range: 'bytes=0-1, 10-12,-2' } })).toEqual(plan);
  });

  it('answers 416 when no range is satisfiable and ignores malformed, overlapping or absurd ranges', async () => {
    const r = await record();
    const unsat = planResponse(r, { method: 'GET', headers: { range: 'bytes=30-40' } });
    expect(unsat.status).toBe(416);
    expect(h(unsat, 'content-range')).toBe('bytes */26');
    expect(planResponse(r, { method: 'GET', headers: { range: 'bytes=-0' } }).status).toBe(416);
    for (const range of ['bytes=5-2', 'items=0-1', 'bytes=0-5,3-8', `bytes=${Array.from({ length: 65 }, (_, i) => `${i}-${i}`).join(',')}`, 'bytes=99999999999999999-', 'bytes=a-b']) {
      const plan = planResponse(r, { method: 'GET', headers: { range } });
      expect(plan.status, range).toBe(200);
      expect(render(plan)).toBe(BODY);
    }
    expect(parseRange('bytes=30-40, 0-0', 26)).toEqual([{ start: 0, end: 0 }]);
  });

  it('honours If-Range: a strong matching etag or the exact date serves the range, anything else the whole body', async () => {
    const r = await record();
    expect(planResponse(r, { method: 'GET', headers: { range: 'bytes=0-0', 'if-range': '"e1"' } }).status).toBe(206);
    expect(planResponse(r, { method: 'GET', headers: { range: 'bytes=0-0', 'if-range': 'Mon, 01 Jan 2024 00:00:00 GMT' } }).status).toBe(206);
    expect(planResponse(r, { method: 'GET', headers: { range: 'bytes=0-0', 'if-range': '"other"' } }).status).toBe(200);
    expect(planResponse(r, { method: 'GET', headers: { range: 'bytes=0-0', 'if-range': 'Tue, 02 Jan 2024 00:00:00 GMT' } }).status).toBe(200);
  });

  it('answers conditional requests with 304 from the recorded validators', async () => {
    const r = await record();
    const inm = planResponse(r, { method: 'GET', headers: { 'if-none-match': 'W/"e1", "x"' } });
    expect(inm.status).toBe(304);
    expect(inm.body).toBeNull();
    expect(h(inm, 'etag')).toBe('"e1"');
    expect(h(inm, 'content-length')).toBeUndefined();
    expect(planResponse(r, { method: 'GET', headers: { 'if-none-match': '"nope"' } }).status).toBe(200);
    expect(planResponse(r, { method: 'GET', headers: { 'if-modified-since': 'Tue, 02 Jan 2024 00:00:00 GMT' } }).status).toBe(304);
    expect(planResponse(r, { method: 'GET', headers: { 'if-modified-since': 'Sun, 31 Dec 2023 00:00:00 GMT' } }).status).toBe(200);
    expect(planResponse(r, { method: 'GET', headers: { 'if-modified-since': 'not a date' } }).status).toBe(200);
    // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
    expect(planResponse(r, { method: 'GET', headers: { 'if-none-match': '"nope"', 'if-modified-since': 'Tue, 02 Jan 2024 00:00:00 GMT' } }).status).toBe(200);
  });

  it('decodes a recorded content coding only for a client that does not accept it', async () => {
    const r = await record(200, [['content-encoding', 'gzip']]);
    const accepted = planResponse(r, { method: 'GET', headers: { 'accept-encoding': 'gzip, deflate' } });
    expect(accepted.decode).toBeUndefined();
    const none = planResponse(r, { method: 'GET', headers: {} });
    expect(none.decode).toBe('gzip');
    expect(h(none, 'content-encoding')).toBeUndefined();
    expect(h(none, 'content-length')).toBeUndefined();
    expect(planResponse(r, { method: 'GET', headers: { 'accept-encoding': 'gzip;q=0, br' } }).decode).toBe('gzip');
    expect(planResponse(r, { method: 'GET', headers: { 'accept-encoding': '*' } }).decode).toBeUndefined();
  });

  it('replays negative answers and redirects as recorded, with no range or 304 logic', async () => {
    const notFound = planResponse(await record(404), { method: 'GET', headers: { range: 'bytes=0-1', 'if-none-match': '"e1"' } });
    expect(notFound.status).toBe(404);
    expect(render(notFound)).toBe(BODY);
    const moved = planResponse(await record(301, [['location', '/new']]), { method: 'GET', headers: {} });
    expect(moved.status).toBe(301);
    expect(h(moved, 'location')).toBe('/new');
  });
});
