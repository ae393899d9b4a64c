import { describe, expect, it } from 'vitest';
import { renderPinned } from '../../src/seed/lockfile-out.ts';
import type { LockfileFormat, PinnedEntry } from '../../src/seed/lockfile-out.ts';

function entry(i: number, over: Partial<PinnedEntry> = {}): PinnedEntry {
  const hex = i.toString(16).padStart(2, '0').repeat(32);
  return { method: 'GET', url: `https://r.example/p${i}.tgz`, accept: '*/*', status: 200, size: i * 10, sha256: hex, integrity: `sha512-${'A'.repeat(86)}==`, body: `bafkrei${i}`, record: `bafyrei${i}`, ...over };
}

async function* one(entries: readonly PinnedEntry[]): AsyncGenerator<PinnedEntry> {
  for (const e of entries) yield await Promise.resolve(e);
}

async function rendered(entries: readonly PinnedEntry[], format: LockfileFormat): Promise<string> {
  let text = '';
  for await (const piece of renderPinned(one(entries), format)) text += piece;
  return text;
}

describe('renderPinned', () => {
  const lists = [[], [entry(1)], [entry(1), entry(2, { status: 301, body: null }), entry(3, { method: 'HEAD' }), entry(4, { url: 'https://r.example/p1.tgz', accept: 'application/json' }), entry(5)]];

  it('writes json piece by piece exactly as JSON.stringify writes the whole array', async () => {
    for (const list of lists) expect(await rendered(list, 'json')).toBe(`${JSON.stringify(list, null, 2)}\n`);
  });

  it('lists GET 200 answers once per URL, in order, for sha256sums and urls', async () => {
    const list = lists[2]!;
    expect(await rendered(list, 'sha256sums')).toBe(`${entry(1).sha256}  ${entry(1).url}\n${entry(5).sha256}  ${entry(5).url}\n`);
    expect(await rendered(list, 'urls')).toBe(`${entry(1).url} sha256=${entry(1).sha256}\n${entry(5).url} sha256=${entry(5).sha256}\n`);
    expect(await rendered([], 'sha256sums')).toBe('');
  });
});
