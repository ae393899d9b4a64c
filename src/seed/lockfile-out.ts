import type { BlockSource } from '../protocol/blocks.ts';
import { openEntryRecords } from '../netlock/entry-records.ts';
import { parseKeyId } from '../protocol/request-key.ts';
import type { CID } from 'multiformats/cid';
import { toHex } from '../protocol/signature.ts';
import { toSri } from './digests.ts';

export const LOCKFILE_FORMATS = ['sha256sums', 'urls', 'json'] as const;
export type LockfileFormat = (typeof LOCKFILE_FORMATS)[number];

export interface PinnedEntry {
  method: string;
  url: string;
  accept: string;
  status: number;
  size: number;
  sha256: string;
  /** SRI form, as npm lockfiles write it. */
  integrity: string;
  body: string | null;
  record: string;
}

/** Every entry of a netlock, read from its DAG (each block checked against its CID), in key order. */
export async function* pinnedEntries(root: CID, source: BlockSource): AsyncGenerator<PinnedEntry> {
  for await (const e of (await openEntryRecords(root, source)).entries()) {
    const r = e.record;
    const k = parseKeyId(e.key);
    yield {
      method: k.method,
      url: k.url,
      accept: k.variant['accept'] ?? '',
      status: r.response.status,
      size: r.response.size,
      sha256: toHex(r.response.sha256),
      integrity: toSri('sha512', r.response.sha512),
      body: r.response.body?.toString() ?? null,
      record: e.signed.record.toString(),
    };
  }
}

/**
 * Renders a recording as a pinned list (recording becomes pinning), piece by piece as the entries come: a
 * netlock of 100,000 entries is never held whole, as entries or as text (issue #15). `sha256sums` and `urls`
 * hold the GET 200 answers only (what a download list can pin; redirect hops and negative answers have no
 * artefact), in the forms `seed` reads back: `HEX  URL` and `URL sha256=HEX`. `json` holds every entry, as
 * `JSON.stringify(entries, null, 2)` writes the array.
 */
export async function* renderPinned(entries: AsyncIterable<PinnedEntry>, format: LockfileFormat): AsyncGenerator<string> {
  if (format === 'json') {
    let first = true;
    for await (const e of entries) {
      // An element of a pretty-printed array: its own lines indented one level more (strings hold no raw newline).
      yield `${first ? '[\n' : ',\n'}${JSON.stringify(e, null, 2).replace(/^/gm, '  ')}`;
      first = false;
    }
    yield first ? '[]\n' : '\n]\n';
    return;
  }
  // One line per URL: variants of one URL (an index page under pip's Accept) are one download to a list.
  const seen = new Set<string>();
  for await (const e of entries) {
    if (e.method !== 'GET' || e.status !== 200 || seen.has(e.url)) continue;
    seen.add(e.url);
    yield format === 'sha256sums' ? `${e.sha256}  ${e.url}\n` : `${e.url} sha256=${e.sha256}\n`;
  }
}
