import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CID } from 'multiformats/cid';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SignedRecord } from '../../src/protocol/signature.ts';
import { FsRecordIndex } from '../../src/records/fs-record-index.ts';
import { KeyOffsets, sha256KeyDigest, urlOfKey } from '../../src/records/key-offsets.ts';
import type { KeyDigest } from '../../src/records/key-offsets.ts';
import { toLine } from '../../src/records/record-log.ts';
import { tempDir } from '../helpers/run.ts';

const CID_TEXT = 'bafyreidqz2dr7cr5h62etpb4hlhgkr6o6aw7y5h74sgzcjjsu4sl7w7fxe';
const signedBy = (fill: number): SignedRecord => ({ record: CID.parse(CID_TEXT), signature: new Uint8Array(64).fill(fill) });
const keyOf = (i: number, method = 'GET'): string => `https://example.test/pkg/${i}\n${method}`;
/** Every key gets the same digest: what two keys sharing a slot would do. */
const colliding: KeyDigest = () => [1, 1];

describe('KeyOffsets', () => {
  it('files 100,000 keys in 16-byte slots, growing as it fills, the last offset per key winning', () => {
    const table = new KeyOffsets();
    for (let i = 0; i < 100_000; i++) table.set(keyOf(i), i * 10);
    for (let i = 0; i < 100_000; i += 7) table.set(keyOf(i), i * 10 + 1);
    expect(table.size).toBe(100_000);
    const wrong: number[] = [];
    for (let i = 0; i < 100_000; i++) if (table.get(keyOf(i)) !== (i % 7 === 0 ? i * 10 + 1 : i * 10)) wrong.push(i);
    expect(wrong).toEqual([]);
    expect(table.get(keyOf(100_000))).toBeUndefined();
    expect(table.get(keyOf(1, 'HEAD'))).toBeUndefined();
    // 2^18 slots of 16 bytes: 4 MiB, where a Map of the keys held ~30 MB.
    expect(table.byteLength).toBe(2 ** 18 * 16);
  });

  it('finds where the keys of one URL are, and tells its keys from the others', () => {
    const table = new KeyOffsets();
    table.set(keyOf(1), 100);
    table.set(keyOf(1, 'HEAD'), 200);
    table.set(keyOf(2), 300);
    table.set(`${keyOf(1)}\naccept=text/html`, 400);
    const found = table.candidatesForUrl('https://example.test/pkg/1');
    expect(found.map((c) => c.offset).sort()).toEqual([100, 200, 400]);
    const at = (offset: number) => found.find((c) => c.offset === offset)!;
    expect(at(200).isKey(keyOf(1, 'HEAD'))).toBe(true);
    expect(at(200).isKey(keyOf(1))).toBe(false);
    expect(at(100).isKey(keyOf(2))).toBe(false);
    expect(table.candidatesForUrl('https://example.test/pkg/3')).toEqual([]);
  });

  it('gives two keys of one digest one slot: an offset is a place to look, not an answer', () => {
    const table = new KeyOffsets(colliding);
    table.set(keyOf(1), 10);
    table.set(keyOf(2), 20);
    expect(table.size).toBe(1);
    expect(table.get(keyOf(1))).toBe(20);
  });

  it('digests the URL and the whole key with SHA-256', () => {
    expect(urlOfKey(keyOf(5, 'POST'))).toBe('https://example.test/pkg/5');
    expect(urlOfKey('no-newline')).toBe('no-newline');
    const [u1, k1] = sha256KeyDigest('https://example.test/pkg/1', keyOf(1));
    const [u2, k2] = sha256KeyDigest('https://example.test/pkg/1', keyOf(1, 'HEAD'));
    expect(u1).toBe(u2);
    expect(k1).not.toBe(k2);
    // sha256("abc") starts ba7816bf.
    expect(sha256KeyDigest('abc', 'abc')).toEqual([0xba7816bf, 0xba7816bf]);
  });
});

describe('FsRecordIndex over key digests', () => {
  let dir: { path: string; remove(): Promise<void> };
  beforeEach(async () => {
    dir = await tempDir('fo-key-offsets-');
  });
  afterEach(async () => {
    await dir.remove();
  });

  it('answers two keys that share a digest only with their own lines: the older one is recorded again', async () => {
    const index = await FsRecordIndex.open(dir.path, undefined, { keyDigest: colliding });
    await index.put(keyOf(1), signedBy(1));
    await index.put(keyOf(2), signedBy(2));
    expect(index.get(keyOf(2))?.signature).toEqual(new Uint8Array(64).fill(2));
    expect(index.get(keyOf(1))).toBeUndefined();
    expect(index.keysForUrl('https://example.test/pkg/1')).toEqual([]);
    expect(index.keysForUrl('https://example.test/pkg/2')).toEqual([keyOf(2)]);
    // Recorded again, it is found again (and the other key then is not).
    await index.put(keyOf(1), signedBy(3));
    expect(index.get(keyOf(1))?.signature).toEqual(new Uint8Array(64).fill(3));
    expect(index.get(keyOf(2))).toBeUndefined();
    await index.close();
  });

  it('reopens 2,000 records with every key and each URL\'s variants listed', async () => {
    const lines: string[] = [];
    for (let i = 0; i < 1000; i++) lines.push(toLine(keyOf(i), signedBy(i % 200)), toLine(keyOf(i, 'HEAD'), signedBy((i + 1) % 200)));
    await writeFile(join(dir.path, 'records.jsonl'), lines.join(''));
    const index = await FsRecordIndex.open(dir.path);
    expect(index.size).toBe(2000);
    const wrong: number[] = [];
    for (let i = 0; i < 1000; i++) {
      if (index.get(keyOf(i))?.signature[0] !== i % 200 || index.get(keyOf(i, 'HEAD'))?.signature[0] !== (i + 1) % 200) wrong.push(i);
    }
    expect(wrong).toEqual([]);
    expect(index.keysForUrl('https://example.test/pkg/17')).toEqual([keyOf(17), keyOf(17, 'HEAD')].sort());
    expect(index.keysForUrl('https://example.test/pkg/1')).toEqual([keyOf(1), keyOf(1, 'HEAD')].sort());
    await index.close();
  });
});
