import { describe, expect, it } from 'vitest';
import { startedBody } from '../../src/io/started-body.ts';

/** An async generator source that records how far it got and whether its `finally` ran (its release). */
function source(chunks: string[], failAt?: number) {
  const seen = { read: 0, released: false };
  async function* gen(): AsyncGenerator<Uint8Array> {
    try {
      for (const [i, c] of chunks.entries()) {
        if (i === failAt) throw new Error('source failed (simulated)');
        seen.read++;
        yield await Promise.resolve(Buffer.from(c));
      }
    } finally {
      seen.released = true;
    }
  }
  return { body: gen(), seen };
}

describe('startedBody', () => {
  it('has read exactly the first chunk when it resolves, then yields everything once, in order', async () => {
    const { body, seen } = source(['x', 'y', 'z']);
    const started = await startedBody(body);
    expect(seen.read).toBe(1);
    const out: string[] = [];
    for await (const c of started) out.push(Buffer.from(c).toString());
    expect(out).toEqual(['x', 'y', 'z']);
    expect(seen.released).toBe(true);
  });

  it('rejects when the first read fails, so an error answer can still replace the head', async () => {
    const { body, seen } = source(['x'], 0);
    await expect(startedBody(body)).rejects.toThrow('source failed (simulated)');
    expect(seen.released).toBe(true);
  });

  it('releases a source that is still open when its reader stops after the first chunk', async () => {
    const { body, seen } = source(['x', 'y']);
    const started = await startedBody(body);
    expect(seen.released).toBe(false);
    expect((await started.next()).value).toEqual(Buffer.from('x'));
    await started.return();
    expect(seen).toEqual({ read: 1, released: true });
  });
});
