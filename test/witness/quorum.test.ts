import * as dagCbor from '@ipld/dag-cbor';
import { describe, expect, it } from 'vitest';
import type { CID } from 'multiformats/cid';
import nacl from 'tweetnacl';
import { BadCountersignatureError, QuorumNotMetError, RecordsDisagreeError } from '../../src/errors.ts';
import { buildNetlock, NetlockReader } from '../../src/netlock/dag.ts';
import { mapSource } from '../../src/protocol/blocks.ts';
import type { BlockSink } from '../../src/protocol/blocks.ts';
import {
  COUNTERSIGNATURE_PREFIX,
  countersignatureSigningMessage,
  decodeCountersignature,
  encodeCountersignature,
  signCountersignatureCid,
  verifyCountersignatureSignature,
} from '../../src/protocol/countersignature.ts';
import { quorumError, tallyQuorum, witnessVerdict } from '../../src/protocol/quorum.ts';
import { encodeCborBlock } from '../../src/protocol/record.ts';
import { recordSigningMessage, signRecordCid, toHex, verifyRecordSignature } from '../../src/protocol/signature.ts';

const pair = (n: number): nacl.SignKeyPair => nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(n));
const [a, b, c] = [pair(1), pair(2), pair(3)];
const cidOf = async (text: string): Promise<CID> => (await encodeCborBlock({ text })).cid;

describe('countersignature', () => {
  it('is a DAG-CBOR block whose CID is signed under its own domain-separation prefix, never the record prefix', async () => {
    const record = await cidOf('record');
    const block = await encodeCountersignature({ record, witness: b.publicKey, fetchedAt: '2026-12-03T16:00:00.000Z' });
    expect(dagCbor.decode(block.bytes)).toEqual({ v: 1, type: 'fetch-oracle/countersignature', record, witness: b.publicKey, fetchedAt: '2026-12-03T16:00:00.000Z' });
    expect(new TextDecoder().decode(COUNTERSIGNATURE_PREFIX)).toBe('fetch-oracle/countersignature/v1\n');
    const message = countersignatureSigningMessage(block.cid);
    expect(message.subarray(COUNTERSIGNATURE_PREFIX.byteLength)).toEqual(block.cid.bytes);
    expect(toHex(message)).not.toBe(toHex(recordSigningMessage(block.cid)));
    const signed = signCountersignatureCid(block.cid, b.secretKey);
    expect(() => verifyCountersignatureSignature(signed, b.publicKey)).not.toThrow();
    // Deterministic ed25519: the same signature tweetnacl makes over the same message.
    expect(toHex(signed.signature)).toBe(toHex(nacl.sign.detached(message, b.secretKey)));
    // Not a record signature (domain separation), not another key's, not another block's.
    expect(() => verifyRecordSignature({ record: block.cid, signature: signed.signature }, b.publicKey)).toThrow(/Bad signature/);
    expect(() => verifyCountersignatureSignature(signRecordCid(block.cid, b.secretKey) as never, b.publicKey)).toThrow(BadCountersignatureError);
    expect(() => verifyCountersignatureSignature(signed, c.publicKey)).toThrow(BadCountersignatureError);
    expect(() => verifyCountersignatureSignature({ countersignature: record, signature: signed.signature }, b.publicKey)).toThrow(BadCountersignatureError);
  });

  it('refuses malformed blocks with ORACLE_ERR_BAD_COUNTERSIGNATURE, naming the field', async () => {
    const record = await cidOf('record');
    const good = { v: 1, type: 'fetch-oracle/countersignature', record, witness: b.publicKey, fetchedAt: '2026-12-03T16:00:00Z' };
    const cases: Array<[unknown, RegExp]> = [
      [[1, 2], /is not a map/],
      [{ ...good, type: 'fetch-oracle/record' }, /has type fetch-oracle\/record/],
      [{ ...good, v: 2 }, /has version 2/],
      [{ ...good, record: 'bafy' }, /names no record CID/],
      [{ ...good, witness: new Uint8Array(31) }, /witness key must be 32 bytes/],
      [{ ...good, fetchedAt: 'yesterday' }, /fetchedAt yesterday/],
      [{ ...good, extra: 1 }, /unknown field\(s\) extra/],
    ];
    for (const [value, message] of cases) {
      let err: unknown;
      try {
        decodeCountersignature(dagCbor.encode(value));
      } catch (e) {
        err = e;
      }
      expect(err, String(message)).toBeInstanceOf(BadCountersignatureError);
      expect((err as Error).message).toMatch(message);
      expect((err as BadCountersignatureError).code).toBe('ORACLE_ERR_BAD_COUNTERSIGNATURE');
    }
    expect(() => decodeCountersignature(new Uint8Array([0xff]))).toThrow(/not valid DAG-CBOR/);
  });
});

describe('tallyQuorum', () => {
  it('counts distinct trusted keys that vouch for the entry record only', async () => {
    const r = await cidOf('r');
    const t = tallyQuorum(r, [{ key: a.publicKey, record: r }, { key: b.publicKey, record: r }, { key: b.publicKey, record: r }], [a.publicKey, b.publicKey], 2);
    expect(t).toMatchObject({ accepted: true, counted: [toHex(b.publicKey), toHex(a.publicKey)].sort(), untrusted: [], equivocating: [], dissent: [] });
    expect(quorumError('GET u', t)).toBeUndefined();
  });

  it('does not count untrusted keys, and says so', async () => {
    const r = await cidOf('r');
    const t = tallyQuorum(r, [{ key: a.publicKey, record: r }, { key: c.publicKey, record: r }], [a.publicKey, b.publicKey], 2);
    expect(t.accepted).toBe(false);
    expect(t.untrusted).toEqual([toHex(c.publicKey)]);
    const err = quorumError('GET u', t);
    expect(err).toBeInstanceOf(QuorumNotMetError);
    expect(err!.message).toBe(`GET u: 1 of the 2 trusted keys needed signed record ${r} (${toHex(a.publicKey)}); not counted: ${toHex(c.publicKey)} (untrusted)`);
  });

  it('names the other records and their keys when the oracles disagree', async () => {
    const r = await cidOf('r');
    const other = await cidOf('other');
    const t = tallyQuorum(r, [{ key: a.publicKey, record: r }, { key: b.publicKey, record: other }], [a.publicKey, b.publicKey], 2);
    expect(t.dissent).toEqual([{ record: other.toString(), keys: [toHex(b.publicKey)] }]);
    const err = quorumError('GET u', t, (cid) => (cid === other.toString() ? 'status 200, 6 bytes' : 'status 200, 5 bytes'));
    expect(err).toBeInstanceOf(RecordsDisagreeError);
    expect(err!.message).toContain(`GET u: the oracles disagree: record ${other} (status 200, 6 bytes) signed by ${toHex(b.publicKey)}; 1 of the 2 trusted keys needed signed record ${r} (status 200, 5 bytes)`);
    // A quorum met despite a dissenting oracle is accepted; the dissent stays in the tally for the report.
    const three = tallyQuorum(r, [{ key: a.publicKey, record: r }, { key: c.publicKey, record: r }, { key: b.publicKey, record: other }], [a.publicKey, b.publicKey, c.publicKey], 2);
    expect(three.accepted).toBe(true);
    expect(three.dissent).toHaveLength(1);
  });

  it('counts a key that vouches for two records of one entry for neither', async () => {
    const r = await cidOf('r');
    const other = await cidOf('other');
    const t = tallyQuorum(r, [{ key: a.publicKey, record: r }, { key: b.publicKey, record: r }, { key: b.publicKey, record: other }], [a.publicKey, b.publicKey], 2);
    expect(t.accepted).toBe(false);
    expect(t.equivocating).toEqual([toHex(b.publicKey)]);
    expect(quorumError('GET u', t)!.message).toContain(`not counted: ${toHex(b.publicKey)} (signed more than one record)`);
  });
});

describe('witnessVerdict', () => {
  it('compares status, then size and sha256; headers do not enter it', () => {
    const base = { status: 200, size: 5, sha256: new Uint8Array(32).fill(1) };
    expect(witnessVerdict(base, { ...base })).toBe('same');
    expect(witnessVerdict(base, { ...base, status: 404 })).toBe('different-status');
    expect(witnessVerdict(base, { ...base, size: 6 })).toBe('different-bytes');
    expect(witnessVerdict(base, { ...base, sha256: new Uint8Array(32).fill(2) })).toBe('different-bytes');
  });
});

describe('netlock with countersignatures', () => {
  it('keeps entries without countersignatures (and the root) exactly as before, and reads the added ones back', async () => {
    const blocks = new Map<string, Uint8Array>();
    const sink: BlockSink = {
      put: (cid, bytes) => {
        blocks.set(cid.toString(), bytes);
        return Promise.resolve();
      },
    };
    const record = await cidOf('record');
    const signed = signRecordCid(record, a.secretKey);
    const plain = await buildNetlock([{ key: 'k1', signed }], [a.publicKey], sink);
    // The root and leaf of a netlock no witness signed carry no new field: older readers and CIDs are unchanged.
    expect(Object.keys(plain.rootValue).sort()).toEqual(['count', 'index', 'keyVersion', 'oracles', 'type', 'v']);
    expect(dagCbor.decode(blocks.get(plain.rootValue.index.toString())!)).toEqual({ leaf: true, entries: [['k1', record, signed.signature]] });
    const cs = await encodeCountersignature({ record, witness: b.publicKey, fetchedAt: '2026-12-03T16:00:00Z' });
    const w = signCountersignatureCid(cs.cid, b.secretKey);
    await expect(buildNetlock([{ key: 'k1', signed, witnesses: [w] }], [a.publicKey], sink)).rejects.toThrow(/no witness keys were given/);
    const witnessed = await buildNetlock([{ key: 'k1', signed, witnesses: [w] }], [a.publicKey], sink, { witnesses: [b.publicKey] });
    expect(witnessed.rootValue.witnesses).toEqual([b.publicKey]);
    const reader = new NetlockReader(witnessed.root, mapSource(blocks));
    const entries = [];
    for await (const e of reader.entries()) entries.push(e);
    expect(entries).toHaveLength(1);
    expect(entries[0]!.witnesses!.map((x) => x.countersignature.toString())).toEqual([cs.cid.toString()]);
    expect(toHex(entries[0]!.witnesses![0]!.signature)).toBe(toHex(w.signature));
    const again = new NetlockReader(plain.root, mapSource(blocks));
    for await (const e of again.entries()) expect(e.witnesses).toBeUndefined();
  });
});
