/**
 * Design §2 without a daemon: importBody (IPIP-499 `unixfs-v1-2025`) into a memory store gives, for each body of
 * test/fixtures/kubo-cids.json, the root CID and the block set a real Kubo gave (written by
 * test/fixtures/kubo-cids.generate.ts; test/interop/kubo-cid.test.ts compares with a live Kubo). This includes
 * the multi-level tree: 1 GiB + 1 B is 1025 leaves, one more than a node's 1024 links, so root → 2 nodes → leaves.
 * FETCH_ORACLE_SLOW=1 adds 1025 MiB.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CID } from 'multiformats/cid';
import { DAG_PB_CODE, MAX_BLOCK_BYTES, RAW_CODE } from '../../src/protocol/blocks.ts';
import { CHUNK_BYTES, MAX_LINKS_PER_NODE, importBody, readBody } from '../../src/protocol/unixfs.ts';
import { MemoryBlockStore } from '../../src/store/memory-block-store.ts';
import { KUBO_CID_CASES, caseBytes, loadKuboCids } from '../fixtures/kubo-cids.ts';

const SLOW = process.env['FETCH_ORACLE_SLOW'] === '1';
const MiB = 1024 * 1024;
const fixture = loadKuboCids();

async function sha256Of(bytes: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<string> {
  const h = createHash('sha256');
  for await (const piece of bytes) h.update(piece);
  return h.digest('hex');
}

/** Levels of a balanced tree over `length` bytes: 1 for one raw block, 2 for root → leaves, 3 with a middle level. */
function levels(length: number): number {
  let n = Math.max(1, Math.ceil(length / CHUNK_BYTES));
  let depth = 1;
  while (n > 1) {
    n = Math.ceil(n / MAX_LINKS_PER_NODE);
    depth++;
  }
  return depth;
}

describe('importBody gives the CIDs a real Kubo gave (test/fixtures/kubo-cids.json, no daemon)', () => {
  it('the fixture covers every case of the live comparison, from a Kubo with the unixfs-v1-2025 profile', () => {
    expect(fixture.kubo).toMatch(/^0\.(4\d|[5-9]\d)\.\d+$/); // the profile exists since Kubo 0.40
    expect(fixture.command).toContain('--profile=unixfs-v1-2025');
    expect(fixture.cases.map(({ name, length, content }) => ({ name, length, content }))).toEqual(KUBO_CID_CASES.map(({ name, length, content }) => ({ name, length, content })));
    // Empty, small, exactly 1 MiB, 1 MiB + 1 and a tree with an intermediate level are all there.
    expect(fixture.cases.map((c) => c.length)).toEqual(expect.arrayContaining([0, 1, MiB, MiB + 1, 1024 * MiB + 1]));
    expect(Math.max(...fixture.cases.filter((c) => c.slow !== true).map((c) => levels(c.length)))).toBe(3);
  });

  for (const c of fixture.cases) {
    it.skipIf(c.slow === true && !SLOW)(`${c.name}: root CID ${c.cid}, ${c.blocks} block(s)`, async () => {
      const store = new MemoryBlockStore();
      const ours = await importBody(caseBytes(c), store);
      expect(ours.cid.toString()).toBe(c.cid);
      expect(ours.size).toBe(c.length);
      expect(ours.cid.code).toBe(c.length <= CHUNK_BYTES ? RAW_CODE : DAG_PB_CODE);
      const cids = store.cids().sort();
      expect(cids).toHaveLength(c.blocks);
      expect(createHash('sha256').update(cids.join('\n')).digest('hex')).toBe(c.blockSetSha256);
      for (const cid of cids) expect((await store.get(CID.parse(cid))).byteLength).toBeLessThanOrEqual(MAX_BLOCK_BYTES);
      // The DAG reads back to the same bytes.
      expect(await sha256Of(readBody(ours.cid, store))).toBe(await sha256Of(caseBytes(c)));
    }, 300_000);
  }
});
