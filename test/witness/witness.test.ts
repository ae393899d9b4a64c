import 'reflect-metadata';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetlockReader } from '../../src/netlock/dag.ts';
import { decodeEntry, readNetlockRoot, writeNetlockFile } from '../../src/netlock/file.ts';
import type { DecodedEntry, NetlockFile } from '../../src/netlock/file.ts';
import { verifyingSource } from '../../src/protocol/blocks.ts';
import { encodeCountersignature, signCountersignatureCid } from '../../src/protocol/countersignature.ts';
import { encodeRecord } from '../../src/protocol/record.ts';
import { privateKeyObject } from '../../src/protocol/signature.ts';
import { FsBlockStore } from '../../src/store/fs-block-store.ts';
import { CertAuthority } from '../../src/tls/cert-authority.ts';
import nacl from 'tweetnacl';
import { startTestOracle } from '../helpers/oracle.ts';
import { startGioSimulator } from '../../src/machine/sim/gio-simulator.ts';
import { cli, ROOT, run } from '../helpers/run.ts';
import { WITNESS_SEED, witnessScenario } from './fixture.ts';
import type { WitnessScenario } from './fixture.ts';

const WITNESS_PUBLIC = nacl.sign.keyPair.fromSeed(WITNESS_SEED).publicKey;

const readJson = async (path: string): Promise<NetlockFile> => JSON.parse(await readFile(path, 'utf8')) as NetlockFile;

/** The decoded entries of a netlock in B's store (what a test rebuilds a tampered netlock from). */
async function entriesOf(s: WitnessScenario, path: string): Promise<DecodedEntry[]> {
  const source = verifyingSource(new FsBlockStore(s.dataB));
  const out: DecodedEntry[] = [];
  for await (const e of new NetlockReader((await readNetlockRoot(path)).root, source).entries()) out.push(await decodeEntry(e, source));
  return out;
}

describe('fetch-oracle witness, verify --quorum and replay --quorum (two oracles, two loopback origins)', () => {
  let s: WitnessScenario;
  let sameWitnessed: string;
  let fullWitnessed: string;
  let fullRun: Awaited<ReturnType<typeof cli>>;

  beforeAll(async () => {
    s = await witnessScenario();
    sameWitnessed = join(s.dir.path, 'same.witnessed.json');
    fullWitnessed = join(s.dir.path, 'full.witnessed.json');
    const same = await cli(['witness', s.sameNetlock, '--data', s.dataB, '--key', s.keyFileB, '--out', sameWitnessed]);
    expect(same.code, `${same.stdout}\n${same.stderr}`).toBe(0);
    expect(same.stdout).toContain('countersigned: 1 (same status and body bytes)');
    fullRun = await cli(['witness', s.fullNetlock, '--data', s.dataB, '--key', s.keyFileB, '--out', fullWitnessed]);
  }, 180_000);

  afterAll(async () => {
    await s.close();
  });

  it('countersigns the record whose bytes the witness also got; the witnessed netlock names both keys', async () => {
    const original = await readJson(s.sameNetlock);
    const witnessed = await readJson(sameWitnessed);
    expect(original.oracles).toEqual([s.keyA]);
    expect(original.witnesses).toBeUndefined();
    expect(witnessed.oracles).toEqual([s.keyA]);
    expect(witnessed.witnesses).toEqual([s.keyB]);
    expect(witnessed.netlock).not.toBe(original.netlock);
    const [entry] = witnessed.entries;
    // The same record and signature as A's netlock, plus B's countersignature of that very record CID.
    expect(entry!.record).toBe(original.entries[0]!.record);
    expect(entry!.signature).toBe(original.entries[0]!.signature);
    expect(entry!.witnesses).toHaveLength(1);
    expect(entry!.witnesses![0]).toMatchObject({ witness: s.keyB, record: entry!.record });
    expect(entry!.witnesses![0]!.fetchedAt).toMatch(/^\d{4}-\d\d-\d\dT.*Z$/);
  });

  it('quorum 2 accepts the entry both oracles got the same bytes for (verify and replay)', async () => {
    const v = await cli(['verify', sameWitnessed, '--data', s.dataB, '--quorum', '2', '--trust', s.keyA, '--trust', s.keyB]);
    expect(v.code, v.stdout).toBe(0);
    expect(v.stdout).toContain(`witnessed by: ${s.keyB}`);
    expect(v.stdout).toContain('each record signed by 2 distinct trusted keys');
    const rep = await startTestOracle({ mode: 'replay', dataDir: s.dataB, netlockPath: sameWitnessed, trust: [Buffer.from(s.keyA, 'hex'), Buffer.from(s.keyB, 'hex')], quorum: 2 });
    try {
      const r = await rep.fetch(`${s.url}/same.txt`);
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe('same bytes\n');
    } finally {
      await rep.close();
    }
  });

  it('old netlocks verify and replay exactly as before with quorum 1, and do not meet quorum 2', async () => {
    const plain = await cli(['verify', s.sameNetlock, '--data', s.dataB, '--trust', s.keyA]);
    expect(plain.code, plain.stdout).toBe(0);
    expect(plain.stdout).not.toContain('witnessed by');
    expect(plain.stdout).toContain('OK: every signature, block and body verified, every key trusted');
    const two = await cli(['verify', s.sameNetlock, '--data', s.dataB, '--quorum', '2', '--trust', s.keyA, '--trust', s.keyB]);
    expect(two.code).toBe(1);
    expect(two.stdout).toContain(`FAIL GET ${s.url}/same.txt: ORACLE_ERR_QUORUM_NOT_MET: GET ${s.url}/same.txt: 1 of the 2 trusted keys needed signed record`);
    // The witnessed netlock replays with quorum 1 and A's key alone, as A's own netlock does.
    for (const netlock of [s.sameNetlock, sameWitnessed]) {
      const rep = await startTestOracle({ mode: 'replay', dataDir: s.dataB, netlockPath: netlock, trust: [Buffer.from(s.keyA, 'hex')] });
      try {
        expect((await rep.fetch(`${s.url}/same.txt`)).body.toString()).toBe('same bytes\n');
      } finally {
        await rep.close();
      }
    }
  });

  it('lists the entries the witness could not reproduce, with the reason', () => {
    expect(fullRun.code, fullRun.stderr).toBe(1);
    expect(fullRun.stdout).toContain('countersigned: 1 (same status and body bytes)');
    expect(fullRun.stdout).toMatch(new RegExp(`NOT WITNESSED GET ${s.url}/changes.txt: different-bytes: the netlock's record \\S+ has status 200, 10 bytes, sha256 [0-9a-f]{64}; the witness got status 200, 23 bytes`));
    expect(fullRun.stdout).toMatch(new RegExp(`NOT WITNESSED GET ${s.url}/gone.txt: different-status: .*status 200.*the witness got status 404`));
    expect(fullRun.stdout).toMatch(new RegExp(`NOT WITNESSED GET ${s.farUrl}/far.txt: unreachable: ORACLE_ERR_UPSTREAM`));
    expect(fullRun.stdout).toContain(`witnesses ${s.keyB}`);
  });

  it('quorum 2 refuses the entries whose bytes differ, naming the entry, both records and both keys', async () => {
    const v = await cli(['verify', fullWitnessed, '--data', s.dataB, '--quorum', '2', '--trust', s.keyA, '--trust', s.keyB]);
    expect(v.code).toBe(1);
    expect(v.stdout).not.toContain(`FAIL GET ${s.url}/same.txt`);
    const changes = new RegExp(`FAIL GET ${s.url}/changes.txt: ORACLE_ERR_RECORDS_DISAGREE: GET ${s.url}/changes.txt: the oracles disagree: record (\\S+) \\(status 200, 23 bytes, sha256 [0-9a-f]{64}\\) signed by ${s.keyB}; 1 of the 2 trusted keys needed signed record (\\S+) \\(status 200, 10 bytes`);
    expect(v.stdout).toMatch(changes);
    expect(v.stdout).toMatch(new RegExp(`FAIL GET ${s.url}/gone.txt: ORACLE_ERR_RECORDS_DISAGREE: .*status 404`));
    expect(v.stdout).toMatch(new RegExp(`FAIL GET ${s.farUrl}/far.txt: ORACLE_ERR_QUORUM_NOT_MET`));
    expect(v.stdout).toMatch(new RegExp(`DISAGREE GET ${s.url}/changes.txt: record \\S+ signed by ${s.keyA}; record \\S+ signed by ${s.keyB}`));
    const json = JSON.parse((await cli(['verify', fullWitnessed, '--data', s.dataB, '--quorum', '2', '--trust', s.keyA, '--trust', s.keyB, '--json'])).stdout) as { disagreements: Array<{ entry: string }> };
    expect(json.disagreements.map((d) => d.entry).sort()).toEqual([`GET ${s.url}/changes.txt`, `GET ${s.url}/gone.txt`]);
    // The readable file names the dissenting record: B's countersignature vouches for B's own record, not A's.
    const line = (await readJson(fullWitnessed)).entries.find((e) => e.url.endsWith('/changes.txt'))!;
    expect(line.witnesses![0]!.witness).toBe(s.keyB);
    expect(line.witnesses![0]!.record).not.toBe(line.record);
  });

  it('replay --quorum 2 serves the agreed entry and refuses the disputed one with its code', async () => {
    const rep = await startTestOracle({ mode: 'replay', dataDir: s.dataB, netlockPath: fullWitnessed, trust: [Buffer.from(s.keyA, 'hex'), Buffer.from(s.keyB, 'hex')], quorum: 2 });
    try {
      expect((await rep.fetch(`${s.url}/same.txt`)).body.toString()).toBe('same bytes\n');
      const disputed = await rep.fetch(`${s.url}/changes.txt`);
      expect(disputed.status).toBe(502);
      expect(disputed.headers['x-oracle-error']).toBe('ORACLE_ERR_RECORDS_DISAGREE');
      expect(disputed.body.toString()).not.toContain('version 1');
      const unwitnessed = await rep.fetch(`${s.farUrl}/far.txt`);
      expect(unwitnessed.headers['x-oracle-error']).toBe('ORACLE_ERR_QUORUM_NOT_MET');
    } finally {
      await rep.close();
    }
    // With the default quorum the netlock's own record is served, as before witnessing.
    const one = await startTestOracle({ mode: 'replay', dataDir: s.dataB, netlockPath: fullWitnessed, trust: [Buffer.from(s.keyA, 'hex')] });
    try {
      expect((await one.fetch(`${s.url}/changes.txt`)).body.toString()).toBe('version 1\n');
    } finally {
      await one.close();
    }
  });

  it('replay --quorum K needs K --trust keys (usage error, exit 2)', async () => {
    const r = await cli(['replay', '--netlock', sameWitnessed, '--data', s.dataB, '--listen', '127.0.0.1:0', '--quorum', '2', '--trust', s.keyA]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--quorum 2 needs at least 2 distinct --trust keys (got 1)');
  });

  it('a countersignature by an untrusted key is not counted, and the report says so', async () => {
    const other = 'ab'.repeat(32);
    const two = await cli(['verify', sameWitnessed, '--data', s.dataB, '--quorum', '2', '--trust', s.keyA, '--trust', other]);
    expect(two.code).toBe(1);
    expect(two.stdout).toContain(`ORACLE_ERR_QUORUM_NOT_MET: GET ${s.url}/same.txt: 1 of the 2 trusted keys needed signed record`);
    expect(two.stdout).toContain(`not counted: ${s.keyB} (untrusted)`);
    const one = await cli(['verify', sameWitnessed, '--data', s.dataB, '--trust', s.keyA]);
    expect(one.code, one.stdout).toBe(0);
    expect(one.stdout).toContain(`not counted: key ${s.keyB} (untrusted) on 1 entry`);
  });

  it('names a witness that vouches for two different records of the same request, and counts it for neither', async () => {
    const [entry] = await entriesOf(s, sameWitnessed);
    const store = new FsBlockStore(s.dataB);
    // B's second answer for the same request: a record of other bytes under B's key, and B's countersignature of it.
    const other = await encodeRecord({ ...entry!.record, oracle: WITNESS_PUBLIC, fetchedAt: '2026-01-02T03:04:05.000Z', response: { ...entry!.record.response, size: 3, sha256: new Uint8Array(32).fill(7) } });
    await store.put(other.cid, other.bytes);
    const c = await encodeCountersignature({ record: other.cid, witness: WITNESS_PUBLIC, fetchedAt: '2026-01-02T03:04:05.000Z' });
    await store.put(c.cid, c.bytes);
    const signed = signCountersignatureCid(c.cid, privateKeyObject(nacl.sign.keyPair.fromSeed(WITNESS_SEED).secretKey));
    const path = join(s.dir.path, 'equivocating.json');
    await writeNetlockFile(path, [{ ...entry!, witnesses: [...entry!.witnesses!, signed], countersigned: [...entry!.countersigned!, { v: 1, type: 'fetch-oracle/countersignature', record: other.cid, witness: WITNESS_PUBLIC, fetchedAt: '2026-01-02T03:04:05.000Z' }] }], store);
    const v = await cli(['verify', path, '--data', s.dataB, '--quorum', '2', '--trust', s.keyA, '--trust', s.keyB]);
    expect(v.code).toBe(1);
    expect(v.stdout).toContain(`ORACLE_ERR_RECORDS_DISAGREE: GET ${s.url}/same.txt: the oracles disagree: record ${other.cid} (status 200, 3 bytes, sha256 ${'07'.repeat(32)}) signed by ${s.keyB}`);
    expect(v.stdout).toContain(`not counted: ${s.keyB} (signed more than one record)`);
  });

  it('refuses a tampered countersignature (signature or block) with ORACLE_ERR_BAD_COUNTERSIGNATURE, in verify and replay', async () => {
    const [entry] = await entriesOf(s, sameWitnessed);
    const store = new FsBlockStore(s.dataB);
    const badSig = entry!.witnesses![0]!.signature.slice();
    badSig[5] = badSig[5]! ^ 0xff;
    const sigPath = join(s.dir.path, 'tampered-signature.json');
    await writeNetlockFile(sigPath, [{ ...entry!, witnesses: [{ countersignature: entry!.witnesses![0]!.countersignature, signature: badSig }] }], store);
    // A countersignature block with another fetch time: a new CID, under which B's signature does not verify.
    const moved = { ...entry!.countersigned![0]!, fetchedAt: '2020-01-01T00:00:00.000Z' };
    const block = await encodeCountersignature(moved);
    await store.put(block.cid, block.bytes);
    const blockPath = join(s.dir.path, 'tampered-block.json');
    await writeNetlockFile(blockPath, [{ ...entry!, witnesses: [{ countersignature: block.cid, signature: entry!.witnesses![0]!.signature }], countersigned: [moved] }], store);
    for (const path of [sigPath, blockPath]) {
      for (const flags of [[], ['--quorum', '2', '--trust', s.keyA, '--trust', s.keyB]]) {
        const v = await cli(['verify', path, '--data', s.dataB, ...flags]);
        expect(v.code, v.stdout).toBe(1);
        expect(v.stdout).toMatch(new RegExp(`FAIL GET ${s.url}/same.txt: ORACLE_ERR_BAD_COUNTERSIGNATURE: Bad signature on countersignature \\S+ for witness key ${s.keyB}`));
      }
      const rep = await startTestOracle({ mode: 'replay', dataDir: s.dataB, netlockPath: path, trust: [Buffer.from(s.keyA, 'hex'), Buffer.from(s.keyB, 'hex')], quorum: 2 });
      try {
        const r = await rep.fetch(`${s.url}/same.txt`);
        expect(r.status).toBe(502);
        expect(r.headers['x-oracle-error']).toBe('ORACLE_ERR_BAD_COUNTERSIGNATURE');
      } finally {
        await rep.close();
      }
    }
    // An edited line of the readable file is not part of the signed netlock.
    const text = await readFile(sameWitnessed, 'utf8');
    const edited = join(s.dir.path, 'edited.json');
    await writeFile(edited, text.replace(/"fetchedAt":"[^"]+"/, '"fetchedAt":"2020-01-01T00:00:00.000Z"'));
    const v = await cli(['verify', edited, '--data', s.dataB]);
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(new RegExp(`FAIL GET ${s.url}/same.txt: ORACLE_ERR_INVALID_NETLOCK: entry 1 of the file: field "witnesses" is .* but the signed netlock says`));
  });

  it('travels as a CAR: countersignatures and the dissenting record come along, and verify the same elsewhere', async () => {
    for (const [netlock, name] of [
      [sameWitnessed, 'same'],
      [fullWitnessed, 'full'],
    ] as const) {
      const car = join(s.dir.path, `${name}.witnessed.car`);
      const dataC = join(s.dir.path, `c-${name}`);
      const exported = await cli(['export', '--car', car, netlock, '--data', s.dataB]);
      expect(exported.code, exported.stderr).toBe(0);
      const copy = join(s.dir.path, `${name}.c.json`);
      const imported = await cli(['import', car, '--data', dataC, '--netlock', copy]);
      expect(imported.code, imported.stderr).toBe(0);
      expect((await readJson(copy)).entries).toEqual((await readJson(netlock)).entries);
      const v = await cli(['verify', copy, '--data', dataC, '--quorum', '2', '--trust', s.keyA, '--trust', s.keyB]);
      expect(v.stdout).not.toMatch(/ORACLE_ERR_BLOCK_MISSING|ORACLE_ERR_INVALID_NETLOCK/);
      expect(v.code, v.stdout).toBe(name === 'same' ? 0 : 1);
      if (name === 'full') expect(v.stdout).toContain(`FAIL GET ${s.url}/changes.txt: ORACLE_ERR_RECORDS_DISAGREE`);
    }
  });

  it('the guest shim replays a witnessed netlock: as before by default, with --quorum 2 refusing the disputed entry', async () => {
    const built = await run('bash', [join(ROOT, 'guest', 'build.sh'), 'host']);
    expect(built.code, built.stderr).toBe(0);
    const guest = join(ROOT, 'guest', 'dist', 'fetch-oracle-guest.mjs');
    const helper = join(ROOT, 'guest', 'dist', 'cmio-helper-host-sim');
    const root = (await readJson(fullWitnessed)).netlock;
    // The CA an image is provisioned with (the host makes it; the guest only loads it).
    const caDir = join(s.dir.path, 'guest-ca');
    await CertAuthority.loadOrCreate({ dir: caDir });
    const fetchAll = async (flags: string, tag: string): Promise<string> => {
      const socketPath = join(s.dir.path, `gio-${tag}.sock`);
      const sim = await startGioSimulator({ socketPath, source: new FsBlockStore(s.dataB) });
      const out = join(s.dir.path, `guest-${tag}`);
      try {
        const script = `
CMIO_SIM_SOCKET=${socketPath} node ${guest} serve --netlock-root ${root} ${flags} --ca-dir ${caDir} --listen 127.0.0.1:0 --helper ${helper} >${out}.out 2>${out}.err &
pid=$!
for i in $(seq 1 100); do grep -q listening ${out}.out 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^listening http:\\/\\/127.0.0.1://p' ${out}.out)
for p in same.txt changes.txt; do curl -s -i --noproxy '' -x http://127.0.0.1:$port ${s.url}/$p; echo; echo "== $p rc=$?"; done
kill -TERM $pid; wait $pid; echo "guest rc=$?"`;
        const r = await run('bash', ['-c', script], { env: { PATH: process.env['PATH'] ?? '', HOME: s.dir.path } });
        return `${r.stdout}\n${await readFile(`${out}.err`, 'utf8').catch(() => '')}`;
      } finally {
        await sim.close();
      }
    };
    const plain = await fetchAll(`--trust ${s.keyA}`, 'plain');
    expect(plain).toMatch(/HTTP\/1.1 200[\s\S]*same bytes\n[\s\S]*HTTP\/1.1 200[\s\S]*version 1\n/);
    expect(plain).toContain('guest rc=0');
    const quorum = await fetchAll(`--trust ${s.keyA} --trust ${s.keyB} --quorum 2`, 'quorum');
    expect(quorum).toMatch(/HTTP\/1.1 200[\s\S]*same bytes\n/);
    expect(quorum).toMatch(/HTTP\/1.1 502[\s\S]*x-oracle-error: ORACLE_ERR_RECORDS_DISAGREE/);
    expect(quorum).not.toContain('version 1');
    expect(quorum).toContain('guest rc=0');
  }, 180_000);

  it('refuses to witness with the key that signed the netlock', async () => {
    const r = await cli(['witness', s.sameNetlock, '--data', s.dataB, '--key', join(s.dataA, 'oracle-key.json'), '--out', join(s.dir.path, 'self.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`ORACLE_ERR_INVALID_CONFIG: The witness key ${s.keyA} signed records of netlock`);
    // Nothing was written.
    await expect(readFile(join(s.dir.path, 'self.json'))).rejects.toThrow(/ENOENT/);
  });
});
