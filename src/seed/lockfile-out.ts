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
 * Renders a recording as a pinned list (recording becomes pinning). `sha256sums` and `urls` hold the GET 200
 * answers only (what a download list can pin; redirect hops and negative answers have no artefact), in the
 * forms `seed` reads back: `HEX  URL` and `URL sha256=HEX`. `json` holds every entry.
 */
export function renderPinned(entries: readonly PinnedEntry[], format: LockfileFormat): string {
  if (format === 'json') return `${JSON.stringify(entries, null, 2)}\n`;
  // One line per URL: variants of one URL (an index page under pip's Accept) are one download to a list.
  const seen = new Set<string>();
  const downloads = entries.filter((e) => e.method === 'GET' && e.status === 200 && !seen.has(e.url) && seen.add(e.url) !== undefined);
  const lines = downloads.map((e) => (format === 'sha256sums' ? `${e.sha256}  ${e.url}` : `${e.url} sha256=${e.sha256}`));
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}
