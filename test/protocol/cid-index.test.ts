import { CID } from 'multiformats/cid';
import * as raw from 'multiformats/codecs/raw';
import { create as createDigest } from 'multiformats/hashes/digest';
import { identity } from 'multiformats/hashes/identity';
import { sha256 } from 'multiformats/hashes/sha2';
import { describe, expect, it } from 'vitest';
import { cidsOf } from '../helpers/blocks.ts';
import { CidIndex } from '../../src/protocol/cid-index.ts';

const DAG_CBOR = 0x71;
const SHA2_256 = 0x12;

describe('CidIndex', () => {
  it('numbers CIDs in the order added, finds each by its bytes, and gives each back', async () => {
    const cids = await cidsOf(5000);
    const index = new CidIndex();
    cids.forEach((cid, i) => expect(index.add(cid)).toBe(i));
    expect(index.size).toBe(5000);
    for (const [i, cid] of cids.entries()) {
      expect(index.idOf(CID.decode(cid.bytes))).toBe(i);
      expect(index.add(CID.decode(cid.bytes))).toBe(i); // known: not added again
      expect(index.cidOf(i).equals(cid)).toBe(true);
    }
    expect(index.size).toBe(5000);
    expect(index.idOf(CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode('never added'))))).toBe(-1);
    // The same digest under another codec or version is another CID.
    const d = await sha256.digest(new TextEncoder().encode('block 1'));
    expect(index.idOf(CID.createV1(DAG_CBOR, d))).toBe(-1);
    expect(index.idOf(CID.createV0(d))).toBe(-1);
    expect([index.byteOf(1, 0), index.byteOf(1, 1), index.byteOf(2, 1)]).toEqual([1, raw.code, DAG_CBOR]);
  });

  it('keeps CIDs apart whose digests end alike, and identity CIDs (chosen content) of every length', () => {
    const index = new CidIndex();
    // 3,000 digests sharing their last four bytes: one probe chain, told apart by the whole CID.
    const alike = Array.from({ length: 3000 }, (_, i) => {
      const bytes = new Uint8Array(32).fill(0xab);
      bytes[0] = i & 0xff;
      bytes[1] = i >> 8;
      return CID.createV1(raw.code, createDigest(SHA2_256, bytes));
    });
    const inline = Array.from({ length: 300 }, (_, i) => CID.createV1(raw.code, identity.digest(new Uint8Array(i % 40).fill(i & 0xff))));
    const distinct = [...alike, ...new Map(inline.map((c) => [c.toString(), c])).values()];
    for (const cid of distinct) index.add(cid);
    expect(index.size).toBe(distinct.length);
    for (const [i, cid] of distinct.entries()) expect(index.idOf(cid)).toBe(i);
  });

  it('grows columns with its ids, keeping what they held', async () => {
    const index = new CidIndex();
    let column = new Float64Array(0);
    const cids = await cidsOf(3000);
    for (const [i, cid] of cids.entries()) {
      const id = index.add(cid);
      column = index.fit(column);
      column[id] = i * 1.5;
    }
    expect(column.length).toBeGreaterThanOrEqual(3000);
    for (let i = 0; i < 3000; i++) expect(column[i]).toBe(i * 1.5);
    expect(index.fit(column)).toBe(column); // large enough: the same array
  });

  it('holds 100,000 CIDs of SHA-256 in under 100 bytes each', () => {
    const index = new CidIndex();
    const digest = new Uint8Array(32);
    for (let i = 0; i < 100_000; i++) {
      new DataView(digest.buffer).setUint32(0, i);
      new DataView(digest.buffer).setUint32(28, Math.imul(i, 2654435761) >>> 0);
      index.add(CID.createV1(DAG_CBOR, createDigest(SHA2_256, digest.slice())));
    }
    expect(index.size).toBe(100_000);
    expect(index.byteLength / index.size).toBeLessThan(100);
  });
});
