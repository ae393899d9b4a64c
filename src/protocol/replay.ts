import type { CID } from 'multiformats/cid';
import { recordableResponseHeaders } from './headers.ts';
import type { HeaderList } from './headers.ts';
import type { HeaderBag } from './request-key.ts';
import type { FetchRecord } from './record.ts';
import { toHex } from './signature.ts';

/** One piece of a planned body: literal bytes (multipart framing) or a slice of the recorded body. */
export type BodyPart = { readonly text: string } | { readonly offset: number; readonly length: number };

/** What to send for a request answered from a record: computed the same way in host and guest. */
export interface ResponsePlan {
  readonly status: number;
  readonly headers: Array<[string, string]>;
  /** The recorded body's CID and the parts to send in order, or null for no body. */
  readonly body: { readonly cid: CID; readonly parts: readonly BodyPart[] } | null;
  /** Content coding to undo while sending, for a client that does not accept the recorded one. */
  readonly decode?: ContentCoding;
}

export type ContentCoding = 'gzip' | 'deflate' | 'br';

const CODINGS: Record<string, ContentCoding> = { gzip: 'gzip', 'x-gzip': 'gzip', deflate: 'deflate', br: 'br' };

/**
 * Whether `acceptEncoding` allows `coding` (RFC 9110 §12.5.3, q=0 refuses). An absent header accepts only
 * identity here: that is what origins do in practice, and what clients like curl without --compressed need.
 */
export function acceptsCoding(acceptEncoding: string | undefined, coding: ContentCoding): boolean {
  if (acceptEncoding === undefined) return false;
  let star: boolean | undefined;
  for (const item of acceptEncoding.split(',')) {
    const [name = '', ...params] = item.trim().toLowerCase().split(';');
    const q = params.map((p) => /^\s*q\s*=\s*([0-9.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
    const ok = q === undefined || Number(q) > 0;
    if (CODINGS[name.trim()] === coding) return ok;
    if (name.trim() === '*') star = ok;
  }
  return star ?? false;
}

/** More ranges than this in one request are ignored (the whole body is sent): RFC 9110 §14.2 lets a server
 * ignore a Range header, and many small or overlapping ranges are a known denial-of-service pattern. */
export const MAX_RANGES = 64;

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

export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}

/**
 * Parses a `Range` header against a body of `size` bytes (RFC 9110 §14.1.2): `a-b`, `a-`, `-n`, lists of
 * them. Returns undefined to ignore the header (absent, another unit, malformed, too many or overlapping
 * ranges), 'unsatisfiable' when no range overlaps the body, else the satisfiable ranges in request order.
 */
export function parseRange(value: string | undefined, size: number): ByteRange[] | 'unsatisfiable' | undefined {
  if (value === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(value);
  if (m === null) return undefined;
  const specs = m[1]!.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (specs.length === 0 || specs.length > MAX_RANGES) return undefined;
  const ranges: ByteRange[] = [];
  for (const spec of specs) {
    const r = /^(\d*)\s*-\s*(\d*)$/.exec(spec);
    if (r === null) return undefined;
    const [, a = '', b = ''] = r;
    if (a === '' && b === '') return undefined;
    if (a.length > 15 || b.length > 15) return undefined; // beyond safe integers: absurd
    if (a === '') {
      const n = Number(b);
      if (n > 0 && size > 0) ranges.push({ start: Math.max(0, size - n), end: size - 1 });
      continue;
    }
    const start = Number(a);
    if (b !== '' && Number(b) < start) return undefined; // invalid: ignore the whole header
    if (start >= size) continue; // unsatisfiable alone; others may still be satisfiable
    ranges.push({ start, end: b === '' ? size - 1 : Math.min(Number(b), size - 1) });
  }
  if (ranges.length === 0) return 'unsatisfiable';
  const sorted = [...ranges].sort((x, y) => x.start - y.start);
  for (let i = 1; i < sorted.length; i++) if (sorted[i]!.start <= sorted[i - 1]!.end) return undefined; // overlapping
  return ranges;
}

function etagMatches(list: string, etag: string, weakCompare: boolean): boolean {
  const norm = (t: string): string => (weakCompare ? t.trim().replace(/^W\//, '') : t.trim());
  if (list.trim() === '*') return true;
  return list.split(',').some((t) => norm(t) === norm(etag));
}

function httpDate(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : t;
}

/** Whether a response with `status` carries a body (RFC 9110 §6.4.1: never 1xx, 204 or 304). */
export function statusHasBody(status: number): boolean {
  return status !== 204 && status !== 304 && !(status >= 100 && status < 200);
}

/** A response head's parts, as recorded or as they arrive. */
export interface HeadInput {
  readonly status: number;
  /** Recordable headers (see `recordableResponseHeaders`), in the order received. */
  readonly headers: HeaderList;
  /** RFC 3339 time of the fetch: the `date` every answer carries. */
  readonly fetchedAt: string;
  /** Body size, or undefined while it is unknown (the answer then goes out without a length). */
  readonly size: number | undefined;
  /** The answer to a HEAD: its headers stay as received (they describe a body not sent). */
  readonly headOnly: boolean;
}

/**
 * The head of an answer (design §5): `date` = the fetch time, then the headers in received order, with
 * `content-length` set to the body size wherever the status carries a body. Replay and the first live
 * answer use it alike, so a client sees the same head either way.
 */
export function responseHeaders(input: HeadInput): Array<[string, string]> {
  const headers: Array<[string, string]> = [['date', new Date(input.fetchedAt).toUTCString()], ...input.headers.map(([n, v]): [string, string] => [n, v])];
  if (input.headOnly || !statusHasBody(input.status)) return headers;
  if (input.size === undefined) return headers.filter(([n]) => n !== 'content-length');
  setHeader(headers, 'content-length', String(input.size));
  return headers;
}

/**
 * The head the first client gets while its answer is being fetched and recorded: the head every replay
 * gives (`responseHeaders` over the recordable headers), with the length the origin declared (none:
 * the body goes out chunked), except that `location` keeps its credential parameters: this client must be
 * able to follow it for real.
 */
export function liveResponseHead(upstream: { status: number; headers: HeaderList }, method: string, fetchedAt: string, recordable = recordableResponseHeaders(upstream.headers)): { status: number; headers: Array<[string, string]> } {
  const declared = header(upstream.headers, 'content-length');
  const headers = responseHeaders({
    status: upstream.status,
    headers: recordable,
    fetchedAt,
    size: declared === undefined ? undefined : Number(declared),
    headOnly: method === 'HEAD',
  });
  const rawLocation = header(upstream.headers, 'location');
  return { status: upstream.status, headers: rawLocation === undefined ? headers : headers.map(([n, v]): [string, string] => [n, n === 'location' ? rawLocation : v]) };
}

/**
 * The deterministic response for `request` from `record` (design §5): recorded status and headers in
 * recorded order, `Date` = `fetchedAt`, exact body bytes. HEAD, `Range` (single → 206, several →
 * multipart/byteranges, none satisfiable → 416) with `If-Range`, and `If-None-Match` / `If-Modified-Since`
 * (→ 304) are answered from the recorded full response.
 */
export function planResponse(record: FetchRecord, request: { method: string; headers: HeaderBag }): ResponsePlan {
  const res = record.response;
  const isHead = request.method === 'HEAD';
  const recordedHead = record.request.method === 'HEAD';
  const bodyCid = res.body;
  const headers = responseHeaders({ status: res.status, headers: res.headers, fetchedAt: record.fetchedAt, size: res.size, headOnly: recordedHead });
  const whole: BodyPart[] = res.size === 0 ? [] : [{ offset: 0, length: res.size }];
  const full: ResponsePlan = { status: res.status, headers, body: isHead || bodyCid === null ? null : { cid: bodyCid, parts: whole } };
  const coding = CODINGS[(header(res.headers, 'content-encoding') ?? '').trim().toLowerCase()];
  if (coding !== undefined && bodyCid !== null && !recordedHead && !acceptsCoding(single(request.headers, 'accept-encoding'), coding)) {
    // The stored bytes stay as the origin sent them; this client gets them decoded, deterministically, as a
    // whole (ranges and validators describe the encoded representation, so they do not apply).
    const decoded = headers.filter(([n]) => n !== 'content-encoding' && n !== 'content-length');
    return { status: res.status, headers: decoded, body: isHead ? null : { cid: bodyCid, parts: whole }, decode: coding };
  }
  if (res.status !== 200 || bodyCid === null || recordedHead) return full;

  const etag = header(res.headers, 'etag');
  const lastModified = header(res.headers, 'last-modified');
  const inm = single(request.headers, 'if-none-match');
  const ims = httpDate(single(request.headers, 'if-modified-since'));
  const lm = httpDate(lastModified);
  // RFC 9110 §13.2.2: If-None-Match (weak comparison) takes precedence over If-Modified-Since.
  const notModified = inm !== undefined ? etag !== undefined && etagMatches(inm, etag, true) : ims !== undefined && lm !== undefined && lm <= ims;
  if (notModified) {
    // RFC 9110 §15.4.5: a 304 carries the validators, no body and no content-length.
    return { status: 304, headers: headers.filter(([n]) => n !== 'content-length'), body: null };
  }

  const ranges = parseRange(single(request.headers, 'range'), res.size);
  if (ranges === undefined) return full;
  const ifRange = single(request.headers, 'if-range');
  if (ifRange !== undefined) {
    // RFC 9110 §13.1.5: an entity-tag must match strongly; a date must equal Last-Modified exactly.
    const ok = ifRange.trim().startsWith('"') || ifRange.trim().startsWith('W/')
      ? etag !== undefined && !etag.startsWith('W/') && ifRange.trim() === etag
      : lm !== undefined && httpDate(ifRange) === lm;
    if (!ok) return full;
  }
  if (ranges === 'unsatisfiable') {
    const h = headers.filter(([n]) => n !== 'content-length' && n !== 'content-encoding');
    h.push(['content-range', `bytes */${res.size}`], ['content-length', '0']);
    return { status: 416, headers: h, body: null };
  }
  if (ranges.length === 1) {
    const r = ranges[0]!;
    setHeader(headers, 'content-length', String(r.end - r.start + 1));
    setHeader(headers, 'content-range', `bytes ${r.start}-${r.end}/${res.size}`);
    return { status: 206, headers, body: isHead ? null : { cid: bodyCid, parts: [{ offset: r.start, length: r.end - r.start + 1 }] } };
  }
  // multipart/byteranges (RFC 9110 §14.6) with a boundary derived from the body digest: deterministic.
  const boundary = `fetch-oracle-${toHex(res.sha256).slice(0, 24)}`;
  const type = header(res.headers, 'content-type');
  const parts: BodyPart[] = [];
  let length = 0;
  ranges.forEach((r, i) => {
    const head = `${i === 0 ? '' : '\r\n'}--${boundary}\r\n${type === undefined ? '' : `content-type: ${type}\r\n`}content-range: bytes ${r.start}-${r.end}/${res.size}\r\n\r\n`;
    parts.push({ text: head }, { offset: r.start, length: r.end - r.start + 1 });
    length += Buffer.byteLength(head) + r.end - r.start + 1;
  });
  const tail = `\r\n--${boundary}--\r\n`;
  parts.push({ text: tail });
  length += Buffer.byteLength(tail);
  const h = headers.filter(([n]) => n !== 'content-type');
  setHeader(h, 'content-length', String(length));
  h.push(['content-type', `multipart/byteranges; boundary=${boundary}`]);
  return { status: 206, headers: h, body: isHead ? null : { cid: bodyCid, parts } };
}
