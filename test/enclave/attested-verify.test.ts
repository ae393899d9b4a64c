import { createHash } from 'node:crypto';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { beforeAll, describe, expect, it } from 'vitest';
import { attestationBlock } from '../../src/enclave/key-birth.ts';
import { DAG_CBOR_CODE } from '../../src/protocol/blocks.ts';
import { encodeRecord } from '../../src/protocol/record.ts';
import type { FetchRecord } from '../../src/protocol/record.ts';
import { computeRequestKey } from '../../src/protocol/request-key.ts';
import { toHex } from '../../src/protocol/signature.ts';
import { importBody } from '../../src/protocol/unixfs.ts';
import { attestationOptions } from '../../src/netlock/verify-attested.ts';
import type { AttestationPolicy } from '../../src/netlock/verify-attested.ts';
import { buildNetlockFile } from '../../src/netlock/file.ts';
import { verifyNetlock } from '../../src/netlock/verify.ts';
import { LocalSigner } from '../../src/signing/local-signer.ts';
import { MemoryBlockStore } from '../../src/store/memory-block-store.ts';
import { makeDocument, payloadMap, cbor, Indefinite } from '../attestation/synthetic.ts';
import type { DocumentOptions } from '../attestation/synthetic.ts';
import { pkiValidAround, simulatedPcrs } from './nsm-simulator.ts';
import type { Pki } from '../attestation/synthetic.ts';

/**
 * `verify --attested` on netlocks built in memory: records signed by a key, naming a document made with a
 * test PKI (the one a simulated NSM would use). Every bad document or binding fails naming the entry; the
 * good one passes; records without an attestation still verify without --attested.
 */
describe('verifyNetlock with an attestation policy', () => {
  let pki: Pki;
  const pcrs = simulatedPcrs();
  const signer = LocalSigner.fromSeed(new Uint8Array(32).fill(3));
  let policy: AttestationPolicy;

  beforeAll(async () => {
    pki = await pkiValidAround();
    policy = { expectedPcrs: { 0: pcrs.get(0)! }, rootCertPem: pki.rootPem };
  });

  const goodFields = (extra: Record<string, unknown> = {}): DocumentOptions => ({ fields: { timestamp: Date.now(), pcrs, public_key: signer.publicKey, user_data: new Uint8Array(32).fill(9), nonce: null, ...extra } });

  /** A one-entry netlock whose record (signed by `by`) names `attestation` (stored as `docBytes` when given). */
  async function netlock(docBytes: Uint8Array | undefined, options: { by?: LocalSigner; attestation?: CID | null } = {}): Promise<{ root: CID; store: MemoryBlockStore }> {
    const store = new MemoryBlockStore();
    const by = options.by ?? signer;
    let attestation: CID | undefined = options.attestation ?? undefined;
    if (docBytes !== undefined) {
      const block = await attestationBlock(docBytes);
      await store.put(block.cid, block.bytes);
      if (options.attestation === undefined) attestation = block.cid;
    }
    const bytes = new TextEncoder().encode('hello from the origin\n');
    const body = await importBody([bytes], store);
    const url = 'https://origin.example/hello';
    const record: FetchRecord = {
      v: 1,
      request: { method: 'GET', url, headers: { accept: '*/*' } },
      response: { status: 200, headers: [['content-type', 'text/plain']], body: body.cid, size: bytes.byteLength, sha256: new Uint8Array(createHash('sha256').update(bytes).digest()), sha512: new Uint8Array(createHash('sha512').update(bytes).digest()) },
      fetchedAt: '2026-01-01T00:00:00.000Z',
      oracle: by.publicKey,
      ...(attestation === undefined ? {} : { attestation }),
    };
    const block = await encodeRecord(record);
    await store.put(block.cid, block.bytes);
    const signed = await by.sign(block.cid);
    const key = computeRequestKey({ method: 'GET', url, headers: {} }).id;
    const file = await buildNetlockFile([{ key, signed, record }], store);
    return { root: CID.parse(file.netlock), store };
  }

  async function failureOf(root: CID, store: MemoryBlockStore, p: AttestationPolicy = policy): Promise<{ entry: string; code: string; message: string }> {
    const report = await verifyNetlock(root, store, undefined, { attested: p });
    expect(report.failures).toHaveLength(1);
    return report.failures[0]!;
  }

  it('accepts a record whose key the document binds, and reports the document', async () => {
    const doc = await makeDocument(pki, goodFields());
    const { root, store } = await netlock(doc);
    const report = await verifyNetlock(root, store, undefined, { attested: { ...policy, expectedUserData: new Uint8Array(32).fill(9) } });
    expect(report.failures).toEqual([]);
    expect(report.attestations).toEqual([expect.objectContaining({ cid: (await attestationBlock(doc)).cid.toString(), publicKey: toHex(signer.publicKey), pcr0: toHex(pcrs.get(0)!), records: 1 })]);
  });

  it('records without an attestation verify as before without --attested, and fail with it', async () => {
    const { root, store } = await netlock(undefined);
    expect((await verifyNetlock(root, store, undefined)).failures).toEqual([]);
    const f = await failureOf(root, store);
    expect(f).toMatchObject({ entry: 'GET https://origin.example/hello', code: 'ORACLE_ERR_NOT_ATTESTED' });
    expect(f.message).toMatch(/names no attestation document: its oracle key [0-9a-f]{64} is not bound/);
  });

  it('refuses a record signed by another key that names a valid document (key substitution)', async () => {
    const doc = await makeDocument(pki, goodFields());
    const other = LocalSigner.fromSeed(new Uint8Array(32).fill(4));
    const { root, store } = await netlock(doc, { by: other });
    const f = await failureOf(root, store);
    expect(f.code).toBe('ORACLE_ERR_NOT_ATTESTED');
    expect(f.message).toContain(`binds public_key ${toHex(signer.publicKey)}, not the oracle key ${toHex(other.publicKey)}`);
  });

  it('refuses a document with an unexpected field, naming the document and record', async () => {
    const map = payloadMap(pki, goodFields());
    map.set('enclave_note', 'trust me');
    const doc = await makeDocument(pki, { payloadBytes: cbor(new Indefinite(map)) });
    const { root, store } = await netlock(doc);
    const f = await failureOf(root, store);
    expect(f.code).toBe('ORACLE_ERR_ATTESTATION_MALFORMED');
    expect(f.message).toMatch(/^Attestation document bafk\w+ of record bafy\w+: attestation payload has an unexpected field "enclave_note"/);
  });

  it('refuses a chain in the wrong order', async () => {
    const doc = await makeDocument(pki, { ...goodFields(), cabundle: [...pki.cabundle].reverse() });
    const { root, store } = await netlock(doc);
    const f = await failureOf(root, store);
    expect(f.code).toBe('ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT');
    expect(f.message).toMatch(/cabundle is out of order/);
  });

  it('refuses oversize fields', async () => {
    const doc = await makeDocument(pki, goodFields({ user_data: new Uint8Array(4097) }));
    const { root, store } = await netlock(doc);
    expect(await failureOf(root, store)).toMatchObject({ code: 'ORACLE_ERR_ATTESTATION_TOO_LARGE', message: expect.stringMatching(/user_data is 4097 bytes/) as unknown });
  });

  it('refuses a truncated document (stored under the CID of its truncated bytes)', async () => {
    const doc = await makeDocument(pki, goodFields());
    const { root, store } = await netlock(doc.subarray(0, doc.byteLength - 40));
    const message = new RegExp(`truncated: COSE_Sign1 envelope is ${doc.byteLength - 40} bytes, expected at least ${doc.byteLength} `);
    expect(await failureOf(root, store)).toMatchObject({ code: 'ORACLE_ERR_ATTESTATION_MALFORMED', message: expect.stringMatching(message) as unknown });
  });

  it('refuses a document whose block is missing or does not hash to its CID', async () => {
    const doc = await makeDocument(pki, goodFields());
    const cid = (await attestationBlock(doc)).cid;
    const missing = await netlock(undefined, { attestation: cid });
    expect(await failureOf(missing.root, missing.store)).toMatchObject({ code: 'ORACLE_ERR_BLOCK_MISSING' });
    const swapped = await netlock(undefined, { attestation: cid });
    const tampered = doc.slice();
    tampered[tampered.length - 1]! ^= 1;
    await swapped.store.put(cid, tampered);
    expect(await failureOf(swapped.root, swapped.store)).toMatchObject({ code: 'ORACLE_ERR_BLOCK_CORRUPT' });
  });

  it('refuses an attestation link that is not a raw block', async () => {
    const notRaw = CID.createV1(DAG_CBOR_CODE, await sha256.digest(new Uint8Array([0xa0])));
    const { root, store } = await netlock(undefined, { attestation: notRaw });
    expect(await failureOf(root, store)).toMatchObject({ code: 'ORACLE_ERR_NOT_ATTESTED', message: expect.stringMatching(/not a raw block/) as unknown });
  });

  it('applies the PCR, debug, root, user_data and validity policy', async () => {
    const doc = await makeDocument(pki, goodFields());
    const { root, store } = await netlock(doc);
    const wrongPcr = new Uint8Array(48).fill(1);
    expect(await failureOf(root, store, { ...policy, expectedPcrs: { 0: wrongPcr } })).toMatchObject({ code: 'ORACLE_ERR_ATTESTATION_PCR_MISMATCH' });
    expect(await failureOf(root, store, { expectedPcrs: { 0: pcrs.get(0)! } })).toMatchObject({ code: 'ORACLE_ERR_ATTESTATION_UNTRUSTED_ROOT' });
    expect(await failureOf(root, store, { ...policy, expectedUserData: new Uint8Array(32) })).toMatchObject({ code: 'ORACLE_ERR_NOT_ATTESTED', message: expect.stringMatching(/user_data 0909.*expected the configuration digest 0000/) as unknown });
    const debugPcrs = simulatedPcrs();
    debugPcrs.set(0, new Uint8Array(48));
    debugPcrs.set(1, new Uint8Array(48));
    debugPcrs.set(2, new Uint8Array(48));
    const debug = await netlock(await makeDocument(pki, goodFields({ pcrs: debugPcrs })));
    expect(await failureOf(debug.root, debug.store, { ...policy, expectedPcrs: { 0: new Uint8Array(48) } })).toMatchObject({ code: 'ORACLE_ERR_ATTESTATION_DEBUG_MODE' });
    // A document dated after its leaf expired (a chain cannot vouch for it at its own time).
    const late = await netlock(await makeDocument(pki, goodFields({ timestamp: Date.now() + 3 * 3_600_000 })));
    expect(await failureOf(late.root, late.store)).toMatchObject({ code: 'ORACLE_ERR_ATTESTATION_EXPIRED' });
  });

  it('an attestation policy must name PCR0', () => {
    expect(() => attestationOptions({ expectedPcrs: { 1: new Uint8Array(48) } })).toThrow(/must name PCR0/);
    expect(() => attestationOptions({ expectedPcrs: { 0: new Uint8Array(48) }, rootCertPem: 'not a pem' })).toThrow(/not a PEM certificate/);
  });
});
