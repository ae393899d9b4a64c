import { readdirSync } from 'node:fs';
import { setImmediate } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sortByKey } from '../../src/io/key-sort.ts';
import { compareKeys } from '../../src/netlock/dag.ts';
import { tempDir } from '../helpers/run.ts';

let dir: { path: string; remove(): Promise<void> };
beforeEach(async () => {
  dir = await tempDir('fo-key-sort-');
});
afterEach(async () => {
  await dir.remove();
});

/** Request-key-like strings: newlines, quotes, backslashes, non-ASCII, shared prefixes, some repeated. */
function keys(count: number): string[] {
  let x = 12345;
  const next = (): number => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
  const parts = ['https://registry.example/pkg/', 'GET\n', 'accept: */*\n', '"q"', '\\', 'ü', '\u2028', 'a', 'z', '0'];
  return Array.from({ length: count }, () => Array.from({ length: 1 + (next() % 6) }, () => parts[next() % parts.length]).join(''));
}

const openFds = (): number => readdirSync('/proc/self/fd').length;

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe('sortByKey: pairs in key order, a chunk in memory at a time (issue #15: a run of 1,000,000 keys)', () => {
  it.each([1, 3, 64, 5000])('gives every pair once, in the order an in-memory sort gives the keys, with chunks of %i', async (chunk) => {
    const input = keys(2000).map((k, i): [string, number] => [k, i]);
    const sorted = await collect(sortByKey(input, { dir: dir.path, chunk, compare: compareKeys }));
    expect(sorted.map(([k]) => k)).toEqual(input.map(([k]) => k).sort(compareKeys));
    expect(sorted.map(([, v]) => v).sort((a, b) => a - b)).toEqual(input.map(([, v]) => v));
    for (const [k, v] of sorted) expect(input[v]![0]).toBe(k); // each value stays with its key
  });

  it('writes nothing for fewer pairs than a chunk, and closes its scratch file however the iteration ends', async () => {
    const input = keys(500).map((k, i): [string, number] => [k, i]);
    const before = openFds();
    const small = sortByKey(input, { dir: dir.path, chunk: 1000, compare: compareKeys });
    await small.next();
    expect(openFds()).toBe(before);
    await small.return(undefined);

    const spilled = sortByKey(input, { dir: dir.path, chunk: 16, compare: compareKeys });
    expect((await spilled.next()).done).toBe(false);
    expect(openFds()).toBe(before + 1); // the runs' scratch file, unlinked at once
    expect(readdirSync(dir.path)).toEqual([]);
    for await (const _ of spilled) break; // abandoned midway
    expect(openFds()).toBe(before);
    expect(await collect(sortByKey(input, { dir: dir.path, chunk: 16, compare: compareKeys }))).toHaveLength(500);
    expect(openFds()).toBe(before);
  });

  it('sorts nothing to nothing, keys given asynchronously, and values as large as a spill ticket exactly', async () => {
    expect(await collect(sortByKey([], { dir: dir.path, chunk: 2, compare: compareKeys }))).toEqual([]);
    const big = 2 ** 52 + 1;
    const given = async function* (): AsyncGenerator<[string, number]> {
      for (const pair of [['b', big], ['a', 0], ['c', 7]] as Array<[string, number]>) {
        await setImmediate();
        yield pair;
      }
    };
    expect(await collect(sortByKey(given(), { dir: dir.path, chunk: 1, compare: compareKeys }))).toEqual([['a', 0], ['b', big], ['c', 7]]);
  });
});
