import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { describe, expect, it } from 'vitest';
import { encodeRecord } from '../../src/protocol/record.ts';
import type { FetchRecord } from '../../src/protocol/record.ts';
import {
  assertStatementMatchesNetlock,
  assertSubjectDigest,
  buildProvenanceStatement,
  canonicalJson,
  dependencyOf,
  encodeStatement,
  parseProvenanceStatement,
  PROVENANCE_BUILD_TYPE,
} from '../../src/protocol/provenance.ts';
import type { ProvenanceEntry, ProvenanceInit, ProvenanceStatement } from '../../src/protocol/provenance.ts';
import { computeRequestKey } from '../../src/protocol/request-key.ts';
import { toHex } from '../../src/protocol/signature.ts';

const oracle = new Uint8Array(32).fill(5);
const ROOT = CID.createV1(0x71, await sha256.digest(new TextEncoder().encode('netlock root')));
const BODY = CID.createV1(0x55, await sha256.digest(new TextEncoder().encode('body')));

async function entry(method: string, url: string, accept: string, options: { bodyDigest?: string; body?: CID | null; status?: number } = {}): Promise<ProvenanceEntry> {
  const key = computeRequestKey({ method, url, headers: { accept }, ...(options.bodyDigest === undefined ? {} : { bodyDigest: options.bodyDigest }) });
  const record: FetchRecord = {
    v: 1,
    request: { method: key.method, url: key.url, headers: key.variant, ...(key.bodyDigest === undefined ? {} : { bodyDigest: key.bodyDigest }) },
    response: { status: options.status ?? 200, headers: [], body: options.body === undefined ? BODY : options.body, size: 4, sha256: new Uint8Array(32).fill(1), sha512: new Uint8Array(64).fill(2) },
    fetchedAt: '2026-01-02T03:04:05.000Z',
    oracle,
  };
  return { key: key.id, record, recordCid: (await encodeRecord(record)).cid };
}

const entries = [
  await entry('GET', 'https://a.example/x', 'application/json'),
  await entry('GET', 'https://a.example/x', 'application/vnd.npm.install-v1+json'),
  await entry('POST', 'https://a.example/graphql', '*/*', { bodyDigest: `sha256-${'c'.repeat(64)}` }),
  await entry('HEAD', 'https://a.example/y', '*/*', { body: null, status: 204 }),
];
const subject = { name: 'out/app.tar', digest: { sha256: 'd'.repeat(64) } };
const init: ProvenanceInit = { netlock: ROOT, keyVersion: 1, oracles: [oracle], entries, subjects: [subject], builderVersion: '0.1.0', invocation: { tool: 'run', command: ['make'] } };

describe('buildProvenanceStatement', () => {
  it('is an in-toto Statement v1 with a SLSA v1 predicate naming the netlock and saying the list is complete', () => {
    const st = buildProvenanceStatement(init);
    expect(st._type).toBe('https://in-toto.io/Statement/v1');
    expect(st.predicateType).toBe('https://slsa.dev/provenance/v1');
    expect(st.subject).toEqual([subject]);
    const bd = st.predicate.buildDefinition;
    expect(bd.buildType).toBe(PROVENANCE_BUILD_TYPE);
    expect(bd.externalParameters).toEqual({ netlock: ROOT.toString(), tool: 'run', command: ['make'] });
    expect(bd.internalParameters).toEqual({ network: { netlock: ROOT.toString(), replay: 'fail-closed', dependenciesComplete: true, entries: 4 }, keyVersion: 1, oracles: [toHex(oracle)] });
    expect(bd.resolvedDependencies[0]).toEqual({ name: 'netlock', uri: `ipfs://${ROOT}`, digest: { sha256: toHex(ROOT.multihash.digest) }, mediaType: 'application/vnd.ipld.dag-cbor', annotations: { entries: 4 } });
    expect(bd.resolvedDependencies).toHaveLength(5);
    expect(st.predicate.runDetails).toEqual({ builder: { id: 'https://fetch-oracle.dev/builder/v1', version: { 'fetch-oracle': '0.1.0' } } });
  });

  it('represents method, variant and request body in annotations, the body by its digests and CID', async () => {
    const post = dependencyOf(entries[2]!);
    expect(post).toEqual({
      uri: 'https://a.example/graphql',
      digest: { sha256: '01'.repeat(32), sha512: '02'.repeat(64) },
      annotations: { method: 'POST', status: 200, size: 4, cid: BODY.toString(), record: entries[2]!.recordCid.toString(), variant: { accept: '*/*' }, requestBodyDigest: `sha256-${'c'.repeat(64)}` },
    });
    expect(dependencyOf(entries[3]!).annotations).toMatchObject({ method: 'HEAD', status: 204, cid: null });
    expect(dependencyOf(await entry('GET', 'https://a.example/x', 'application/json')).annotations).not.toHaveProperty('requestBodyDigest');
  });

  it('is deterministic and carries timestamps only when given', () => {
    expect(encodeStatement(buildProvenanceStatement(init))).toEqual(encodeStatement(buildProvenanceStatement(init)));
    const timed = buildProvenanceStatement({ ...init, invocation: { tool: 'build', startedOn: '2026-01-01T00:00:00Z', finishedOn: '2026-01-01T00:01:00Z' } });
    expect(timed.predicate.runDetails.metadata).toEqual({ startedOn: '2026-01-01T00:00:00Z', finishedOn: '2026-01-01T00:01:00Z' });
  });

  it('refuses a statement without subjects or with a malformed subject digest', () => {
    expect(() => buildProvenanceStatement({ ...init, subjects: [] })).toThrow(expect.objectContaining({ code: 'ORACLE_ERR_INVALID_PROVENANCE' }));
    expect(() => buildProvenanceStatement({ ...init, subjects: [{ name: 'x', digest: { sha256: 'XYZ' } }] })).toThrow(expect.objectContaining({ code: 'ORACLE_ERR_INVALID_PROVENANCE' }));
  });
});

describe('parseProvenanceStatement', () => {
  const good = buildProvenanceStatement(init);
  const bytes = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));

  it('reads back what encodeStatement wrote', () => {
    expect(parseProvenanceStatement(encodeStatement(good))).toEqual(good);
  });

  it('refuses another _type, predicateType or buildType, no subject, no netlock', () => {
    const bad: unknown[] = [
      { ...good, _type: 'https://in-toto.io/Statement/v0.1' },
      { ...good, predicateType: 'https://slsa.dev/provenance/v0.2' },
      { ...good, subject: [] },
      { ...good, predicate: { ...good.predicate, buildDefinition: { ...good.predicate.buildDefinition, buildType: 'https://example/other' } } },
      { ...good, predicate: { ...good.predicate, buildDefinition: { ...good.predicate.buildDefinition, externalParameters: {} } } },
    ];
    for (const b of bad) expect(() => parseProvenanceStatement(bytes(b))).toThrow(expect.objectContaining({ code: 'ORACLE_ERR_INVALID_PROVENANCE' }));
    expect(() => parseProvenanceStatement(new Uint8Array([0xff, 0xfe]))).toThrow(expect.objectContaining({ code: 'ORACLE_ERR_INVALID_PROVENANCE' }));
  });
});

describe('assertStatementMatchesNetlock', () => {
  const st = buildProvenanceStatement(init);
  const withDeps = (deps: ProvenanceStatement['predicate']['buildDefinition']['resolvedDependencies']): ProvenanceStatement => ({
    ...st,
    predicate: { ...st.predicate, buildDefinition: { ...st.predicate.buildDefinition, resolvedDependencies: deps } },
  });

  it('accepts the netlock it was made from, also with keys reordered (canonical comparison)', () => {
    expect(() => assertStatementMatchesNetlock(st, ROOT, entries)).not.toThrow();
    const reordered = JSON.parse(canonicalJson(st)) as ProvenanceStatement;
    expect(() => assertStatementMatchesNetlock(reordered, ROOT, entries)).not.toThrow();
  });

  it('refuses another root, a left-out, an extra and a changed dependency, naming it', async () => {
    const deps = st.predicate.buildDefinition.resolvedDependencies;
    const other = CID.createV1(0x71, await sha256.digest(new TextEncoder().encode('another netlock')));
    expect(() => assertStatementMatchesNetlock(st, other, entries)).toThrow(`names netlock ${ROOT}, not ${other}`);
    expect(() => assertStatementMatchesNetlock(withDeps(deps.slice(0, -1)), ROOT, entries)).toThrow(/leaves out https:\/\/a.example\/y/);
    expect(() => assertStatementMatchesNetlock(withDeps([...deps, { uri: 'https://evil.example/', digest: { sha256: 'e'.repeat(64) } }]), ROOT, entries)).toThrow(/does not hold: https:\/\/evil.example/);
    const changed = deps.map((d, i) => (i === 1 ? { ...d, digest: { ...d.digest, sha256: 'f'.repeat(64) } } : d));
    expect(() => assertStatementMatchesNetlock(withDeps(changed), ROOT, entries)).toThrow(expect.objectContaining({ code: 'ORACLE_ERR_INVALID_PROVENANCE', message: expect.stringContaining('dependency 1') as string }));
  });
});

describe('assertSubjectDigest', () => {
  const st = buildProvenanceStatement(init);
  it('accepts the named subject with its digest, refuses another digest or an unknown name (ORACLE_ERR_SUBJECT_MISMATCH)', () => {
    expect(() => assertSubjectDigest(st, 'out/app.tar', 'd'.repeat(64))).not.toThrow();
    expect(() => assertSubjectDigest(st, 'out/app.tar', 'e'.repeat(64))).toThrow(expect.objectContaining({ code: 'ORACLE_ERR_SUBJECT_MISMATCH' }));
    expect(() => assertSubjectDigest(st, 'other', 'd'.repeat(64))).toThrow(expect.objectContaining({ code: 'ORACLE_ERR_SUBJECT_MISMATCH' }));
  });
});
