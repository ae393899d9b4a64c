import { createHash } from 'node:crypto';
import { CID } from 'multiformats/cid';
import * as Digest from 'multiformats/hashes/digest';
import { sha256 } from 'multiformats/hashes/sha2';
import { describe, expect, it } from 'vitest';
import { BlockCorruptError } from '../../src/errors.ts';
import { RAW_CODE, verifyBlock, verifyBlockSync } from '../../src/protocol/blocks.ts';

const SHA2_256 = 0x12;

describe('verifyBlockSync', () => {
  it('accepts a block whose SHA-256 is its CID digest, of every size and every byte value', async () => {
    for (const size of [0, 1, 31, 32, 4096, 65_537]) {
      const bytes = new Uint8Array(size).map((_, i) => (i * 131 + size) & 0xff);
      const cid = CID.createV1(RAW_CODE, await sha256.digest(bytes));
      expect(() => verifyBlockSync(cid, bytes)).not.toThrow();
      await expect(verifyBlock(cid, bytes)).resolves.toBeUndefined();
    }
  });

  it('refuses a block with any one byte changed, and a digest that differs in its first, last or any bit', async () => {
    const bytes = new Uint8Array(4096).map((_, i) => i & 0xff);
    const cid = CID.createV1(RAW_CODE, await sha256.digest(bytes));
    for (const at of [0, 1, 2047, 4095]) {
      const tampered = bytes.slice();
      tampered[at]! ^= 0x80;
      expect(() => verifyBlockSync(cid, tampered)).toThrow(BlockCorruptError);
    }
    const digest = createHash('sha256').update(bytes).digest();
    for (const [at, bit] of [[0, 1], [31, 0x80], [16, 0x40]] as const) {
      const wrong = Buffer.from(digest);
      wrong[at]! ^= bit;
      expect(() => verifyBlockSync(CID.createV1(RAW_CODE, Digest.create(SHA2_256, wrong)), bytes)).toThrow(BlockCorruptError);
    }
    await expect(verifyBlock(CID.createV1(RAW_CODE, Digest.create(SHA2_256, digest.subarray(0, 31))), bytes)).rejects.toThrow(BlockCorruptError);
  });
});
