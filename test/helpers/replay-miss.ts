import { expect } from 'vitest';

/** A response as a test saw it: status, headers (names lower-case), body text. */
export interface SeenResponse {
  status: number;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  body: string;
}

/**
 * Asserts the whole fail-closed miss answer (design §5): 504, `x-oracle-error: ORACLE_ERR_REPLAY_MISS`,
 * `x-fetch-oracle-miss: 1`, a plain-text body whose first line names the request.
 */
export function expectReplayMiss(res: SeenResponse, method: string, url: string): void {
  expect(res.status, res.body).toBe(504);
  expect(res.headers['x-oracle-error']).toBe('ORACLE_ERR_REPLAY_MISS');
  expect(res.headers['x-fetch-oracle-miss']).toBe('1');
  expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
  expect(res.body.split('\n')[0]).toBe(`fetch-oracle replay miss: ${method} ${url}`);
}

/**
 * The final response head in a curl `-i`/`-D` dump: status and headers (names lower-cased), skipping the
 * proxy's `200 Connection established` for a CONNECT and any 1xx; `rest` is what follows that head (the body with `-i`).
 */
export function parseCurlHead(dump: string): { status: number; headers: Record<string, string>; rest: string } {
  let text = dump.replace(/\r\n/g, '\n');
  for (;;) {
    const end = text.indexOf('\n\n');
    const head = end === -1 ? text : text.slice(0, end);
    const rest = end === -1 ? '' : text.slice(end + 2);
    const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(head)?.[1] ?? NaN);
    if (/^HTTP\/[\d.]+ \d{3}/.test(rest) && (status < 200 || /^HTTP\/[\d.]+ 200 Connection established/i.test(head))) {
      text = rest;
      continue;
    }
    const headers: Record<string, string> = {};
    for (const line of head.split('\n').slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    return { status, headers, rest };
  }
}
