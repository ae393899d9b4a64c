import { describe, expect, it } from 'vitest';
import { withFirstChunk } from '../../src/upstream/safe-dispatcher.ts';

/** A body source that counts how it is used: each `next` takes the next chunk (or throws at `failAt`). */
function countedBody(chunks: string[], failAt?: number) {
  const use = { nexts: 0, returns: 0, destroyed: undefined as Error | undefined | 'no error' };
  let at = 0;
  const it: AsyncIterator<Uint8Array> = {
    next: () => {
      use.nexts++;
      if (at === failAt) return Promise.reject(new Error('reset by peer (simulated)'));
      return Promise.resolve(at < chunks.length ? { done: false, value: Buffer.from(chunks[at++]!) } : { done: true, value: undefined });
    },
    return: () => {
      use.returns++;
      return Promise.resolve({ done: true, value: undefined });
    },
  };
  const body = { [Symbol.asyncIterator]: () => it, destroy: (err?: Error) => (use.destroyed = err ?? 'no error') };
  return { body, use };
}

async function text(body: AsyncIterable<Uint8Array>): Promise<string> {
  let out = '';
  for await (const c of body) out += Buffer.from(c).toString();
  return out;
}

describe('withFirstChunk', () => {
  it('has read the first chunk when it resolves, then yields it and the rest in order, releasing the source once', async () => {
    const { body, use } = countedBody(['a', 'b', 'c']);
    const wrapped = await withFirstChunk(body);
    expect(use.nexts).toBe(1);
    expect(await text(wrapped)).toBe('abc');
    expect(use.returns).toBe(1);
    expect(await wrapped[Symbol.asyncIterator]().next()).toEqual({ done: true, value: undefined });
    expect(use.returns).toBe(1);
  });

  it('yields nothing for an empty body', async () => {
    const { body, use } = countedBody([]);
    expect(await text(await withFirstChunk(body))).toBe('');
    expect(use.returns).toBe(1);
  });

  it('releases the source when its reader stops early, and reads nothing more', async () => {
    const { body, use } = countedBody(['a', 'b', 'c']);
    const wrapped = await withFirstChunk(body);
    for await (const c of wrapped) {
      expect(Buffer.from(c).toString()).toBe('a');
      break;
    }
    expect(use).toMatchObject({ nexts: 1, returns: 1 });
  });

  it('passes a failure of the source on, after releasing it, and is done from then on', async () => {
    const { body, use } = countedBody(['a', 'b'], 1);
    const wrapped = await withFirstChunk(body);
    await expect(text(wrapped)).rejects.toThrow('reset by peer (simulated)');
    expect(use.returns).toBe(1);
    expect(await wrapped[Symbol.asyncIterator]().next()).toEqual({ done: true, value: undefined });
  });

  it('rejects when the first read fails, and destroys through to the source', async () => {
    await expect(withFirstChunk(countedBody(['a'], 0).body)).rejects.toThrow('reset by peer (simulated)');
    const { body, use } = countedBody(['a']);
    const wrapped = await withFirstChunk(body);
    const err = new Error('client gone');
    wrapped.destroy(err);
    expect(use.destroyed).toBe(err);
  });
});
