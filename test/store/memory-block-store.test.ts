import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { describe, expect, it } from 'vitest';
import { RAW_CODE } from '../../src/protocol/blocks.ts';
import { MemoryBlockStore } from '../../src/store/memory-block-store.ts';

describe('MemoryBlockStore', () => {
  it('stores and returns blocks, and reports a missing one', async () => {
    const bytes = new TextEncoder().encode('a');
    const cid = CID.createV1(RAW_CODE, await sha256.digest(bytes));
    const store = new MemoryBlockStore();
    expect(await store.has(cid)).toBe(false);
    await store.put(cid, bytes);
    expect(await store.has(cid)).toBe(true);
    expect(await store.get(cid)).toBe(bytes);
    expect(store.cids()).toEqual([cid.toString()]);
    await expect(new MemoryBlockStore().get(cid)).rejects.toMatchObject({ code: 'ORACLE_ERR_BLOCK_MISSING' });
  });

  it('rejects (never throws) with an already-aborted signal', async () => {
    const bytes = new TextEncoder().encode('a');
    const cid = CID.createV1(RAW_CODE, await sha256.digest(bytes));
    const store = new MemoryBlockStore();
    const options = { signal: AbortSignal.abort() };
    const calls = [(): Promise<unknown> => store.put(cid, bytes, options), (): Promise<unknown> => store.get(cid, options), (): Promise<unknown> => store.has(cid, options)];
    for (const call of calls) {
      let promise: Promise<unknown> | undefined;
      expect(() => (promise = call())).not.toThrow();
      await expect(promise).rejects.toMatchObject({ code: 'ORACLE_ERR_ABORTED' });
    }
    expect(store.size).toBe(0);
  });
});
