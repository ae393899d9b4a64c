import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { CID } from 'multiformats/cid';
import type { BlockSource } from '../../src/protocol/blocks.ts';
import type { BodyPart, ResponsePlan } from '../../src/protocol/replay.ts';
import { importBody } from '../../src/protocol/unixfs.ts';
import { planBody } from '../../src/proxy/exchange.ts';
import { MemoryBlockStore } from '../../src/store/memory-block-store.ts';

async function bytesOf(body: AsyncIterable<Uint8Array> | null): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of body ?? []) out.push(Buffer.from(c));
  return Buffer.concat(out);
}

const plan = (cid: CID, parts: BodyPart[], decode?: ResponsePlan['decode']): ResponsePlan => ({ status: 200, headers: [], body: { cid, parts }, ...(decode === undefined ? {} : { decode }) });

/** A source that counts its reads, optionally answering with other bytes than the block's. */
function counting(store: MemoryBlockStore, tamper = false): { source: BlockSource; reads: () => number } {
  let reads = 0;
  const source: BlockSource = {
    get: async (cid) => {
      reads++;
      const block = await store.get(cid);
      return tamper ? Uint8Array.from(block, (b, i) => (i === 0 ? b ^ 1 : b)) : block;
    },
  };
  return { source, reads: () => reads };
}

describe('planBody over a one-block body', () => {
  it('sends its text and byte-range parts in order, reading the block once and only when first asked', async () => {
    const store = new MemoryBlockStore();
    const data = randomBytes(5000);
    const { cid } = await importBody([data], store);
    const { source, reads } = counting(store);
    const body = planBody(plan(cid, [{ text: '--b\r\n' }, { offset: 10, length: 100 }, { text: '\r\n--b\r\n' }, { offset: 4000, length: 1000 }]), source);
    expect(reads()).toBe(0);
    const sent = await bytesOf(body);
    expect(sent.equals(Buffer.concat([Buffer.from('--b\r\n'), data.subarray(10, 110), Buffer.from('\r\n--b\r\n'), data.subarray(4000)]))).toBe(true);
    expect(reads()).toBe(1);
  });

  it('refuses a block that fails its hash, and a part the block does not hold, as BLOCK_CORRUPT, then is done', async () => {
    const store = new MemoryBlockStore();
    const { cid } = await importBody([randomBytes(100)], store);
    const tampered = planBody(plan(cid, [{ offset: 0, length: 100 }]), counting(store, true).source)!;
    const it = tampered[Symbol.asyncIterator]();
    await expect(it.next()).rejects.toMatchObject({ code: 'ORACLE_ERR_BLOCK_CORRUPT' });
    expect(await it.next()).toEqual({ done: true, value: undefined });
    await expect(bytesOf(planBody(plan(cid, [{ offset: 50, length: 51 }]), store))).rejects.toMatchObject({ code: 'ORACLE_ERR_BLOCK_CORRUPT' });
  });

  it('is done once its reader stops early, and undoes a content coding', async () => {
    const store = new MemoryBlockStore();
    const text = 'hello, recorded world\n'.repeat(50);
    const gz = gzipSync(text);
    const { cid } = await importBody([gz], store);
    const it = planBody(plan(cid, [{ offset: 0, length: 3 }, { offset: 3, length: gz.byteLength - 3 }]), store)![Symbol.asyncIterator]();
    expect(Buffer.from((await it.next()).value as Uint8Array).equals(gz.subarray(0, 3))).toBe(true);
    await it.return!();
    expect(await it.next()).toEqual({ done: true, value: undefined });
    expect((await bytesOf(planBody(plan(cid, [{ offset: 0, length: gz.byteLength }], 'gzip'), store))).toString()).toBe(text);
  });
});
