/**
 * Golden bytes for a v1 record (design §3): encoding, CID and signature of fixed records are byte-for-byte
 * those committed in test/fixtures/record-v1/ (see its README.md), and the committed bytes decode back.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { CID } from 'multiformats/cid';
import { DAG_CBOR_CODE, SHA2_256_CODE } from '../../src/protocol/blocks.ts';
import { decodeRecord, encodeRecord } from '../../src/protocol/record.ts';
import { RECORD_SIGNATURE_PREFIX, fromHex, recordSigningMessage, signRecordCid, toHex, verifyRecordSignature } from '../../src/protocol/signature.ts';
import { importBody } from '../../src/protocol/unixfs.ts';
import { LocalSigner } from '../../src/signing/local-signer.ts';
import { MemoryBlockStore } from '../../src/store/memory-block-store.ts';
import { GOLDEN_BODY, GOLDEN_BODY_CID, GOLDEN_SEED_HEX, goldenRecords } from '../fixtures/record-v1/records.ts';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'record-v1');
const key = JSON.parse(readFileSync(join(DIR, 'key.json'), 'utf8')) as { seed: string; publicKey: string };
const seed = fromHex(key.seed, 32);
const pair = nacl.sign.keyPair.fromSeed(seed);

describe('golden v1 records (test/fixtures/record-v1)', () => {
  it('the test key: the fixed seed 00…1f and the public key derived from it', () => {
    expect(key.seed).toBe(GOLDEN_SEED_HEX);
    expect(key.seed).toBe(toHex(Uint8Array.from({ length: 32 }, (_, i) => i)));
    expect(toHex(pair.publicKey)).toBe(key.publicKey);
    expect(toHex(LocalSigner.fromSeed(seed).publicKey)).toBe(key.publicKey);
  });

  it('the 200 record\'s body CID is what importBody gives for the body (one raw block)', async () => {
    expect((await importBody([new TextEncoder().encode(GOLDEN_BODY)], new MemoryBlockStore())).cid.toString()).toBe(GOLDEN_BODY_CID);
  });

  for (const golden of goldenRecords(fromHex(key.publicKey, 32))) {
    describe(golden.name, () => {
      const bytes = new Uint8Array(readFileSync(join(DIR, `${golden.name}.cbor`)));
      const expected = JSON.parse(readFileSync(join(DIR, `${golden.name}.json`), 'utf8')) as { cid: string; cborHex: string; signature: string };

      it('encodes to the committed DAG-CBOR bytes and CID', async () => {
        expect(toHex(bytes)).toBe(expected.cborHex);
        const encoded = await encodeRecord(golden.record);
        expect(toHex(encoded.bytes)).toBe(expected.cborHex);
        expect(encoded.cid.toString()).toBe(expected.cid);
        // Independently of the encoder: a CIDv1 dag-cbor whose sha2-256 digest is Node's hash of the bytes.
        const cid = CID.parse(expected.cid);
        expect([cid.version, cid.code, cid.multihash.code]).toEqual([1, DAG_CBOR_CODE, SHA2_256_CODE]);
        expect(toHex(cid.multihash.digest)).toBe(createHash('sha256').update(bytes).digest('hex'));
        // A map whose first key is "v" = 1 (DAG-CBOR orders keys by length, then bytes: v, oracle, request, …).
        const fields = golden.record.attestation === undefined ? 5 : 6;
        expect(toHex(bytes.subarray(0, 4))).toBe(`${(0xa0 + fields).toString(16)}617601`);
      });

      it('signs to the committed signature (signature.ts, LocalSigner and tweetnacl agree)', async () => {
        const cid = CID.parse(expected.cid);
        expect(toHex(signRecordCid(cid, pair.secretKey).signature)).toBe(expected.signature);
        expect(toHex((await LocalSigner.fromSeed(seed).sign(cid)).signature)).toBe(expected.signature);
        const message = new Uint8Array([...new TextEncoder().encode('fetch-oracle/record/v1\n'), ...cid.bytes]);
        expect(recordSigningMessage(cid)).toEqual(message);
        expect(RECORD_SIGNATURE_PREFIX).toEqual(message.subarray(0, 23));
        expect(toHex(nacl.sign.detached(message, pair.secretKey))).toBe(expected.signature);
        expect(nacl.sign.detached.verify(message, fromHex(expected.signature, 64), pair.publicKey)).toBe(true);
        expect(() => verifyRecordSignature({ record: cid, signature: fromHex(expected.signature, 64) }, pair.publicKey)).not.toThrow();
      });

      it('the committed bytes decode back to the record, and re-encode to the same bytes', async () => {
        const decoded = decodeRecord(bytes);
        const { response, attestation, ...rest } = decoded;
        const { response: wantResponse, attestation: wantAttestation, ...wantRest } = golden.record;
        expect(rest).toEqual(wantRest);
        expect({ ...response, body: response.body?.toString() ?? null }).toEqual({ ...wantResponse, body: wantResponse.body?.toString() ?? null });
        expect(attestation?.toString()).toBe(wantAttestation?.toString());
        expect(toHex((await encodeRecord(decoded)).bytes)).toBe(expected.cborHex);
      });
    });
  }
});
