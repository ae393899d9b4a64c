import type { CID } from 'multiformats/cid';
import type { HeaderBag } from './request-key.ts';
import type { FetchRecord } from './record.ts';

/** What to send for a request answered from a record: computed the same way in host and guest. */
export interface ResponsePlan {
  readonly status: number;
  readonly headers: Array<[string, string]>;
  /** Bytes of the recorded body to send (a slice for a 206), or null for no body. */
  readonly body: { readonly cid: CID; readonly offset: number; readonly length: number } | null;
}

function single(headers: HeaderBag, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

function header(list: ReadonlyArray<readonly [string, string]>, name: string): string | undefined {
  return list.find(([n]) => n === name)?.[1];
}

/** Sets `name` in place if present (keeping header order), else appends it. */
function setHeader(list: Array<[string, string]>, name: string, value: string): void {
  const i = list.findIndex(([n]) => n === name);
  if (i >= 0) list[i] = [name, value];
  else list.push([name, value]);
}

/** Parses `bytes=a-b`, `bytes=a-`, `bytes=-n` for one range; undefined when absent or not a single byte range. */
export function parseSingleRange(value: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (value === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(value);
  if (m === null) return undefined; // multiple ranges or another unit: ignore the header (RFC 9110 §14.2)
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return undefined;
  if (a === '') {
    const n = Number(b);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (b !== '' && Number(b) < start) return undefined; // invalid range: ignore
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

function etagMatches(ifNoneMatch: string, etag: string): boolean {
  const weak = (t: string): string => t.trim().replace(/^W\//, '');
  if (ifNoneMatch.trim() === '*') return true;
  return ifNoneMatch.split(',').some((t) => weak(t) === weak(etag));
}

/**
 * The deterministic response for `request` from `record` (design §5): recorded status and headers in
 * recorded order, `Date` = `fetchedAt`, exact body bytes; HEAD, a single `Range` (with `If-Range`) and
 * `If-None-Match` / `If-Modified-Since` are answered from the recorded full response.
 */
export function planResponse(record: FetchRecord, request: { method: string; headers: HeaderBag }): ResponsePlan {
  const res = record.response;
  const headers: Array<[string, string]> = [['date', new Date(record.fetchedAt).toUTCString()], ...res.headers.map(([n, v]): [string, string] => [n, v])];
  const isHead = request.method === 'HEAD';
  const recordedHead = record.request.method === 'HEAD';
  const bodyCid = res.body;
  if (!recordedHead && res.status !== 204 && res.status !== 304 && !(res.status >= 100 && res.status < 200)) {
    setHeader(headers, 'content-length', String(res.size));
  }
  const full = { status: res.status, headers, body: isHead || bodyCid === null ? null : { cid: bodyCid, offset: 0, length: res.size } };
  if (res.status !== 200 || bodyCid === null || recordedHead) return full;

  const etag = header(res.headers, 'etag');
  const lastModified = header(res.headers, 'last-modified');
  const inm = single(request.headers, 'if-none-match');
  const ims = single(request.headers, 'if-modified-since');
  const notModified =
    inm !== undefined
      ? etag !== undefined && etagMatches(inm, etag)
      : ims !== undefined && lastModified !== undefined && Date.parse(lastModified) <= Date.parse(ims);
  if (notModified) {
    // RFC 9110 §15.4.5: a 304 carries the validators, no body and no content-length.
    return { status: 304, headers: headers.filter(([n]) => n !== 'content-length'), body: null };
  }

  const range = parseSingleRange(single(request.headers, 'range'), res.size);
  if (range === undefined) return full;
  const ifRange = single(request.headers, 'if-range');
  if (ifRange !== undefined && ifRange !== etag && ifRange !== lastModified) return full; // RFC 9110 §13.1.5
  if (range === 'unsatisfiable') {
    const h = headers.filter(([n]) => n !== 'content-length');
    h.push(['content-range', `bytes */${res.size}`], ['content-length', '0']);
    return { status: 416, headers: h, body: null };
  }
  const length = range.end - range.start + 1;
  setHeader(headers, 'content-length', String(length));
  setHeader(headers, 'content-range', `bytes ${range.start}-${range.end}/${res.size}`);
  return { status: 206, headers, body: isHead ? null : { cid: bodyCid, offset: range.start, length } };
}
