import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { declaredArgs, dockerfileCandidates, userBuildArgs } from '../../src/image/dockerfile.ts';
import { jsonDifferences } from '../../src/image/image-diff.ts';
import { parseScrub, scrubProfilesFor } from '../../src/image/scrub.ts';
import { diffTarEntries, readTarEntries } from '../../src/image/tar-entries.ts';
import { splitBuildArgs } from '../../src/cli/build.ts';
import { run, tempDir } from '../helpers/run.ts';

describe('splitBuildArgs', () => {
  it('keeps fetch-oracle options, passes the rest to buildah in order, and takes the last argument as CONTEXT', () => {
    expect(splitBuildArgs(['--check', '-t', 'img', '--scrub', 'debian', '--build-arg', 'A=1', '--netlock=x.json', '-f', 'Other', '--layers', 'ctx'])).toEqual({
      own: ['--check', '--scrub', 'debian', '--netlock=x.json'],
      buildah: ['-t', 'img', '--build-arg', 'A=1', '-f', 'Other', '--layers'],
      context: 'ctx',
    });
    expect(splitBuildArgs(['--check']).context).toBeUndefined();
  });
});

describe('parseScrub', () => {
  it('expands aliases, drops duplicates and rejects unknown profiles', () => {
    expect(parseScrub(['debian'])).toEqual(['logs', 'apt', 'ldconfig']);
    expect(parseScrub(['npm,apt', 'apt'])).toEqual(['apt', 'npm']);
    expect(parseScrub(['none'])).toEqual([]);
    expect(() => parseScrub(['apt,bogus'])).toThrow(/unknown --scrub profile "bogus"/);
  });

  it('names the profiles that cover differing paths', () => {
    expect(scrubProfilesFor(['/var/log/dpkg.log', '/var/cache/apt/pkgcache.bin', '/x'])).toEqual(['logs', 'apt']);
    expect(scrubProfilesFor(['/var/logs-not'])).toEqual([]);
  });
});

describe('declaredArgs', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    dir = await tempDir('fo-build-parts-');
  });
  afterAll(async () => {
    await dir?.remove();
  });

  it('finds ARG names across stages and continuation lines, and the -f Dockerfile', async () => {
    await writeFile(join(dir.path, 'Dockerfile'), 'ARG BASE=x\nFROM scratch\narg PIP_CERT\nARG A=1 \\\n  SOURCE_DATE_EPOCH\nRUN echo ARG NOT_THIS\n');
    expect([...(await declaredArgs(dockerfileCandidates([], dir.path)))].sort()).toEqual(['A', 'BASE', 'PIP_CERT', 'SOURCE_DATE_EPOCH']);
    expect(dockerfileCandidates(['--file', '/abs/Containerfile.x'], dir.path)).toEqual(['/abs/Containerfile.x']);
    expect([...(await declaredArgs([join(dir.path, 'missing')]))]).toEqual([]);
    expect([...userBuildArgs(['--build-arg', 'A=1', '--build-arg=B=2', '-t', 'x'])]).toEqual(['A', 'B']);
  });

  it('reads the entries of a real GNU tar (long names, symlinks, modes) and tells which paths differ', async () => {
    const mk = async (name: string, content: string, mode: number): Promise<string> => {
      const root = join(dir.path, name);
      const long = join(root, 'a'.repeat(120), 'b'.repeat(60));
      await mkdir(long, { recursive: true });
      await writeFile(join(long, 'file.txt'), content);
      await writeFile(join(root, 'same'), 'same\n');
      await chmod(join(root, 'same'), mode);
      await symlink('same', join(root, 'link'));
      const out = join(dir.path, `${name}.tar`);
      const r = await run('tar', ['--sort=name', '--mtime=@0', '--numeric-owner', '-C', root, '-cf', out, '.']);
      expect(r.code, r.stderr).toBe(0);
      return out;
    };
    const a = await readTarEntries(await mk('a', 'one\n', 0o644));
    const b = await readTarEntries(await mk('b', 'two\n', 0o600));
    const longPath = `/${'a'.repeat(120)}/${'b'.repeat(60)}/file.txt`;
    expect(a.find((e) => e.path === longPath)).toMatchObject({ type: 'file', size: 4, mtime: 0 });
    expect(a.find((e) => e.path === '/link')).toMatchObject({ type: 'symlink', link: 'same' });
    expect(diffTarEntries(a, a)).toEqual([]);
    expect(diffTarEntries(a, b)).toEqual([
      { path: longPath, what: 'content' },
      { path: '/same', what: 'mode' },
    ]);
    expect(diffTarEntries(a, b.filter((e) => e.path !== '/link'))).toContainEqual({ path: '/link', what: 'only in the record' });
    await expect(readTarEntries(join(dir.path, 'a.tar'), { signal: AbortSignal.abort() })).rejects.toThrow(/abort/i);
  });
});

describe('jsonDifferences', () => {
  it('lists the leaf paths at which two configurations differ', () => {
    expect(jsonDifferences({ config: { Env: ['A=1', 'B=2'] }, created: 'x' }, { config: { Env: ['A=1', 'B=3'] }, created: 'x' })).toEqual(['config.Env[1]']);
    expect(jsonDifferences({ a: 1 }, { a: 1 })).toEqual([]);
  });
});
