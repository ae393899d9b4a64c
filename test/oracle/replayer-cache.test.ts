import type { CID } from 'multiformats/cid';
import { describe, expect, it } from 'vitest';
import { NOOP_LOGGER } from '../../src/log.ts';
import { NetlockReader } from '../../src/netlock/dag.ts';
import { Replayer } from '../../src/oracle/replayer.ts';
import { createStats } from '../../src/oracle/stats.ts';
import type { AbortOptions, BlockSource } from '../../src/protocol/blocks.ts';
import { verifyingSource } from '../../src/protocol/blocks.ts';
import { computeRequestKey } from '../../src/protocol/request-key.ts';
import { MemoryBlockStore } from '../../src/store/memory-block-store.ts';
import { buildFixtureNetlock } from '../netlock/netlock-fixture.ts';

const URLS = ['https://registry.example/a.tgz', 'https://registry.example/b.tgz', 'https://registry.example/c.tgz'] as const;

/** A replayer over a three-entry netlock, counting how often each URL's record block is read (each read is a verification). */
async function replayerOf(recordCacheEntries: number, keepFromSecondAnswer = false): Promise<{ replayer: Replayer; reads: Map<string, number> }> {
  const store = new MemoryBlockStore();
  const built = await buildFixtureNetlock(
    URLS.map((url) => ({ url, bodyBytes: 100 })),
    store,
  );
  const urlOfRecord = new Map(built.entries.map((e) => [e.signed.record.toString(), e.record.request.url]));
  const reads = new Map<string, number>();
  const counting: BlockSource = {
    get(cid: CID, options?: AbortOptions) {
      const url = urlOfRecord.get(cid.toString());
      if (url !== undefined) reads.set(url, (reads.get(url) ?? 0) + 1);
      return store.get(cid, options);
    },
  };
  const source = verifyingSource(counting);
  const replayer = new Replayer({ netlock: new NetlockReader(built.root, source), source, trusted: [built.signer.publicKey], stats: createStats('replay'), logger: NOOP_LOGGER, recordCacheEntries, keepFromSecondAnswer });
  return { replayer, reads };
}

const keyOf = (url: string) => computeRequestKey({ method: 'GET', url, headers: { accept: '*/*' } });

describe('Replayer: verified records kept', () => {
  it('keeps the most recently used records and verifies an evicted one again', async () => {
    const { replayer, reads } = await replayerOf(2);
    const [a, b, c] = URLS;
    for (const url of [a, b, a, a]) expect((await replayer.answer(keyOf(url))).kind).toBe('hit');
    expect(reads).toEqual(new Map([[a, 1], [b, 1]]));
    expect(replayer.answerNow(keyOf(a))?.kind).toBe('hit'); // at hand, no read
    // c comes in: b, used least recently, goes; a stays.
    expect((await replayer.answer(keyOf(c))).kind).toBe('hit');
    expect(replayer.recordNow(keyOf(b))).toBeUndefined();
    expect(replayer.recordNow(keyOf(a))?.request.url).toBe(a);
    expect(replayer.answerNow(keyOf(b))).toBeUndefined();
    expect((await replayer.answer(keyOf(b))).kind).toBe('hit');
    expect(reads).toEqual(new Map([[a, 1], [b, 2], [c, 1]]));
    // b back in: a went, untouched since before c came (looking at it with recordNow is no use of it).
    expect(replayer.recordNow(keyOf(a))).toBeUndefined();
    expect(replayer.recordNow(keyOf(c))?.request.url).toBe(c);
  });

  it('keeps a record from its second answer on when told to (the host), answering the first from what it looked up', async () => {
    const { replayer, reads } = await replayerOf(2, true);
    const [a, b, c] = URLS;
    // The front's way: look up, take the record, answer with it (counted then). Read once, not kept.
    await replayer.prepare(keyOf(a));
    expect(replayer.recordNow(keyOf(a))?.request.url).toBe(a);
    expect(replayer.answerNow(keyOf(a))?.kind).toBe('hit');
    expect(replayer.answerNow(keyOf(a))).toBeUndefined();
    expect(replayer.recordNow(keyOf(a))).toBeUndefined();
    expect(replayer.used.has(keyOf(a).id)).toBe(true);
    // The Node server's way, for another key: answered, not kept either.
    expect((await replayer.answer(keyOf(b))).kind).toBe('hit');
    expect(replayer.recordNow(keyOf(b))).toBeUndefined();
    expect(reads).toEqual(new Map([[a, 1], [b, 1]]));
    // Their second answers read them again and keep them: from then on they are at hand.
    for (const url of [a, b]) expect((await replayer.answer(keyOf(url))).kind).toBe('hit');
    for (const url of [a, b, a]) expect(replayer.answerNow(keyOf(url))?.kind).toBe('hit');
    expect(reads).toEqual(new Map([[a, 2], [b, 2]]));
    // A record looked up is held for its answer, whichever way it comes.
    await replayer.prepare(keyOf(c));
    expect((await replayer.answer(keyOf(c))).kind).toBe('hit');
    expect(replayer.recordNow(keyOf(c))).toBeUndefined();
    expect(reads).toEqual(new Map([[a, 2], [b, 2], [c, 1]]));
  });

  it('keeps none when told to keep none: every answer verifies its record again', async () => {
    const { replayer, reads } = await replayerOf(0);
    const [a] = URLS;
    for (let i = 0; i < 3; i++) expect((await replayer.answer(keyOf(a))).kind).toBe('hit');
    expect(replayer.answerNow(keyOf(a))).toBeUndefined();
    expect(reads.get(a)).toBe(3);
  });
});
