/**
 * `gc` numbers the store's blocks (`StoredBlocks`, issue #15) instead of keeping an object per block: what it
 * keeps and removes must not change. Block files under another name than the store's, a block both packed and
 * in a file, and a netlock kept with `--keep` whose blocks are spread over both.
 */
import { copyFile, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base58btc } from 'multiformats/bases/base58';
import { CID } from 'multiformats/cid';
import * as raw from 'multiformats/codecs/raw';
import { sha256 } from 'multiformats/hashes/sha2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { renderNetlockFile } from '../../src/netlock/file.ts';
import { verifyNetlockPath } from '../../src/netlock/verify-file.ts';
import { CHUNK_BYTES, importBody } from '../../src/protocol/unixfs.ts';
import { FsBlockStore } from '../../src/store/fs-block-store.ts';
import { collectGarbage } from '../../src/store/gc.ts';
import { countBlocks } from '../helpers/blocks.ts';
import { buildFixtureNetlock, pseudoRandomBytes } from '../netlock/netlock-fixture.ts';

describe('gc over numbered blocks', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fo-gc-blocks-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('removes an unneeded block under every name it has, counts it once, and keeps what a netlock needs', async () => {
    const data = join(dir, 'data');
    // Small blocks packed, large ones as files: a netlock whose blocks are in both.
    const store = new FsBlockStore(data);
    const kept = await buildFixtureNetlock(
      [
        { url: 'https://files.example/big.tgz', bodyBytes: 2 * 1024 * 1024 + 3 },
        { url: 'https://files.example/small.json', bodyBytes: 300 },
      ],
      store,
    );
    const keptPath = join(dir, 'kept.netlock.json');
    await writeFile(keptPath, renderNetlockFile(kept.file));
    // Garbage: a body of a 1 MiB leaf (a file), a 100-byte leaf and its root (packed); a small packed body.
    const pieces: Uint8Array[] = [];
    for await (const piece of pseudoRandomBytes('orphan', CHUNK_BYTES + 100)) pieces.push(piece);
    const orphanBytes = Buffer.concat(pieces);
    const orphan = await importBody([orphanBytes], store);
    const small = await importBody([new Uint8Array([7, 7, 7])], store);
    const orphanRoot = (await store.get(orphan.cid)).byteLength;
    await store.close();
    // The 1 MiB leaf's file copied under its base58 name, beside the base32 one the store reads.
    const leaf = CID.createV1(raw.code, await sha256.digest(orphanBytes.subarray(0, CHUNK_BYTES)));
    const files = new FsBlockStore(data);
    const otherName = join(files.pathOf(leaf), '..', leaf.toString(base58btc));
    await copyFile(files.pathOf(leaf), otherName);
    const blocksBefore = await countBlocks(data);

    const dry = await collectGarbage({ dataDir: data, keep: [keptPath], dryRun: true, minAgeMs: 0 });
    expect(await countBlocks(data)).toBe(blocksBefore);
    const report = await collectGarbage({ dataDir: data, keep: [keptPath], minAgeMs: 0 });
    expect(report.removed).toEqual(dry.removed);
    expect(report.live).toEqual(dry.live);
    expect(report.missing).toBe(0);
    // The orphan's root and two leaves, and the small body; the leaf with two names counts once.
    expect(report.removed).toEqual({ count: 4, bytes: orphanRoot + CHUNK_BYTES + 100 + 3 });
    await expect(stat(otherName)).rejects.toThrow(/ENOENT/);
    await expect(stat(files.pathOf(leaf))).rejects.toThrow(/ENOENT/);
    expect(await countBlocks(data)).toBe(blocksBefore - 5); // two files of the leaf, three packed entries
    const after = new FsBlockStore(data);
    expect(await after.has(small.cid)).toBe(false);
    expect((await verifyNetlockPath(keptPath, after, undefined)).failures).toEqual([]);
    await after.close();
  });
});
