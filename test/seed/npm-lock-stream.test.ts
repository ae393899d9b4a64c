/**
 * A package-lock.json read as a stream (issue #15: a 100,000-package lockfile read whole was the seed's peak)
 * gives the plan the whole-text reader gives: entries, warnings, errors, and the same file:line.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readNpmLockStream } from '../../src/seed/npm-lock-stream.ts';
import { parseNpmLock } from '../../src/seed/parse-npm-lock.ts';
import { tempDir } from '../helpers/run.ts';

const integrity = (i: number): string => `sha512-${Buffer.alloc(64, i % 251).toString('base64')}`;

/** A v3 lockfile of `n` packages (names with non-ASCII letters), with every kind of entry that warns or is skipped. */
function lockfile(n: number, version = 3): Record<string, unknown> {
  const packages: Record<string, unknown> = { '': { name: 'app', version: '1.0.0', dependencies: { a: '^1' } } };
  for (let i = 0; i < n; i++) {
    packages[`node_modules/pkg-é${i}`] = { version: `1.0.${i}`, resolved: `https://registry.example/pkg-é${i}/-/pkg-é${i}-1.0.${i}.tgz`, integrity: integrity(i), dependencies: { [`dep${i}`]: '^2.0.0' } };
    if (i % 97 === 0) packages[`node_modules/nores${i}`] = { version: '1.0.0' };
    if (i % 89 === 0) packages[`node_modules/git${i}`] = { version: '1.0.0', resolved: 'git+ssh://git@example.com/x.git#abc' };
    if (i % 83 === 0) packages[`node_modules/noint${i}`] = { version: '1.0.0', resolved: `https://registry.example/noint${i}.tgz` };
    if (i % 79 === 0) packages[`packages/ws${i}`] = { link: true, resolved: 'packages/ws' };
    if (i % 73 === 0) packages[`node_modules/pkg-é${i}/node_modules/inner`] = { version: '1.0.0', inBundle: true };
  }
  // v2 also carries the legacy `dependencies` tree, which the stream drops.
  const legacy = version === 2 ? { dependencies: Object.fromEntries(Array.from({ length: n }, (_, i) => [`pkg-é${i}`, { version: `1.0.${i}`, resolved: 'https://legacy.example/x.tgz', integrity: integrity(i) }])) } : {};
  return { name: 'app', version: '1.0.0', lockfileVersion: version, requires: true, packages, ...legacy };
}

describe('readNpmLockStream', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    dir = await tempDir('fo-npm-stream-');
  });
  afterAll(async () => {
    await dir.remove();
  });

  async function both(name: string, text: string): Promise<{ whole: ReturnType<typeof parseNpmLock>; streamed: Awaited<ReturnType<typeof readNpmLockStream>> }> {
    const path = join(dir.path, name);
    await writeFile(path, text);
    return { whole: parseNpmLock(text, path), streamed: await readNpmLockStream(path) };
  }

  it('gives the whole-text plan, lines included, pretty or on one line, v3 or v2, over many reads of the file', async () => {
    for (const [name, text] of [
      ['pretty-v3.json', JSON.stringify(lockfile(3000), null, 2)],
      ['pretty-v2.json', JSON.stringify(lockfile(3000, 2), null, 2)],
      ['one-line.json', JSON.stringify(lockfile(3000))],
      ['tabs-crlf.json', JSON.stringify(lockfile(50), null, '\t').replace(/\n/g, '\r\n')],
    ] as const) {
      const { whole, streamed } = await both(name, text);
      expect(whole.entries.length, name).toBeGreaterThan(40);
      expect(whole.warnings.length, name).toBeGreaterThan(0);
      expect(streamed, name).toEqual(whole);
    }
    expect(Buffer.byteLength(JSON.stringify(lockfile(3000), null, 2))).toBeGreaterThan(3 * 256 * 1024);
  });

  it('leaves a lockfileVersion 1 file (nested dependencies only) to the whole-text reader', async () => {
    const v1 = { name: 'app', lockfileVersion: 1, dependencies: { a: { version: '1.0.0', resolved: 'https://r.example/a.tgz', integrity: integrity(1) } } };
    const { whole, streamed } = await both('v1.json', JSON.stringify(v1, null, 2));
    expect(whole.entries).toHaveLength(1);
    expect(streamed).toBeUndefined();
  });

  it('refuses what the whole-text reader refuses, with the same file:line', async () => {
    const cases: Array<[string, string]> = [
      ['trailing-comma.json', '{\n  "lockfileVersion": 3,\n  "packages": {\n    "node_modules/x": { "resolved": "https://x" },,\n  }\n}\n'],
      ['array.json', '[1, 2]'],
      ['version.json', '{\n  "name": "a",\n  "lockfileVersion": 7,\n  "packages": {}\n}'],
      ['no-packages.json', '{\n  "lockfileVersion": 3,\n  "packages": []\n}'],
      ['entry.json', '{\n  "lockfileVersion": 3,\n  "packages": {\n    "": {},\n    "node_modules/a": "1.0.0"\n  }\n}'],
      ['integrity.json', `{\n  "lockfileVersion": 3,\n  "packages": {\n    "node_modules/a": {\n      "resolved": "https://r.example/a.tgz",\n      "integrity": "md5-nope"\n    }\n  }\n}`],
      ['cut.json', JSON.stringify(lockfile(20), null, 2).slice(0, 2000)],
      ['garbage-after.json', `${JSON.stringify(lockfile(3), null, 2)}\nxyz`],
    ];
    for (const [name, text] of cases) {
      const path = join(dir.path, name);
      await writeFile(path, text);
      let wholeError: Error | undefined;
      try {
        parseNpmLock(text, path);
      } catch (err) {
        wholeError = err as Error;
      }
      expect(wholeError, name).toBeDefined();
      const streamError = await readNpmLockStream(path).then(
        () => undefined,
        (err: unknown) => err as Error,
      );
      expect(streamError, name).toBeDefined();
      expect(streamError, name).toMatchObject({ code: 'ORACLE_ERR_INVALID_LOCKFILE' });
      // The same file:line and the same kind of complaint (the JSON parsers word their details differently).
      const head = (e: Error): string => e.message.replace(/^(.*?:\d+: [^:]*).*$/s, '$1');
      expect(head(streamError!), name).toBe(head(wholeError!));
    }
  });
});
