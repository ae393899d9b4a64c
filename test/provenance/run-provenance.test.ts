import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProvenanceStatement } from '../../src/protocol/provenance.ts';
import { cleanEnv } from '../helpers/client-session.ts';
import { fetchOracleRun } from '../helpers/fetch-oracle-run.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { CLI, run, tempDir } from '../helpers/run.ts';
import { IN_TOTO_AVAILABLE, inTotoVerify } from './in-toto-python.ts';

/**
 * `run --replay NETLOCK --provenance FILE --subject OUT -- COMMAND` with a real client (curl) against a local
 * origin: the offline replay writes a signed statement whose subject is the file the command wrote and whose
 * dependencies are the netlock's entries; `provenance --verify` and the in-toto Python packages accept it.
 */
describe('fetch-oracle run --provenance', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  let data: string;
  let netlock: string;
  const body = Buffer.from('a dependency the build downloads\n'.repeat(1000));
  const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

  beforeAll(async () => {
    dir = await tempDir('fo-run-provenance-');
    data = join(dir.path, 'data');
    netlock = join(dir.path, 'build.netlock.json');
    origin = await startOrigin();
    origin.route('/dep.txt', (_q, r) => {
      r.end(body);
    });
    const work = join(dir.path, 'record');
    await mkdir(work, { recursive: true });
    const rec = await fetchOracleRun(['--data', data, '--netlock', netlock, '--', 'curl', '-sSf', '-o', 'out.txt', `${origin.url}/dep.txt`], { env: cleanEnv(work), cwd: work });
    expect(rec.code, rec.stderr).toBe(0);
  }, 60_000);
  afterAll(async () => {
    await origin?.close();
    await dir?.remove();
  });

  it('writes the statement of a clean offline replay: the output as subject, the netlock entries as dependencies', async () => {
    const work = join(dir.path, 'replay');
    await mkdir(work, { recursive: true });
    const prov = join(work, 'build.intoto.jsonl');
    const r = await fetchOracleRun(['--replay', netlock, '--data', data, '--provenance', prov, '--subject', 'out.txt', '--', 'curl', '-sSf', '-o', 'out.txt', `${origin.url}/dep.txt`], { env: cleanEnv(work), cwd: work });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('provenance: 1 subject(s)');
    const envelope = JSON.parse((await readFile(prov, 'utf8')).trim()) as { payload: string };
    const st = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as ProvenanceStatement;
    expect(st.subject).toEqual([{ name: 'out.txt', digest: { sha256: sha256(body) } }]);
    const bd = st.predicate.buildDefinition;
    expect(bd.externalParameters).toMatchObject({ tool: 'run', command: ['curl', '-sSf', '-o', 'out.txt', `${origin.url}/dep.txt`] });
    expect(bd.resolvedDependencies.slice(1).map((d) => [d.uri, d.digest['sha256']])).toEqual([[`${origin.url}/dep.txt`, sha256(body)]]);
    expect(st.predicate.runDetails.metadata).toHaveProperty('startedOn');
    const key = (JSON.parse(await readFile(join(data, 'oracle-key.json'), 'utf8')) as { publicKey: string }).publicKey;
    const verified = await run(process.execPath, [CLI, 'provenance', '--verify', prov, '--trust', key, '--netlock', netlock, '--data', data, '--subject', 'out.txt'], { cwd: work });
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toContain('(matches)');
    if (IN_TOTO_AVAILABLE) {
      const py = await inTotoVerify(prov, key);
      expect(py.code, py.stderr).toBe(0);
    }
  }, 60_000);

  it('writes none when the command asked for something outside the netlock', async () => {
    const work = join(dir.path, 'miss');
    await mkdir(work, { recursive: true });
    const prov = join(work, 'build.intoto.jsonl');
    const r = await fetchOracleRun(['--replay', netlock, '--data', data, '--provenance', prov, '--subject', 'out.txt', '--', 'curl', '-sS', '-o', 'out.txt', `${origin.url}/other.txt`], { env: cleanEnv(work), cwd: work });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('no provenance written');
    expect(existsSync(prov)).toBe(false);
  }, 60_000);

  it('refuses --provenance without --subject, and in record mode', async () => {
    const noSubject = await fetchOracleRun(['--replay', netlock, '--provenance', 'x.jsonl', '--', 'true'], { env: cleanEnv(dir.path), cwd: dir.path });
    expect(noSubject.code).toBe(2);
    expect(noSubject.stderr).toContain('--subject');
    const record = await fetchOracleRun(['--provenance', 'x.jsonl', '--subject', 'y', '--', 'true'], { env: cleanEnv(dir.path), cwd: dir.path });
    expect(record.code).toBe(2);
    expect(record.stderr).toContain('--provenance is a replay option');
  });
});
