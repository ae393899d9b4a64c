import { CID } from 'multiformats/cid';
import * as raw from 'multiformats/codecs/raw';
import { identity } from 'multiformats/hashes/identity';
import { sha256 } from 'multiformats/hashes/sha2';
import { describe, expect, it } from 'vitest';
import { cidsOf } from '../helpers/blocks.ts';
import { cidText } from '../../src/protocol/blocks.ts';

describe('cidText', () => {
  it('is what toString gives, for CIDv0 and CIDv1 of every codec here and of every length mod 5 bytes', async () => {
    const cids = [...(await cidsOf(300)), CID.createV0(await sha256.digest(new Uint8Array(3)))];
    // Identity digests of 0-40 bytes: every count of bits left over at the end of the base32 string.
    for (let n = 0; n <= 40; n++) cids.push(CID.createV1(raw.code, identity.digest(Uint8Array.from({ length: n }, (_, i) => (i * 151 + n) & 0xff))));
    for (const c of cids) expect(cidText(c)).toBe(CID.decode(c.bytes).toString());
  });
});
