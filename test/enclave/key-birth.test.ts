import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as dagCbor from '@ipld/dag-cbor';
import { encode as cborEncode } from 'cborg';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import nacl from 'tweetnacl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeAttestation, verifyAttestation } from '../../src/attestation/index.ts';
import { ORACLE_VERSION } from '../../src/cli/enclave.ts';
import { birthKey, checkRngSource, createEnclaveConfig, deriveSeed, encodeEnclaveConfig } from '../../src/enclave/key-birth.ts';
import { encodeAttestationRequest, HelperNsmClient } from '../../src/enclave/nsm-client.ts';
import { RAW_CODE } from '../../src/protocol/blocks.ts';
import { verifyRecordSignature } from '../../src/protocol/signature.ts';
import { makeDocument } from '../attestation/synthetic.ts';
import { ensureNsmHelpers, NSM_HELPER_REAL, NSM_HELPER_SIM, ROOT, startSimulatedNsm } from './nsm-simulator.ts';
import type { SimulatedNsm } from './nsm-simulator.ts';

const config = createEnclaveConfig({ oracle: ORACLE_VERSION, listen: '127.0.0.1:8899', upstreamProxy: '127.0.0.1:3128', upstreamCaPem: ['-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n', '-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n'] });

describe('birthKey (simulated NSM behind the real helper code, -DNSM_SIM device layer)', () => {
  let dir: string;
  let sim: SimulatedNsm;
  let nsm: HelperNsmClient;

  beforeAll(async () => {
    await ensureNsmHelpers();
    dir = await mkdtemp(join(tmpdir(), 'fo-keybirth-'));
    sim = await startSimulatedNsm(join(dir, 'nsm.sock'));
    nsm = new HelperNsmClient({ helperPath: NSM_HELPER_SIM, env: { NSM_SIM_SOCKET: sim.socketPath } });
  });
  afterAll(async () => {
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('derives the key from the NSM randomness and binds it and the config digest in the document', async () => {
    sim.respond = undefined;
    const local = new Uint8Array(32).fill(7);
    const before = sim.randomGiven.length;
    const born = await birthKey({ nsm, config, localEntropy: local });
    const random = sim.randomGiven[before]!;
    // The key is exactly the one derived from the NSM's bytes (and the given local entropy).
    const expected = nacl.sign.keyPair.fromSeed(deriveSeed(random.subarray(0, 32), local)).publicKey;
    expect(Buffer.from(born.signer.publicKey).toString('hex')).toBe(Buffer.from(expected).toString('hex'));
    // The NSM saw one attestation request: public_key = the key, user_data = SHA-256 of the config block, no nonce.
    const request = sim.requests.at(-1)!;
    expect(request.kind).toBe('Attestation');
    expect(request.publicKey).toEqual(born.signer.publicKey);
    expect(request.nonce).toBeNull();
    const configBlock = await encodeEnclaveConfig(config);
    expect(request.userData).toEqual(new Uint8Array((await sha256.digest(configBlock.bytes)).digest));
    expect(born.config.cid.equals(configBlock.cid)).toBe(true);
    expect(dagCbor.decode(born.config.bytes)).toMatchObject({ type: 'fetch-oracle/enclave-config', oracle: ORACLE_VERSION, recordUpstreamFailures: false, upstreamCaSha256: [...config.upstreamCaSha256].sort() });
    // The document verifies against the pinned test root and binds the same key and digest.
    const doc = await verifyAttestation(born.document.bytes, { ...sim.pki.trust, expectedPcrs: { 0: sim.pcrs.get(0)! } });
    expect(doc.publicKey).toEqual(born.signer.publicKey);
    expect(doc.userData).toEqual(request.userData);
    // The document is a raw block addressed by its exact bytes; the signer names it.
    expect(born.document.cid.code).toBe(RAW_CODE);
    expect(born.document.cid.equals(CID.createV1(RAW_CODE, await sha256.digest(sim.documents.at(-1)!)))).toBe(true);
    expect(born.signer.attestation.equals(born.document.cid)).toBe(true);
    // It signs records that verify under the attested key.
    const signed = await born.signer.sign(born.config.cid);
    expect(() => verifyRecordSignature(signed, doc.publicKey!)).not.toThrow();
  });

  it('gives a different key for different NSM randomness with the same local entropy', async () => {
    sim.respond = undefined;
    const local = new Uint8Array(32).fill(7);
    const a = await birthKey({ nsm, config, localEntropy: local });
    const b = await birthKey({ nsm, config, localEntropy: local });
    expect(Buffer.from(a.signer.publicKey).equals(Buffer.from(b.signer.publicKey))).toBe(false);
  });

  it('collects 32 bytes when the NSM returns fewer per call', async () => {
    const pieces: Uint8Array[] = [];
    sim.respond = (r) => {
      if (r.kind !== 'GetRandom') return undefined;
      const random = new Uint8Array(12).fill(pieces.length + 1);
      pieces.push(random);
      return { GetRandom: { random } };
    };
    const local = new Uint8Array(32);
    const born = await birthKey({ nsm, config, localEntropy: local });
    expect(pieces).toHaveLength(3);
    const joined = new Uint8Array([...pieces[0]!, ...pieces[1]!, ...pieces[2]!.subarray(0, 8)]);
    expect(born.signer.publicKey).toEqual(nacl.sign.keyPair.fromSeed(deriveSeed(joined, local)).publicKey);
  });

  it('refuses a document that binds another key or another config digest', async () => {
    sim.respond = async (r) => {
      if (r.kind !== 'Attestation') return undefined;
      const document = await makeDocument(sim.pki, { fields: { timestamp: Date.now(), pcrs: sim.pcrs, public_key: new Uint8Array(32).fill(1), user_data: r.userData, nonce: null } });
      return { Attestation: { document } };
    };
    await expect(birthKey({ nsm, config })).rejects.toMatchObject({ code: 'ORACLE_ERR_NSM', message: expect.stringMatching(/binds public_key 0101.*not the oracle key/) as unknown });
    sim.respond = async (r) => {
      if (r.kind !== 'Attestation') return undefined;
      const document = await makeDocument(sim.pki, { fields: { timestamp: Date.now(), pcrs: sim.pcrs, public_key: r.publicKey, user_data: new Uint8Array(32), nonce: null } });
      return { Attestation: { document } };
    };
    await expect(birthKey({ nsm, config })).rejects.toMatchObject({ code: 'ORACLE_ERR_NSM', message: expect.stringMatching(/not the configuration digest/) as unknown });
  });

  it('reports NSM errors, malformed responses, helper failures and aborts as NsmError / AbortedError', async () => {
    sim.respond = (r) => (r.kind === 'GetRandom' ? { Error: 'InternalError' } : undefined);
    await expect(birthKey({ nsm, config })).rejects.toMatchObject({ code: 'ORACLE_ERR_NSM', message: 'NSM refused GetRandom: InternalError' });
    sim.respond = (r) => (r.kind === 'GetRandom' ? new Uint8Array([0xff, 0x00]) : undefined);
    await expect(birthKey({ nsm, config })).rejects.toMatchObject({ code: 'ORACLE_ERR_NSM', message: expect.stringMatching(/not valid CBOR/) as unknown });
    sim.respond = (r) => (r.kind === 'Attestation' ? { Attestation: { document: 'not bytes' } } : undefined);
    await expect(birthKey({ nsm, config })).rejects.toMatchObject({ code: 'ORACLE_ERR_NSM', message: 'NSM Attestation response has no document' });
    sim.respond = undefined;
    const noSocket = new HelperNsmClient({ helperPath: NSM_HELPER_SIM, env: { NSM_SIM_SOCKET: join(dir, 'absent.sock') } });
    await expect(noSocket.getRandom()).rejects.toMatchObject({ code: 'ORACLE_ERR_NSM', message: expect.stringMatching(/failed \(exit 1\): nsm-helper: connect NSM_SIM_SOCKET/) as unknown });
    await expect(new HelperNsmClient({ helperPath: join(dir, 'no-such-helper') }).getRandom()).rejects.toMatchObject({ code: 'ORACLE_ERR_NSM', message: expect.stringMatching(/Cannot run NSM helper/) as unknown });
    await expect(birthKey({ nsm, config, signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ORACLE_ERR_ABORTED' });
    await expect(nsm.attest({}, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ORACLE_ERR_ABORTED' });
  });

  it('keeps requests within the NSM limit: the client refuses over 4096 bytes, and so does the helper', async () => {
    expect(() => encodeAttestationRequest({ userData: new Uint8Array(5000) })).toThrow(/at most 4096/);
    const big = cborEncode({ Attestation: { user_data: new Uint8Array(5000), nonce: null, public_key: null } });
    const child = promisify(execFile)(NSM_HELPER_SIM, [], { env: { NSM_SIM_SOCKET: sim.socketPath } });
    child.child.stdin!.end(big);
    await expect(child).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/larger than 4096 bytes/) as unknown });
  });

  it('the real helper (no NSM_SIM) asks /dev/nsm and fails clearly where there is none', async () => {
    const client = new HelperNsmClient({ helperPath: NSM_HELPER_REAL });
    await expect(client.getRandom()).rejects.toMatchObject({ code: 'ORACLE_ERR_NSM', message: expect.stringMatching(/open \/dev\/nsm/) as unknown });
  });

  it('the RNG check requires nsm-hwrng', async () => {
    const path = join(dir, 'rng_current');
    await import('node:fs/promises').then((fs) => fs.writeFile(path, 'virtio_rng.0\n'));
    await expect(checkRngSource(path)).rejects.toMatchObject({ code: 'ORACLE_ERR_NSM', message: expect.stringMatching(/"virtio_rng.0", not nsm-hwrng/) as unknown });
    await import('node:fs/promises').then((fs) => fs.writeFile(path, 'nsm-hwrng\n'));
    await expect(checkRngSource(path)).resolves.toBeUndefined();
    await expect(checkRngSource(join(dir, 'absent'))).rejects.toMatchObject({ code: 'ORACLE_ERR_NSM' });
  });

  it('the attested oracle version is package.json\'s', () => {
    expect(ORACLE_VERSION).toBe((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  });

  it('decodes what the simulated NSM signs in the real layout (untagged COSE_Sign1, indefinite payload map)', () => {
    const doc = sim.documents.at(-1)!;
    expect(doc[0]).toBe(0x84);
    expect(() => decodeAttestation(doc)).not.toThrow();
  });
});
