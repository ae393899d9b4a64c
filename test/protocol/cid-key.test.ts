import { CID } from 'multiformats/cid';
import * as raw from 'multiformats/codecs/raw';
import { sha256 } from 'multiformats/hashes/sha2';
import { describe, expect, it } from 'vitest';
import { cidsOf } from '../helpers/blocks.ts';
import { cidFromKey, cidKey } from '../../src/protocol/cid-key.ts';
import { collectGarbage } from '../helpers/gc.ts';

const DAG_CBOR = 0x71;

describe('cidKey', () => {
  it('is equal for equal CIDs and distinct for distinct ones, across versions and codecs', async () => {
    const cids = await cidsOf(300);
    const keys = new Set(cids.map(cidKey));
    expect(keys.size).toBe(300);
    for (const c of cids) expect(cidKey(CID.decode(c.bytes))).toBe(cidKey(c));
    // The same digest under another codec or version is another CID, so another key.
    const d = await sha256.digest(new TextEncoder().encode('one body'));
    expect(new Set([cidKey(CID.createV0(d)), cidKey(CID.createV1(DAG_CBOR, d)), cidKey(CID.createV1(raw.code, d))]).size).toBe(3);
  });

  it('turns back into the CID it was made from (cidFromKey)', async () => {
    for (const c of await cidsOf(30)) {
      const back = cidFromKey(cidKey(c));
      expect(back.equals(c)).toBe(true);
      expect(back.toString()).toBe(c.toString());
    }
  });

  it('costs tens of bytes a key kept in a Set, where the CID string costs over a kilobyte', async () => {
    const cids = await cidsOf(20_000);
    const perKey = (key: (c: CID) => string): number => {
      collectGarbage();
      const before = process.memoryUsage().heapUsed;
      const kept = new Set(cids.map(key));
      collectGarbage();
      const bytes = (process.memoryUsage().heapUsed - before) / kept.size;
      kept.clear();
      return bytes;
    };
    const flat = perKey(cidKey);
    const text = perKey((c) => c.toString());
    expect(flat).toBeLessThan(150);
    expect(text).toBeGreaterThan(4 * flat); // what the key replaces, measured the same way
  });
});
