import { readdir } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SPILL_MAX_BYTES, SpillFile } from '../../src/io/spill-file.ts';
import { tempDir } from '../helpers/run.ts';

let dir: { path: string; remove(): Promise<void> };
beforeEach(async () => {
  dir = await tempDir('fo-spill-');
});
afterEach(async () => {
  await dir.remove();
});

describe('SpillFile: texts kept out of the heap until read back', () => {
  it('gives back every text by its ticket, in any order, with no file left in its directory', async () => {
    const spill = new SpillFile(dir.path);
    const texts = ['', 'a', '["signed",0,"2026-12-04T14:00:00.000Z",200]', 'Ünïcödé ✓ 🚀', 'x'.repeat(70_000)];
    for (let i = 0; i < 300; i++) texts.push(`entry ${i} ${'y'.repeat(i)}`);
    const tickets = texts.map((t) => spill.append(t)!);
    expect(new Set(tickets).size).toBe(texts.length);
    expect(await readdir(dir.path)).toEqual([]); // unlinked once open: nothing outlives the process
    for (const i of [...texts.keys()].reverse()) expect(spill.read(tickets[i]!)).toBe(texts[i]);
    spill.close();
  });

  it('declines a text longer than a ticket can name (the caller keeps it), and refuses use once closed', () => {
    const spill = new SpillFile(dir.path);
    const ticket = spill.append('kept');
    expect(spill.append('z'.repeat(SPILL_MAX_BYTES + 1))).toBeUndefined();
    expect(spill.read(ticket!)).toBe('kept'); // the declined text took no room
    expect(spill.read(spill.append('next')!)).toBe('next');
    spill.close();
    spill.close();
    expect(() => spill.read(ticket!)).toThrow(/closed/);
    expect(() => spill.append('more')).toThrow(/closed/);
  });
});
