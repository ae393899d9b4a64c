/**
 * A replay trusts its own key without loading the signer (`LocalSigner.publicKeyIn`, issue #15: libsodium's load
 * was ~30 ms of a replay's start): the public key it derives must be the signer's, and a missing or corrupt key
 * file still gives none.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { afterEach, describe, expect, it } from 'vitest';
import { publicKeyOfSeed } from '../../src/protocol/signature.ts';
import { KEY_FILE, LocalSigner } from '../../src/signing/local-signer.ts';
import { tempDir } from '../helpers/run.ts';

describe('the public key of an oracle key, without its signer', () => {
  let dir: Awaited<ReturnType<typeof tempDir>> | undefined;
  afterEach(async () => {
    await dir?.remove();
    dir = undefined;
  });

  it('is what tweetnacl derives from the seed, for 300 seeds of every byte value', () => {
    for (let k = 0; k < 300; k++) {
      const seed = new Uint8Array(32).map((_, i) => (k * 37 + i * 11 + (k >> 2)) & 0xff);
      expect(Buffer.from(publicKeyOfSeed(seed))).toEqual(Buffer.from(nacl.sign.keyPair.fromSeed(seed).publicKey));
    }
    expect(() => publicKeyOfSeed(new Uint8Array(31))).toThrow(/32 bytes/);
  });

  it("is the signer's for a key file the signer made, and none for a missing or corrupt file", async () => {
    dir = await tempDir('fo-public-key-in-');
    expect(await LocalSigner.publicKeyIn(dir.path)).toBeUndefined();
    const signer = await LocalSigner.loadOrCreate(dir.path);
    expect(Buffer.from((await LocalSigner.publicKeyIn(dir.path))!)).toEqual(Buffer.from(signer.publicKey));
    await writeFile(join(dir.path, KEY_FILE), '{"seed":"not hex"}\n');
    expect(await LocalSigner.publicKeyIn(dir.path)).toBeUndefined();
  });
});
