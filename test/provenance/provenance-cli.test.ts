import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderNetlockFile } from '../../src/netlock/file.ts';
import type { ProvenanceStatement, ResourceDescriptor } from '../../src/protocol/provenance.ts';
import { toHex } from '../../src/protocol/signature.ts';
import { LocalSigner } from '../../src/signing/local-signer.ts';
import { FsBlockStore } from '../../src/store/fs-block-store.ts';
import { cliInProcess } from '../helpers/cli-in-process.ts';
import { tempDir } from '../helpers/run.ts';
import { buildFixtureNetlock, MiB } from '../netlock/netlock-fixture.ts';
import type { FixtureNetlock } from '../netlock/netlock-fixture.ts';
import { IN_CI, IN_TOTO_AVAILABLE, IN_TOTO_MISSING_REASON, inTotoVerify } from './in-toto-python.ts';

interface Envelope {
  payload: string;
  payloadType: string;
  signatures: Array<{ keyid: string; sig: string }>;
}

const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

function flipByte(bytes: Buffer, at: number): void {
  expect(at).toBeGreaterThanOrEqual(0);
  bytes[at] = bytes[at]! ^ 1;
}

describe('fetch-oracle provenance', () => {
  let dir: { path: string; remove(): Promise<void> };
  let data: string;
  let fixture: FixtureNetlock;
  let netlockPath: string;
  let signer: LocalSigner;
  let out: string;
  let outDir: string;
  let provenance: string;
  const imageId = `sha256:${'ab'.repeat(32)}`;

  beforeAll(async () => {
    dir = await tempDir('fo-provenance-');
    data = join(dir.path, 'data');
    signer = await LocalSigner.loadOrCreate(data);
    const store = new FsBlockStore(data);
    // Two Accept variants of one URL, a response without a body, a multi-block body.
    fixture = await buildFixtureNetlock(
      [
        { url: 'https://registry.example/pkg', accept: 'application/json', bodyBytes: 300, seed: 'json' },
        { url: 'https://registry.example/pkg', accept: 'application/vnd.npm.install-v1+json', bodyBytes: 200, seed: 'abbrev' },
        { url: 'https://registry.example/empty', bodyBytes: null },
        { url: 'https://files.example/big.tar', bodyBytes: 2 * MiB + 5 },
      ],
      store,
      signer,
    );
    await store.close();
    netlockPath = join(dir.path, 'netlock.json');
    await writeFile(netlockPath, renderNetlockFile(fixture.file));
    out = join(dir.path, 'app.bin');
    await writeFile(out, 'the build output\n');
    outDir = join(dir.path, 'dist');
    await mkdir(join(outDir, 'sub'), { recursive: true });
    await writeFile(join(outDir, 'a.txt'), 'a');
    await writeFile(join(outDir, 'sub', 'b.txt'), 'b');
    provenance = join(dir.path, 'build.intoto.jsonl');
    const r = await cliInProcess(['provenance', netlockPath, '--data', data, '--subject', out, '--subject', outDir, '--image-id', imageId, '--out', provenance]);
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(async () => dir.remove());

  const envelopeOf = async (path = provenance): Promise<Envelope> => JSON.parse((await readFile(path, 'utf8')).trim()) as Envelope;
  const statementOf = (e: Envelope): ProvenanceStatement => JSON.parse(Buffer.from(e.payload, 'base64').toString('utf8')) as ProvenanceStatement;
  /** A dependency's annotations, typed as the statement writes them. */
  const ann = (d: ResourceDescriptor): { cid: string | null; record: string; method: string; variant: Record<string, string> } =>
    d.annotations as { cid: string | null; record: string; method: string; variant: Record<string, string> };
  const writeEnvelope = async (name: string, e: Envelope): Promise<string> => {
    const p = join(dir.path, name);
    await writeFile(p, `${JSON.stringify(e)}\n`);
    return p;
  };
  const verify = (path: string, ...extra: string[]): ReturnType<typeof cliInProcess> => cliInProcess(['provenance', '--verify', path, '--trust', toHex(signer.publicKey), ...extra]);

  it('writes one DSSE envelope line of an in-toto statement listing every netlock entry and the outputs', async () => {
    const text = await readFile(provenance, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    expect(text.trim().split('\n')).toHaveLength(1);
    const envelope = await envelopeOf();
    expect(envelope.payloadType).toBe('application/vnd.in-toto+json');
    expect(envelope.signatures).toEqual([{ keyid: toHex(signer.publicKey), sig: expect.any(String) as string }]);
    const st = statementOf(envelope);
    expect(st['_type']).toBe('https://in-toto.io/Statement/v1');
    expect(st['predicateType']).toBe('https://slsa.dev/provenance/v1');
    expect(st['subject']).toEqual([
      { name: out, digest: { sha256: sha256('the build output\n') } },
      { name: `${outDir}/a.txt`, digest: { sha256: sha256('a') } },
      { name: `${outDir}/sub/b.txt`, digest: { sha256: sha256('b') } },
      { name: 'image', digest: { sha256: 'ab'.repeat(32) }, mediaType: 'application/vnd.oci.image.config.v1+json' },
    ]);
    const bd = st.predicate.buildDefinition;
    expect(bd.externalParameters['netlock']).toBe(fixture.root.toString());
    expect(bd.internalParameters?.['network']).toEqual({ netlock: fixture.root.toString(), replay: 'fail-closed', dependenciesComplete: true, entries: 4 });
    const [root, ...deps] = bd.resolvedDependencies;
    expect(root).toMatchObject({ name: 'netlock', uri: `ipfs://${fixture.root}`, digest: { sha256: toHex(fixture.root.multihash.digest) } });
    // Every entry of the readable file, in its order, with the same URL, body sha256 and body CID.
    expect(deps.map((d) => [d.uri, d.digest['sha256'], ann(d).cid, ann(d).record, ann(d).method, ann(d).variant['accept']])).toEqual(
      fixture.file.entries.map((e) => [e.url, e.sha256, e.body, e.record, e.method, e.accept]),
    );
    // Same URL twice: the Accept variant tells them apart.
    expect(deps.filter((d) => d.uri === 'https://registry.example/pkg').map((d) => ann(d).variant['accept']).sort()).toEqual(['application/json', 'application/vnd.npm.install-v1+json']);
  });

  it('is deterministic: the same netlock and outputs give the same bytes', async () => {
    const again = join(dir.path, 'again.intoto.jsonl');
    const r = await cliInProcess(['provenance', netlockPath, '--data', data, '--subject', out, '--subject', outDir, '--image-id', imageId, '--out', again]);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(again, 'utf8')).toBe(await readFile(provenance, 'utf8'));
  });

  it('--verify accepts it with the oracle key, the netlock and the subject files', async () => {
    const r = await verify(provenance, '--netlock', netlockPath, '--data', data, '--subject', out, '--subject', outDir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`signed by ${toHex(signer.publicKey)}`);
    expect(r.stdout).toContain('(matches)');
  });

  it('--verify refuses a wrong payload type, a changed payload byte or signature, and an untrusted key', async () => {
    const good = await envelopeOf();
    const wrongType = await verify(await writeEnvelope('type.jsonl', { ...good, payloadType: 'application/json' }));
    expect(wrongType.code).toBe(1);
    expect(wrongType.stderr).toContain('ORACLE_ERR_INVALID_PROVENANCE');
    expect(wrongType.stderr).toContain('payload type');
    const payload = Buffer.from(good.payload, 'base64');
    flipByte(payload, payload.indexOf('fail-closed'));
    const badPayload = await verify(await writeEnvelope('payload.jsonl', { ...good, payload: payload.toString('base64') }));
    expect(badPayload.code).toBe(1);
    expect(badPayload.stderr).toContain('ORACLE_ERR_BAD_SIGNATURE');
    const sig = Buffer.from(good.signatures[0]!.sig, 'base64');
    flipByte(sig, 10);
    const badSig = await verify(await writeEnvelope('sig.jsonl', { ...good, signatures: [{ ...good.signatures[0]!, sig: sig.toString('base64') }] }));
    expect(badSig.code).toBe(1);
    expect(badSig.stderr).toContain('ORACLE_ERR_BAD_SIGNATURE');
    const other = LocalSigner.fromSeed(new Uint8Array(32).fill(9));
    const untrusted = await cliInProcess(['provenance', '--verify', provenance, '--trust', toHex(other.publicKey)]);
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toContain('ORACLE_ERR_UNTRUSTED_KEY');
    expect(untrusted.stderr).toContain(toHex(signer.publicKey));
  });

  it('--verify refuses a subject file whose bytes changed, and a file no subject names', async () => {
    const changed = join(dir.path, 'changed');
    await mkdir(changed, { recursive: true });
    const copy = join(changed, 'app.bin');
    await writeFile(copy, 'the build output\n');
    const unnamed = await verify(provenance, '--subject', copy);
    expect(unnamed.code).toBe(1);
    expect(unnamed.stderr).toContain('ORACLE_ERR_SUBJECT_MISMATCH');
    await writeFile(out, 'the build output, changed\n');
    try {
      const r = await verify(provenance, '--subject', out);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('ORACLE_ERR_SUBJECT_MISMATCH');
      expect(r.stderr).toContain(sha256('the build output, changed\n'));
    } finally {
      await writeFile(out, 'the build output\n');
    }
  });

  it('--verify refuses a statement that does not match the netlock given', async () => {
    const store = new FsBlockStore(data);
    const other = await buildFixtureNetlock([{ url: 'https://registry.example/pkg', accept: 'application/json', bodyBytes: 300, seed: 'json' }], store, signer);
    await store.close();
    const otherPath = join(dir.path, 'other.json');
    await writeFile(otherPath, renderNetlockFile(other.file));
    const r = await verify(provenance, '--netlock', otherPath, '--data', data);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ORACLE_ERR_INVALID_PROVENANCE');
    expect(r.stderr).toContain(`not ${other.root}`);
  });

  it('refuses to write without a subject, and with a key file that does not exist', async () => {
    const none = await cliInProcess(['provenance', netlockPath, '--data', data, '--out', join(dir.path, 'x.jsonl')]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('--subject');
    const noKey = await cliInProcess(['provenance', netlockPath, '--data', data, '--subject', out, '--key', join(dir.path, 'nope.json'), '--out', join(dir.path, 'y.jsonl')]);
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toContain('ORACLE_ERR_INVALID_CONFIG');
  });

  it.skipIf(IN_TOTO_AVAILABLE || !IN_CI)('has the in-toto and securesystemslib Python packages (required under CI)', () => {
    expect.fail(IN_TOTO_MISSING_REASON);
  });

  describe.skipIf(!IN_TOTO_AVAILABLE)(`independent verifier: in-toto / securesystemslib from PyPI${IN_TOTO_AVAILABLE ? '' : ` (skipped: ${IN_TOTO_MISSING_REASON})`}`, () => {
    it('accepts the envelope with the oracle public key and parses the SLSA statement', async () => {
      const r = await inTotoVerify(provenance, toHex(signer.publicKey));
      expect(r.code, r.stderr).toBe(0);
      const [st] = JSON.parse(r.stdout) as ProvenanceStatement[];
      expect(st).toEqual(statementOf(await envelopeOf()));
      expect(st!.predicate.buildDefinition.resolvedDependencies).toHaveLength(fixture.file.entries.length + 1);
    });

    it('refuses a changed payload byte, a changed signature and another key', async () => {
      const good = await envelopeOf();
      const payload = Buffer.from(good.payload, 'base64');
      flipByte(payload, payload.indexOf(fixture.file.entries[0]!.sha256));
      const badPayload = await inTotoVerify(await writeEnvelope('py-payload.jsonl', { ...good, payload: payload.toString('base64') }), toHex(signer.publicKey));
      expect(badPayload.code).toBe(1);
      expect(badPayload.stderr).toContain('REFUSED: VerificationError');
      const sig = Buffer.from(good.signatures[0]!.sig, 'base64');
      flipByte(sig, 63);
      const badSig = await inTotoVerify(await writeEnvelope('py-sig.jsonl', { ...good, signatures: [{ ...good.signatures[0]!, sig: sig.toString('base64') }] }), toHex(signer.publicKey));
      expect(badSig.code).toBe(1);
      expect(badSig.stderr).toContain('REFUSED: VerificationError');
      const other = toHex(LocalSigner.fromSeed(new Uint8Array(32).fill(9)).publicKey);
      const wrongKey = await inTotoVerify(provenance, other);
      expect(wrongKey.code).toBe(1);
      expect(wrongKey.stderr).toContain('REFUSED: VerificationError');
    });
  });
});
