import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBuildah } from '../../src/image/buildah.ts';
import type { ProvenanceStatement } from '../../src/protocol/provenance.ts';
import { cleanEnv } from '../helpers/client-session.ts';
import { explainRun } from '../helpers/debian-base.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { CLI, run, tempDir } from '../helpers/run.ts';
import type { RunResult } from '../helpers/run.ts';
import { IN_TOTO_AVAILABLE, inTotoVerify } from './in-toto-python.ts';

/**
 * `build --provenance` with real buildah: a busybox image whose RUN step downloads a file through the proxy.
 * The recorded build and its offline rebuild each write a statement whose subject is the image ID.
 */
const inCi = process.env['CI'] === 'true' || process.env['CI'] === '1';
const noBuildah = findBuildah() === undefined;

describe.skipIf(noBuildah && !inCi)(`build --provenance (real buildah, busybox)${noBuildah ? ' [skipped: buildah is not installed]' : ''}`, () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  beforeAll(async () => {
    dir = await tempDir('fo-build-provenance-');
    origin = await startOrigin();
    origin.route('/dep.txt', (_q, r) => {
      r.end('downloaded in a RUN step\n');
    });
  });
  afterAll(async () => {
    await origin?.close();
    await dir?.remove();
  });

  const data = (): string => join(dir.path, 'data');
  const build = (args: string[]): Promise<RunResult> =>
    run(process.execPath, [CLI, 'build', '--data', data(), '--ca-path', 'none', ...args], { env: cleanEnv(dir.path), cwd: dir.path, timeoutMs: 300_000 });
  const statementIn = async (path: string): Promise<ProvenanceStatement> =>
    JSON.parse(Buffer.from((JSON.parse((await readFile(path, 'utf8')).trim()) as { payload: string }).payload, 'base64').toString('utf8')) as ProvenanceStatement;

  it('the recorded build and its offline rebuild each sign a statement: the image ID as subject, the download as dependency', async () => {
    const ctx = join(dir.path, 'ctx');
    await mkdir(ctx, { recursive: true });
    await copyFile('/bin/busybox', join(ctx, 'busybox'));
    await writeFile(join(ctx, 'Dockerfile'), `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "wget", "-q", "-O", "/dep.txt", "${origin.url}/dep.txt"]
`);
    const netlock = join(dir.path, 'b.netlock.json');
    const recProv = join(dir.path, 'record.intoto.jsonl');
    const rec = await build(['--storage', join(dir.path, 'storage-rec'), '--netlock', netlock, '--provenance', recProv, ctx]);
    expect(rec.code, explainRun(rec)).toBe(0);
    const imageId = rec.stdout.trim();
    expect(imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
    const recorded = await statementIn(recProv);
    expect(recorded.subject).toEqual([{ name: 'image', digest: { sha256: imageId.slice('sha256:'.length) }, mediaType: 'application/vnd.oci.image.config.v1+json' }]);
    expect(recorded.predicate.buildDefinition.resolvedDependencies.slice(1).map((d) => d.uri)).toEqual([`${origin.url}/dep.txt`]);

    const repProv = join(dir.path, 'replay.intoto.jsonl');
    const rep = await build(['--storage', join(dir.path, 'storage-rep'), '--replay', netlock, '--provenance', repProv, ctx]);
    expect(rep.code, explainRun(rep)).toBe(0);
    expect(rep.stdout.trim()).toBe(imageId);
    const replayed = await statementIn(repProv);
    expect(replayed.subject).toEqual(recorded.subject);
    expect(replayed.predicate.buildDefinition.resolvedDependencies).toEqual(recorded.predicate.buildDefinition.resolvedDependencies);

    const key = (JSON.parse(await readFile(join(data(), 'oracle-key.json'), 'utf8')) as { publicKey: string }).publicKey;
    const verified = await run(process.execPath, [CLI, 'provenance', '--verify', repProv, '--trust', key, '--netlock', netlock, '--data', data()], { cwd: dir.path });
    expect(verified.code, explainRun(verified)).toBe(0);
    if (IN_TOTO_AVAILABLE) {
      const py = await inTotoVerify(repProv, key);
      expect(py.code, py.stderr).toBe(0);
    }
  }, 600_000);
});
