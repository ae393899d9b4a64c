import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TextRing } from '../../src/io/text-ring.ts';
import { tempDir } from '../helpers/run.ts';

let dir: { path: string; remove(): Promise<void> };
beforeEach(async () => {
  dir = await tempDir('fo-text-ring-');
});
afterEach(async () => {
  await dir.remove();
});

const openFds = (): number => readdirSync('/proc/self/fd').length;
const text = (n: number): string => `{"n":${n},"u":"https://example.test/ü\\n${'x'.repeat(n % 7)}"}\n${n % 3 === 0 ? '\u2028' : ''}`;

describe.each([
  { held: 'in scratch files', spill: true },
  { held: 'in the heap', spill: false },
])('TextRing: the last texts pushed, $held (issue #15: the live page request log)', ({ spill }) => {
  it('reads back each text of the window as pushed, through generations, and refuses one outside it', () => {
    const ring = new TextRing(10, spill ? dir.path : undefined);
    try {
      expect([ring.first, ring.next]).toEqual([0, 0]);
      for (let n = 0; n < 7; n++) ring.push(text(n));
      expect([ring.first, ring.next]).toEqual([0, 7]);
      for (let n = 7; n < 47; n++) ring.push(text(n));
      expect([ring.first, ring.next]).toEqual([37, 47]);
      for (let n = 37; n < 47; n++) expect(ring.read(n)).toBe(text(n));
      expect(() => ring.read(36)).toThrow(RangeError);
      expect(() => ring.read(47)).toThrow(RangeError);
      expect(readdirSync(dir.path)).toEqual([]); // scratch files are unlinked once open
    } finally {
      ring.close();
    }
  });

  it('holds at most two scratch files open however many texts pass, and frees them on close', () => {
    const before = openFds();
    const ring = new TextRing(8, spill ? dir.path : undefined);
    for (let n = 0; n < 1000; n++) {
      ring.push(text(n));
      expect(openFds() - before).toBeLessThanOrEqual(spill ? 2 : 0);
    }
    expect(ring.read(995)).toBe(text(995));
    ring.close();
    ring.close();
    expect(openFds()).toBe(before);
    ring.push('after close');
    expect(ring.read(1000)).toBe('after close');
    if (spill) expect(() => ring.read(999)).toThrow(/closed/);
    else expect(ring.read(999)).toBe(text(999));
  });
});

it('TextRing keeps a text in the heap when its scratch file cannot be written, losing none', () => {
  const ring = new TextRing(4, join(dir.path, 'gone', 'away'));
  for (let n = 0; n < 6; n++) ring.push(text(n));
  expect([2, 3, 4, 5].map((n) => ring.read(n))).toEqual([2, 3, 4, 5].map(text));
  ring.close();
});
