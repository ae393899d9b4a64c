/**
 * encodeRecordCbor writes what @ipld/dag-cbor writes for the same record, byte for byte: on thousands of
 * generated records (map keys of equal length in every order, integers at every width boundary, strings of
 * every UTF-8 width with lone surrogates, a value past 65,535 bytes, lists past 23 and 255 items, CIDs of every kind, the optional
 * fields), and it declines records with fields their type does not declare, which encodeRecord then still
 * encodes as before.
 */
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { identity } from 'multiformats/hashes/identity';
import { sha256 } from 'multiformats/hashes/sha2';
import { describe, expect, it } from 'vitest';
import { encodeRecord } from '../../src/protocol/record.ts';
import type { FetchRecord } from '../../src/protocol/record.ts';
import { encodeRecordCbor } from '../../src/protocol/record-cbor.ts';

/** A small seeded generator (mulberry32), so a failure names a record that can be made again. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CHARS = ['a', 'z', 'A', '-', '0', '/', ' ', '\u007f', '\u00e9', '\u00ff', '\u0100', '\u20ac', '\ud83d\ude00', '\ud800', '\udc00', '\u0000'];
const BOUNDARY_INTS = [0, 1, 23, 24, 255, 256, 65_535, 65_536, 4_294_967_295, 4_294_967_296, Number.MAX_SAFE_INTEGER];

function generator(seed: number) {
  const rnd = random(seed);
  const int = (n: number): number => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const text = (max: number): string => Array.from({ length: int(max + 1) }, () => (rnd() < 0.7 ? pick(CHARS.slice(0, 7)) : pick(CHARS))).join('');
  const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => int(256));
  const cid = async (): Promise<CID> => {
    const kind = int(4);
    if (kind === 0) return CID.createV0(await sha256.digest(bytes(int(100))));
    if (kind === 1) return CID.createV1(0x55, identity.digest(bytes(int(40))));
    return CID.createV1(kind === 2 ? 0x70 : 0x71, await sha256.digest(bytes(int(100))));
  };
  const size = (): number => (rnd() < 0.5 ? pick(BOUNDARY_INTS) : int(2 ** 31));
  return async (): Promise<FetchRecord> => {
    const variant: Record<string, string> = {};
    // Keys of one length in random order, so the bytewise tie-break is exercised.
    for (let i = int(6); i > 0; i--) variant[rnd() < 0.5 ? `x-${text(3)}` : text(12)] = text(20);
    const listLength = pick([0, 1, 2, 23, 24, 255, 256, int(40)]);
    const request = { method: pick(['GET', 'HEAD', 'POST', text(8)]), url: `https://example.test/${text(rnd() < 0.2 ? 300 : 40)}`, headers: variant };
    const record: FetchRecord = {
      v: 1,
      request: rnd() < 0.3 ? { ...request, bodyDigest: `sha256-${text(44)}` } : request,
      response: {
        status: 100 + int(900),
        headers: Array.from({ length: listLength }, (_, at) => [text(16), text(at === 0 && rnd() < 0.1 ? 70_000 : 80)] as [string, string]),
        body: rnd() < 0.2 ? null : await cid(),
        size: size(),
        sha256: bytes(32),
        sha512: bytes(64),
      },
      fetchedAt: new Date(int(4e12)).toISOString(),
      oracle: bytes(32),
    };
    return rnd() < 0.3 ? { ...record, attestation: await cid() } : record;
  };
}

describe('encodeRecordCbor', () => {
  it('writes what @ipld/dag-cbor writes, on 3,000 generated records', async () => {
    const next = generator(26);
    for (let i = 0; i < 3_000; i++) {
      const record = await next();
      const ours = encodeRecordCbor(record);
      expect(ours, `record ${i}`).toBeDefined();
      expect(Buffer.from(ours!).equals(dagCbor.encode(record)), `record ${i} differs: ${JSON.stringify(record.request)}`).toBe(true);
      // The strict decoder takes it, and what it reads (a lone surrogate now U+FFFD) encodes to the same bytes.
      expect(Buffer.from(dagCbor.encode(dagCbor.decode(ours!))).equals(ours!)).toBe(true);
    }
  });

  it('encodeRecord gives the same block whichever encoder wrote it', async () => {
    const next = generator(7);
    for (let i = 0; i < 200; i++) {
      const record = await next();
      const block = await encodeRecord(record);
      expect(block.bytes).toEqual(new Uint8Array(dagCbor.encode(record)));
      expect(block.cid.equals(CID.createV1(0x71, await sha256.digest(dagCbor.encode(record))))).toBe(true);
    }
  });

  it('declines a record with a field its type does not declare; encodeRecord then writes the field as before', async () => {
    const record = await generator(3)();
    const extra = { ...record, response: { ...record.response, extra: 'kept' } } as FetchRecord;
    expect(encodeRecordCbor(extra)).toBeUndefined();
    expect(encodeRecordCbor({ ...record, comment: 'x' } as FetchRecord)).toBeUndefined();
    expect(encodeRecordCbor({ ...record, request: { ...record.request, extra: 'x' } } as FetchRecord)).toBeUndefined();
    const block = await encodeRecord(extra);
    expect(dagCbor.decode<{ response: Record<string, unknown> }>(block.bytes).response['extra']).toBe('kept');
  });

  it('an optional field present but undefined is left out, as the generic encoder left it out', async () => {
    const { attestation: _, ...record } = await generator(5)();
    const bare = { ...record, request: { method: record.request.method, url: record.request.url, headers: record.request.headers } };
    const withUndefined = { ...bare, attestation: undefined, request: { ...bare.request, bodyDigest: undefined } } as unknown as FetchRecord;
    expect((await encodeRecord(withUndefined)).bytes).toEqual(new Uint8Array(dagCbor.encode(bare)));
  });
});
