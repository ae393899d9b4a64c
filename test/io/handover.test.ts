import { describe, expect, it } from 'vitest';
import { Handover } from '../../src/io/handover.ts';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (chunks: Uint8Array[]): string => chunks.map((c) => new TextDecoder().decode(c)).join('');

describe('Handover', () => {
  it('hands chunks over one at a time: push resolves when the reader took the chunk', async () => {
    const h = new Handover();
    let taken = false;
    const pushed = h.push(bytes('a')).then(() => (taken = true));
    await Promise.resolve();
    expect(taken).toBe(false);
    const it = h[Symbol.asyncIterator]();
    expect(text([(await it.next()).value as Uint8Array])).toBe('a');
    await pushed;
    expect(taken).toBe(true);
    h.end();
    expect((await it.next()).done).toBe(true);
  });

  it('passes a failure to the reader', async () => {
    const h = new Handover();
    const reading = (async () => {
      const out: Uint8Array[] = [];
      for await (const c of h) out.push(c);
      return out;
    })();
    await h.push(bytes('x'));
    h.fail(new Error('upstream reset'));
    await expect(reading).rejects.toThrow('upstream reset');
  });

  it('lets the producer go on alone once the reader leaves', async () => {
    const h = new Handover();
    const pending = h.push(bytes('a'));
    for await (const _c of h) break; // the reader stops early
    await pending;
    expect(h.left).toBe(true);
    await h.push(bytes('b')); // resolves at once
    h.end();
  });
});
