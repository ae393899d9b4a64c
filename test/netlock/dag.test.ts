import { describe, expect, it } from 'vitest';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { mapSource, verifyingSource } from '../../src/protocol/blocks.ts';
import { buildNetlock, MAX_PAGE_ENTRIES, NetlockReader } from '../../src/netlock/dag.ts';
import type { NetlockEntry } from '../../src/netlock/dag.ts';
import { MemoryBlockStore } from '../../src/store/memory-block-store.ts';

async function fakeEntries(n: number): Promise<NetlockEntry[]> {
  const out: NetlockEntry[] = [];
  for (let i = 0; i < n; i++) {
    const cid = CID.createV1(0x71, await sha256.digest(new TextEncoder().encode(`r${i}`)));
    out.push({ key: `https://h.example/pkg/${String(i).padStart(6, '0')}\nGET\naccept=\nbody=`, signed: { record: cid, signature: new Uint8Array(64).fill(i % 256) } });
  }
  return out;
}

describe('buildNetlock / NetlockReader', () => {
  it('gives the same root for the same entries in any order', async () => {
    const entries = await fakeEntries(50);
    const a = await buildNetlock(entries, [new Uint8Array(32)], new MemoryBlockStore());
    const b = await buildNetlock([...entries].reverse(), [new Uint8Array(32)], new MemoryBlockStore());
    expect(a.root.toString()).toBe(b.root.toString());
  });

  it('finds every key of a multi-level index and lists nearby keys on a miss', async () => {
    const n = MAX_PAGE_ENTRIES * MAX_PAGE_ENTRIES + 7; // three levels
    const entries = await fakeEntries(n);
    const store = new MemoryBlockStore();
    const built = await buildNetlock(entries, [], store);
    let fetches = 0;
    const counting = { get: (cid: CID) => (fetches++, store.get(cid)) };
    const reader = new NetlockReader(built.root, verifyingSource(counting));
    for (const i of [0, 1, 255, 256, 40_000, n - 1]) {
      fetches = 0;
      const { entry } = await reader.lookup(entries[i]!.key);
      expect(entry?.signed.record.toString()).toBe(entries[i]!.signed.record.toString());
      expect(fetches).toBeLessThanOrEqual(4 + 1); // root (cached after the first) + one page per level
    }
    const miss = await reader.lookup('https://h.example/pkg/000100x\nGET\naccept=\nbody=');
    expect(miss.entry).toBeUndefined();
    expect(miss.nearby).toContain(entries[100]!.key);
    let count = 0;
    for await (const _ of reader.entries()) count++;
    expect(count).toBe(n);
  }, 60_000);

  it('rejects duplicate keys and a tampered page', async () => {
    const entries = await fakeEntries(3);
    await expect(buildNetlock([...entries, entries[0]!], [], new MemoryBlockStore())).rejects.toThrow(/Duplicate netlock key/);
    const store = new MemoryBlockStore();
    const built = await buildNetlock(entries, [], store);
    const blocks = new Map<string, Uint8Array>();
    for (const c of store.cids()) blocks.set(c, await store.get(CID.parse(c)));
    const page = blocks.get(built.rootValue.index.toString())!;
    const tampered = page.slice();
    tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 1;
    blocks.set(built.rootValue.index.toString(), tampered);
    const reader = new NetlockReader(built.root, verifyingSource(mapSource(blocks)));
    await expect(reader.lookup(entries[0]!.key)).rejects.toMatchObject({ code: 'ORACLE_ERR_BLOCK_CORRUPT' });
  });
});
