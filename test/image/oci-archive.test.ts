/**
 * The image ID of an OCI archive (src/image/oci-archive.ts), which `build --machine` reads because buildah
 * commits straight into the archive there: checked against real buildah, whose storage image ID for the same
 * build is the config digest, and against broken archives. Also the guest argv's tag handling.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArchiveError } from '../../src/errors.ts';
import { findBuildah, storageArgs, storageOf } from '../../src/image/buildah.ts';
import { GUEST_OUTPUT, OUTPUT_ARCHIVE, stageMachineBuild, withoutTags } from '../../src/image/machine-build.ts';
import { ociArchiveImageId } from '../../src/image/oci-archive.ts';
import { IN_CI } from '../helpers/cartesi.ts';
import { run, tempDir } from '../helpers/run.ts';

const buildah = findBuildah();

describe('ociArchiveImageId', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    dir = await tempDir('fo-oci-archive-');
  });
  afterAll(async () => {
    await dir?.remove();
  });

  it.skipIf(buildah === undefined && !IN_CI)('gives the image ID buildah gives for the same build committed to its storage', async () => {
    if (buildah === undefined) throw new Error('buildah is needed under CI');
    const ctx = join(dir.path, 'ctx');
    await run('mkdir', ['-p', ctx]);
    await writeFile(join(ctx, 'a'), 'a file\n');
    await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY a /a\n');
    const storage = storageArgs(storageOf(join(dir.path, 'storage')));
    const archive = join(dir.path, 'image.oci.tar');
    const common = ['build', '--isolation', 'chroot', '--timestamp', '0', '--no-cache'];
    const direct = await run(buildah, [...storage, ...common, '--tag', `oci-archive:${archive}`, ctx]);
    expect(direct.code, direct.stderr).toBe(0);
    const iidfile = join(dir.path, 'iid');
    const stored = await run(buildah, [...storage, ...common, '--iidfile', iidfile, ctx]);
    expect(stored.code, stored.stderr).toBe(0);
    const iid = (await run('cat', [iidfile])).stdout.trim();
    expect(iid).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await ociArchiveImageId(archive)).toBe(iid);
  });

  it('refuses a file that is not a tar, an archive without index.json, and a manifest that does not hash to its name', async () => {
    const notTar = join(dir.path, 'not.tar');
    await writeFile(notTar, 'x'.repeat(1000));
    await expect(ociArchiveImageId(notTar)).rejects.toBeInstanceOf(InvalidArchiveError);

    const src = join(dir.path, 'src');
    await run('mkdir', ['-p', join(src, 'blobs', 'sha256')]);
    await writeFile(join(src, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    const noIndex = join(dir.path, 'noindex.tar');
    expect((await run('tar', ['-c', '-f', noIndex, '-C', src, '.'])).code).toBe(0);
    await expect(ociArchiveImageId(noIndex)).rejects.toThrow(/no index\.json/);

    const name = 'a'.repeat(64);
    await writeFile(join(src, 'blobs', 'sha256', name), JSON.stringify({ config: { digest: `sha256:${'b'.repeat(64)}` } }));
    await writeFile(join(src, 'index.json'), JSON.stringify({ manifests: [{ digest: `sha256:${name}` }] }));
    const tampered = join(dir.path, 'tampered.tar');
    expect((await run('tar', ['-c', '-f', tampered, '-C', src, '.'])).code).toBe(0);
    await expect(ociArchiveImageId(tampered)).rejects.toThrow(/does not hash to/);
  });
});

describe('build --machine: the guest buildah argv', () => {
  it('takes the user tags out, in every spelling, and keeps the rest in order', () => {
    expect(withoutTags(['-t', 'a', '--tag', 'b', '--tag=c', '-td', '--layers', '-f', 'X'])).toEqual({ args: ['--layers', '-f', 'X'], tags: ['a', 'b', 'c', 'd'] });
  });

  it('commits into the archive on the output drive instead of a tag', async () => {
    const dir = await tempDir('fo-stage-');
    try {
      const ctx = join(dir.path, 'ctx');
      await run('mkdir', ['-p', ctx]);
      await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\n');
      const stage = await stageMachineBuild({ context: ctx, buildahArgs: ['-t', 'mine:1'], scrub: [], caTarget: undefined }, join(dir.path, 'stage'));
      expect(stage.droppedTags).toEqual(['mine:1']);
      const i = stage.buildahArgv.indexOf('build');
      expect(stage.buildahArgv.slice(i + 1, i + 3)).toEqual(['--tag', `oci-archive:${GUEST_OUTPUT}/${OUTPUT_ARCHIVE}`]);
      expect(stage.buildahArgv).not.toContain('mine:1');
    } finally {
      await dir.remove();
    }
  });
});
