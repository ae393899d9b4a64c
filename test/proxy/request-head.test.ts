import { describe, expect, it } from 'vitest';
import { OTHER, PARTIAL, parsePlainRequest, PlainRequest } from '../../src/proxy/request-head.ts';

const parse = (text: string, start = 0): ReturnType<typeof parsePlainRequest> => parsePlainRequest(Buffer.from(text, 'latin1'), start, 1024, 8);
const GET = 'GET http://example.test/a?b=1 HTTP/1.1\r\n';

describe('parsePlainRequest', () => {
  it('recognises a plain GET and HEAD: method, URL, fields lower-cased and trimmed, where the next request starts', () => {
    const text = `${GET}Host: example.test\r\nAccept:  text/html \t\r\nX-Empty:\r\n\r\nHEAD http://example.test/ HTTP/1.1\r\nhost: example.test\r\nConnection: Keep-Alive\r\n\r\n`;
    const first = parse(text);
    expect(first).toBeInstanceOf(PlainRequest);
    const a = first as PlainRequest;
    expect([a.method, a.url]).toEqual(['GET', 'http://example.test/a?b=1']);
    expect(a.fields).toEqual(['host', 'example.test', 'accept', 'text/html', 'x-empty', '']);
    expect(a.field('accept')).toBe('text/html');
    expect(a.field('range')).toBeUndefined();
    const b = parse(text, a.end) as PlainRequest;
    expect([b.method, b.url, b.field('connection'), b.end]).toEqual(['HEAD', 'http://example.test/', 'Keep-Alive', text.length]);
  });

  it('lower-cases every field name, the common ones in any case and names of their length that differ by one character', () => {
    const names = ['HOST', 'hoSt', 'Hosu', 'Hos_', 'Hos^', 'ACCEPT-ENCODING', 'Accept-Encodinh', 'Accept_Encoding', 'User-Agent', 'User-Agen~', 'If-None-Match', 'IF-NONE-MATCH', 'X-NPM-Thing'];
    for (const name of names) {
      const req = parsePlainRequest(Buffer.from(`${GET}${name}: v\r\n${name === 'HOST' || name === 'hoSt' ? '' : 'Host: h\r\n'}\r\n`, 'latin1'), 0, 1024, 8) as PlainRequest;
      expect(req).toBeInstanceOf(PlainRequest);
      expect(req.fields[0]).toBe(name.toLowerCase());
      expect(req.field(name.toLowerCase())).toBe('v');
    }
  });

  it('waits for the rest of a head, unless it is already longer than any head Node accepts', () => {
    expect(parse(`${GET}Host: example.test\r\n`)).toBe(PARTIAL);
    expect(parse('GET http://exa')).toBe(PARTIAL);
    expect(parse(`${GET}Host: example.test\r\nX-Long: ${'y'.repeat(2000)}`)).toBe(OTHER);
    expect(parse(`${GET}Host: example.test\r\nX-Long: ${'y'.repeat(2000)}\r\n\r\n`)).toBe(OTHER);
  });

  it.each([
    ['another method', 'POST http://example.test/ HTTP/1.1\r\nHost: example.test\r\n\r\n'],
    ['lower-case method', 'get http://example.test/ HTTP/1.1\r\nHost: example.test\r\n\r\n'],
    ['HTTP/1.0', 'GET http://example.test/ HTTP/1.0\r\nHost: example.test\r\n\r\n'],
    ['origin-form target', 'GET /a HTTP/1.1\r\nHost: example.test\r\n\r\n'],
    ['https target', 'GET https://example.test/ HTTP/1.1\r\nHost: example.test\r\n\r\n'],
    ['two spaces', 'GET  http://example.test/ HTTP/1.1\r\nHost: example.test\r\n\r\n'],
    ['a non-ASCII URL', 'GET http://example.test/\u00e9 HTTP/1.1\r\nHost: example.test\r\n\r\n'],
    ['no host', `${GET}Accept: */*\r\n\r\n`],
    ['a body length', `${GET}Host: example.test\r\nContent-Length: 0\r\n\r\n`],
    ['a chunked body', `${GET}Host: example.test\r\nTransfer-Encoding: chunked\r\n\r\n`],
    ['connection close', `${GET}Host: example.test\r\nConnection: close\r\n\r\n`],
    ['an upgrade', `${GET}Host: example.test\r\nUpgrade: websocket\r\n\r\n`],
    ['an expectation', `${GET}Host: example.test\r\nExpect: 100-continue\r\n\r\n`],
    ['proxy credentials', `${GET}Host: example.test\r\nProxy-Authorization: Basic eDp5\r\n\r\n`],
    ['a repeated field', `${GET}Host: example.test\r\nAccept: a\r\naccept: b\r\n\r\n`],
    ['a folded line', `${GET}Host: example.test\r\nAccept: a\r\n b\r\n\r\n`],
    ['a bare LF', `${GET}Host: example.test\nAccept: a\r\n\r\n`],
    ['a control character', `${GET}Host: example.test\r\nAccept: a\u0000b\r\n\r\n`],
    ['a space before the colon', `${GET}Host : example.test\r\n\r\n`],
    ['too many fields', `${GET}Host: x\r\n${Array.from({ length: 8 }, (_, i) => `X-${i}: ${i}\r\n`).join('')}\r\n`],
    ['not HTTP at all', '\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003\r\n\r\n'],
  ])('hands %s to the Node parser', (_what, text) => {
    expect(parse(text)).toBe(OTHER);
  });
});
