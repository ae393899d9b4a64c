/**
 * The readable file of a netlock written from its root a page at a time (`import --netlock`; issue #15: it
 * rebuilt the whole netlock in memory): byte for byte the file the netlock was written as.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CID } from 'multiformats/cid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNetlockFile, renderNetlockFile, writeNetlockFileOf } from '../../src/netlock/file.ts';
import { verifyingSource } from '../../src/protocol/blocks.ts';
import { FsBlockStore } from '../../src/store/fs-block-store.ts';
import { tempDir } from '../helpers/run.ts';
import { buildFixtureNetlock, manySmallResponses } from './netlock-fixture.ts';
import type { FixtureNetlock } from './netlock-fixture.ts';

describe('writeNetlockFileOf', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let store: FsBlockStore;
  let fixture: FixtureNetlock;

  beforeAll(async () => {
    dir = await tempDir('fo-file-of-root-');
    store = new FsBlockStore(join(dir.path, 'data'));
    fixture = await buildFixtureNetlock(manySmallResponses(2100, 64), store);
  });
  afterAll(async () => {
    await store.close();
    await dir.remove();
  });

  it('writes the file as rendered when the netlock was built: over several pages, with variant rules, and empty', async () => {
    const withRules = await buildNetlockFile(fixture.entries.slice(0, 5), store, { variantRules: { 'registry.example': ['x-api-version'] } });
    const empty = await buildNetlockFile([], store);
    for (const [name, file] of [
      ['2,100 entries', fixture.file],
      ['variant rules', withRules],
      ['empty', empty],
    ] as const) {
      const path = join(dir.path, `${name.replace(/\W+/g, '-')}.json`);
      const head = await writeNetlockFileOf(path, CID.parse(file.netlock), verifyingSource(store));
      expect(await readFile(path, 'utf8'), name).toBe(renderNetlockFile(file));
      expect(head.count, name).toBe(file.entries.length);
    }
    expect(withRules.variantRules).toBeDefined();
  });

  it('refuses a netlock whose record block does not match its CID, leaving no file', async () => {
    const record = fixture.entries[1500]!.signed.record;
    const tampered = {
      get: async (cid: CID, options?: { signal?: AbortSignal }) => {
        const bytes = await store.get(cid, options);
        return cid.equals(record) ? bytes.map((b, i) => (i === 10 ? b ^ 1 : b)) : bytes;
      },
    };
    const path = join(dir.path, 'tampered.json');
    await expect(writeNetlockFileOf(path, fixture.root, verifyingSource(tampered))).rejects.toThrow(/hash|CID|match/i);
    expect((await readdir(dir.path)).filter((f) => f.startsWith('tampered'))).toEqual([]);
  });
});
