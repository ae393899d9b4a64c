import { describe, expect, it } from 'vitest';
import { liveResponseHead, responseHeaders } from '../../src/protocol/replay.ts';

const AT = '2024-02-03T04:05:06.000Z';
const DATE = 'Sat, 03 Feb 2024 04:05:06 GMT';

describe('responseHeaders', () => {
  it('puts date first, keeps the received order and sets the body length in place', () => {
    const headers = responseHeaders({ status: 200, headers: [['content-length', '9'], ['etag', '"x"']], fetchedAt: AT, size: 3, headOnly: false });
    expect(headers).toEqual([['date', DATE], ['content-length', '3'], ['etag', '"x"']]);
  });

  it('drops the length while the size is unknown, and leaves bodiless answers as received', () => {
    expect(responseHeaders({ status: 200, headers: [['content-length', '9']], fetchedAt: AT, size: undefined, headOnly: false })).toEqual([['date', DATE]]);
    expect(responseHeaders({ status: 304, headers: [['content-length', '9']], fetchedAt: AT, size: 0, headOnly: false })).toEqual([['date', DATE], ['content-length', '9']]);
    expect(responseHeaders({ status: 200, headers: [['content-length', '9']], fetchedAt: AT, size: 0, headOnly: true })).toEqual([['date', DATE], ['content-length', '9']]);
  });
});

describe('liveResponseHead', () => {
  it('gives the recorded head with the declared length, minus volatile headers, and the location as sent', () => {
    const upstream = {
      status: 302,
      headers: [['date', 'x'], ['location', 'https://cdn.example/f?X-Amz-Signature=s3cr3t&a=1'], ['set-cookie', 'k=v'], ['content-length', '0']] as Array<[string, string]>,
    };
    const head = liveResponseHead(upstream, 'GET', AT);
    expect(head.status).toBe(302);
    expect(head.headers).toEqual([['date', DATE], ['location', 'https://cdn.example/f?X-Amz-Signature=s3cr3t&a=1'], ['content-length', '0']]);
  });

  it('sends a body of unknown length without content-length (chunked)', () => {
    expect(liveResponseHead({ status: 200, headers: [['content-type', 'text/plain']] }, 'GET', AT).headers).toEqual([['date', DATE], ['content-type', 'text/plain']]);
  });
});
