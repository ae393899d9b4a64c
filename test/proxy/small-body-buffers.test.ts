/**
 * One-block bodies are read into buffers reused across answers (issue #15: a fresh external buffer per hit
 * made V8 collect fully every half second). Reuse is only safe if a buffer is lent to one answer at a time:
 * these pin down the lending rules; `test/oracle/replay-under-load.test.ts` checks the bytes under load.
 */
import { describe, expect, it } from 'vitest';
import { BodyBuffers, POOLED_BYTES_MAX } from '../../src/proxy/leaf-buffers.ts';

describe('BodyBuffers', () => {
  it('lends a view of exactly the size asked, in a power-of-two class of at least 4 KiB', () => {
    for (const [size, whole] of [[1, 4096], [4096, 4096], [4097, 8192], [40_000, 65_536], [300_000, 524_288], [1_048_576 + 300, 2_097_152], [POOLED_BYTES_MAX, POOLED_BYTES_MAX]] as const) {
      const b = BodyBuffers.take(size);
      expect(b.byteLength).toBe(size);
      expect(b.byteOffset).toBe(0);
      expect(b.buffer.byteLength).toBe(whole);
    }
  });

  it('gives a buffer back for the next answer of its class, once', () => {
    const a = BodyBuffers.take(5000);
    BodyBuffers.give(a);
    const b = BodyBuffers.take(6000); // same 8 KiB class: the memory given back
    expect(b.buffer).toBe(a.buffer);
    BodyBuffers.give(a); // a second give of the same loan (a stale callback) is ignored ...
    BodyBuffers.give(b);
    const c = BodyBuffers.take(5000);
    const d = BodyBuffers.take(5000);
    expect(c.buffer).toBe(a.buffer);
    expect(d.buffer).not.toBe(a.buffer); // ... so the memory is never lent to two answers at once
  });

  it('ignores memory it did not lend and does not pool memory above POOLED_BYTES_MAX', () => {
    const foreign = Buffer.allocUnsafeSlow(4096);
    BodyBuffers.give(foreign);
    expect(BodyBuffers.take(4096).buffer).not.toBe(foreign.buffer);
    const big = BodyBuffers.take(POOLED_BYTES_MAX + 1);
    expect(big.byteLength).toBe(POOLED_BYTES_MAX + 1);
    BodyBuffers.give(big);
    expect(BodyBuffers.take(POOLED_BYTES_MAX + 1).buffer).not.toBe(big.buffer);
  });
});
