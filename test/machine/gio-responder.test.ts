import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CID } from 'multiformats/cid';
import { identity } from 'multiformats/hashes/identity';
import { sha256 } from 'multiformats/hashes/sha2';
import { DeviceError, OracleError, StoreError } from '../../src/errors.ts';
import { parseJsonBigInt, stringifyJsonBigInt } from '../../src/machine/bigint-json.ts';
import { answerGio, CMIO_BUFFER_BYTES, decodeBinaryCid, GIO_DOMAIN_IPFS_BLOCK, GIO_RESPONSE_ERROR, GIO_RESPONSE_OK, gioErrorResponse } from '../../src/machine/gio-responder.ts';
import { fromhostResponseWord, isGioRequest, packHtifWord, unpackHtifWord } from '../../src/machine/htif.ts';
import { importBody } from '../../src/protocol/unixfs.ts';
import { MemoryBlockStore } from '../../src/store/memory-block-store.ts';

async function rawCid(bytes: Uint8Array): Promise<CID> {
  return CID.createV1(0x55, await sha256.digest(bytes));
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(OracleError);
    return (err as OracleError).code;
  }
  throw new Error('expected a rejection');
}

describe('answerGio', () => {
  it('answers domain 0x25 with the block for a binary CID, with a non-zero response code', async () => {
    const store = new MemoryBlockStore();
    const body = randomBytes(3 * 1024 * 1024);
    const { cid } = await importBody([body], store);
    expect(store.size).toBeGreaterThan(3);
    for (const text of store.cids()) {
      const c = CID.parse(text);
      const res = await answerGio(0x25, c.bytes, store);
      expect(res.code).toBe(GIO_RESPONSE_OK);
      expect(res.code).not.toBe(0); // emulator 0.21 rejects 0 for a GIO answer
      expect(Buffer.from(res.data).equals(Buffer.from(await store.get(c)))).toBe(true);
    }
    // The root is a dag-pb node, answered as raw bytes like any other block.
    expect(cid.code).toBe(0x70);
  });

  it('answers a CIDv0 id (bare sha2-256 multihash) the way the source keys it', async () => {
    const bytes = randomBytes(100);
    const v0 = CID.createV0(await sha256.digest(bytes));
    const source = { get: (c: CID) => (c.toString() === v0.toString() ? Promise.resolve(new Uint8Array(bytes)) : Promise.reject(new Error('nope'))) };
    expect(v0.bytes.byteLength).toBe(34);
    const res = await answerGio(GIO_DOMAIN_IPFS_BLOCK, v0.bytes, source);
    expect(Buffer.from(res.data).equals(bytes)).toBe(true);
  });

  it('checks the stored block against the CID: a tampered block is an error, not an answer', async () => {
    const store = new MemoryBlockStore();
    const good = randomBytes(1000);
    const cid = await rawCid(good);
    const tampered = Buffer.from(good);
    tampered[500] = tampered[500]! ^ 1;
    await store.put(cid, tampered);
    expect(await codeOf(answerGio(0x25, cid.bytes, store))).toBe('ORACLE_ERR_BLOCK_CORRUPT');
    await store.put(cid, good);
    expect((await answerGio(0x25, cid.bytes, store)).data.byteLength).toBe(1000);
  });

  it('refuses unknown domains, naming the domain', async () => {
    const store = new MemoryBlockStore();
    const cid = await rawCid(new Uint8Array([1]));
    await store.put(cid, new Uint8Array([1]));
    for (const domain of [0x2a, 0x20, 0x24, 1]) {
      const err = await answerGio(domain, cid.bytes, store).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DeviceError);
      expect((err as OracleError).code).toBe('ORACLE_ERR_DEVICE');
      expect((err as Error).message).toContain(`0x${domain.toString(16)}`);
    }
    expect(await codeOf(answerGio(0x10000, cid.bytes, store))).toBe('ORACLE_ERR_DEVICE');
    expect(await codeOf(answerGio(-1, cid.bytes, store))).toBe('ORACLE_ERR_DEVICE');
  });

  it('refuses malformed CIDs: empty, garbage, truncated, trailing bytes, the CID as text, a non-sha2-256 hash', async () => {
    const store = new MemoryBlockStore();
    const cid = await rawCid(new Uint8Array([7]));
    await store.put(cid, new Uint8Array([7]));
    const bad: Uint8Array[] = [
      new Uint8Array(0),
      new Uint8Array([0xff, 0xff, 0xff, 0xff]),
      cid.bytes.subarray(0, cid.bytes.byteLength - 1),
      new Uint8Array([...cid.bytes, 0]),
      new TextEncoder().encode(cid.toString()),
      CID.createV1(0x55, identity.digest(new Uint8Array([7]))).bytes,
    ];
    for (const id of bad) expect(await codeOf(answerGio(0x25, id, store))).toBe('ORACLE_ERR_DEVICE');
    expect(() => decodeBinaryCid(new Uint8Array([1, 2, 3]))).toThrow(/Malformed CID/);
  });

  it('reports a missing block as ORACLE_ERR_BLOCK_MISSING and a failing source as ORACLE_ERR_STORE', async () => {
    const cid = await rawCid(new Uint8Array([9]));
    expect(await codeOf(answerGio(0x25, cid.bytes, new MemoryBlockStore()))).toBe('ORACLE_ERR_BLOCK_MISSING');
    const broken = { get: () => Promise.reject(new Error('disk on fire')) };
    const err = await answerGio(0x25, cid.bytes, broken).catch((e: unknown) => e);
    expect((err as OracleError).code).toBe('ORACLE_ERR_STORE');
    expect((err as Error).message).toContain('disk on fire');
  });

  it('serves a block of exactly 2 MiB and refuses one byte more (one device reply)', async () => {
    const store = new MemoryBlockStore();
    const max = randomBytes(CMIO_BUFFER_BYTES);
    const maxCid = await rawCid(max);
    await store.put(maxCid, max);
    expect((await answerGio(0x25, maxCid.bytes, store)).data.byteLength).toBe(2 * 1024 * 1024);
    const over = randomBytes(CMIO_BUFFER_BYTES + 1);
    const overCid = await rawCid(over);
    await store.put(overCid, over);
    const err = await answerGio(0x25, overCid.bytes, store).catch((e: unknown) => e);
    expect((err as OracleError).code).toBe('ORACLE_ERR_STORE');
    expect((err as Error).message).toContain(String(CMIO_BUFFER_BYTES + 1));
  });

  it('honours an already-aborted signal', async () => {
    const store = new MemoryBlockStore();
    const cid = await rawCid(new Uint8Array([1]));
    await store.put(cid, new Uint8Array([1]));
    expect(await codeOf(answerGio(0x25, cid.bytes, store, { signal: AbortSignal.abort() }))).toBe('ORACLE_ERR_ABORTED');
  });
});

describe('gioErrorResponse', () => {
  it('answers code 0xFFFF with the error code and message in UTF-8', () => {
    const res = gioErrorResponse(new DeviceError('Unknown GIO domain 0x2a'));
    expect(res.code).toBe(GIO_RESPONSE_ERROR);
    expect(res.code).toBe(0xffff);
    expect(new TextDecoder().decode(res.data)).toBe('ORACLE_ERR_DEVICE: Unknown GIO domain 0x2a');
    expect(new TextDecoder().decode(gioErrorResponse(new StoreError('disk on fire')).data)).toBe('ORACLE_ERR_STORE: disk on fire');
    // Anything else is a bug of this host, not a store failure.
    expect(new TextDecoder().decode(gioErrorResponse(new TypeError('oops')).data)).toBe('ORACLE_ERR_INTERNAL: oops');
  });
});

describe('htif words', () => {
  it('packs a GIO yield as cartesi-gio.md §2.2 shows (domain 0x25, 36-byte id → 0x0201002500000024)', () => {
    const word = packHtifWord({ dev: 2, cmd: 1, reason: 0x25, data: 36 });
    expect(word).toBe(0x0201002500000024n);
    expect(word > BigInt(Number.MAX_SAFE_INTEGER)).toBe(true);
    expect(unpackHtifWord(word)).toEqual({ dev: 2, cmd: 1, reason: 0x25, data: 36 });
    expect(fromhostResponseWord(1, 2 * 1024 * 1024)).toBe(0x0000000100200000n);
    expect(isGioRequest(1, 0x25)).toBe(true);
    expect([1, 2, 4].some((r) => isGioRequest(1, r))).toBe(false);
    expect(isGioRequest(0, 0x25)).toBe(false);
  });
});

describe('parseJsonBigInt / stringifyJsonBigInt', () => {
  it('keeps uint64 values exact both ways and agrees with JSON.parse elsewhere', () => {
    const text = '{"mcycle":18446744073709551615,"tohost":144396821966356516,"small":42,"neg":-9007199254740993,"f":1.5e3,"s":"a\\"\\u00e9","a":[true,false,null,[]],"o":{}}';
    const v = parseJsonBigInt(text) as Record<string, unknown>;
    expect(v['mcycle']).toBe(18446744073709551615n);
    expect(v['tohost']).toBe(0x0201002500000024n);
    expect(v['neg']).toBe(-9007199254740993n);
    expect(v['small']).toBe(42);
    expect({ ...v, mcycle: 0, tohost: 0, neg: 0 }).toEqual({ ...(JSON.parse(text) as object), mcycle: 0, tohost: 0, neg: 0 });
    expect(stringifyJsonBigInt(v)).toBe(text.replace('1.5e3', '1500').replace('\\u00e9', 'é'));
    expect(stringifyJsonBigInt({ mcycle_end: 2n ** 64n - 1n, skip: undefined })).toBe('{"mcycle_end":18446744073709551615}');
  });

  it('rejects malformed JSON', () => {
    for (const bad of ['', '{', '[1,]', '{"a":1}x', '01', '"\u0001"', 'nul', '{"a" 1}']) {
      expect(() => parseJsonBigInt(bad), bad).toThrow(SyntaxError);
    }
  });
});
