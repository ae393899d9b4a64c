import { createHash } from 'node:crypto';
import { chmod, link, mkdir, open, readFile, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { declaredArgs, dockerfileCandidates, userBuildArgs } from '../../src/image/dockerfile.ts';
import { jsonDifferences } from '../../src/image/image-diff.ts';
import { parseScrub, scrubProfilesFor, scrubVariables, scrubVolumes } from '../../src/image/scrub.ts';
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

  it('all = every profile; cargo mounts a file and sets a variable; the scratch mounts are made empty', async () => {
    expect(parseScrub(['all'])).toEqual(['logs', 'apt', 'ldconfig', 'npm', 'pip', 'go', 'cargo']);
    expect(scrubVariables(parseScrub(['all']))).toEqual([{ name: 'CARGO_CACHE_RUSTC_INFO', value: '0' }]);
    expect(scrubVariables(parseScrub(['debian']))).toEqual([]);
    const dir = await tempDir('fo-scrub-');
    try {
      const args = await scrubVolumes(['go', 'cargo'], dir.path);
      expect(args).toEqual(['--volume', `${dir.path}/go/root_.cache_go-build:/root/.cache/go-build:rw`, '--volume', `${dir.path}/cargo/root_.cargo_.global-cache:/root/.cargo/.global-cache:rw`]);
      expect((await stat(join(dir.path, 'go', 'root_.cache_go-build'))).isDirectory()).toBe(true);
      const file = await stat(join(dir.path, 'cargo', 'root_.cargo_.global-cache'));
      expect([file.isFile(), file.size]).toEqual([true, 0]);
    } finally {
      await dir.remove();
    }
  });

  it('names the profiles that cover differing paths', () => {
    expect(scrubProfilesFor(['/var/log/dpkg.log', '/var/cache/apt/pkgcache.bin', '/x'])).toEqual(['logs', 'apt']);
    expect(scrubProfilesFor(['/var/logs-not'])).toEqual([]);
    expect(scrubProfilesFor(['/root/.cache/go-build/ab/cd-a', '/root/.cargo/.global-cache', '/root/.cargo/bin/tool'])).toEqual(['go', 'cargo']);
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
      const r = await run('tar', ['--format=gnu', '--sort=name', '--mtime=@0', '--numeric-owner', '-C', root, '-cf', out, '.']);
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

  // GNU tar writes a name over 100 bytes as a GNU long-name entry (`--format=gnu`, type L/K) or as a pax
  // `path`/`linkpath` record (`--format=pax`); both must give the same entries, links included.
  for (const format of ['gnu', 'pax'] as const) {
    it(`reads long names, long link targets, symlinks and hard links of a --format=${format} tar`, async () => {
      const root = join(dir.path, `links-${format}`);
      const deep = join(root, 'd'.repeat(90), 'e'.repeat(90));
      await mkdir(deep, { recursive: true });
      const longFile = join(deep, `${'f'.repeat(99)}.txt`);
      await writeFile(longFile, 'content\n');
      await link(longFile, join(root, 'hard'));
      await symlink(`${'t'.repeat(150)}/target`, join(root, 'dangling'));
      const out = join(dir.path, `links-${format}.tar`);
      const r = await run('tar', [`--format=${format}`, '--sort=name', '--mtime=@7', '--numeric-owner', '--owner=1234', '--group=5678', '-C', root, '-cf', out, '.']);
      expect(r.code, r.stderr).toBe(0);
      const entries = await readTarEntries(out);
      const longPath = `/${'d'.repeat(90)}/${'e'.repeat(90)}/${'f'.repeat(99)}.txt`;
      expect(entries.map((e) => e.path)).toEqual(['/', '/dangling', `/${'d'.repeat(90)}`, `/${'d'.repeat(90)}/${'e'.repeat(90)}`, longPath, '/hard']);
      expect(entries.find((e) => e.path === longPath)).toMatchObject({ type: 'file', size: 8, uid: 1234, gid: 5678, mtime: 7, sha256: createHash('sha256').update('content\n').digest('hex'), pax: '' });
      expect(entries.find((e) => e.path === '/dangling')).toMatchObject({ type: 'symlink', link: `${'t'.repeat(150)}/target`, sha256: '' });
      // The first name tar meets is stored as the file; the second as a hard link to it (the name as stored).
      expect(entries.find((e) => e.path === '/hard')).toMatchObject({ type: 'hardlink', link: `.${longPath}`, size: 0, sha256: '' });
    });
  }

  it('reads sparse files as stored (tar-stream does not expand them), under their real name', async () => {
    const root = join(dir.path, 'sparse');
    await mkdir(root);
    const make = async (content: string): Promise<void> => {
      await truncate(join(root, 'holes'), 0).catch(() => writeFile(join(root, 'holes'), ''));
      await truncate(join(root, 'holes'), 8 * 1024 * 1024);
      const handle = await open(join(root, 'holes'), 'r+');
      await handle.write(content, 4 * 1024 * 1024);
      await handle.close();
    };
    const tarOf = async (format: 'gnu' | 'pax', name: string): Promise<string> => {
      const out = join(dir.path, name);
      const r = await run('tar', [`--format=${format}`, '--sparse', '--sort=name', '--mtime=@0', '--numeric-owner', '-C', root, '-cf', out, '.']);
      expect(r.code, r.stderr).toBe(0);
      return out;
    };
    await make('one');
    const pax1 = await readTarEntries(await tarOf('pax', 'sparse-pax-1.tar'));
    const gnu1 = await readTarEntries(await tarOf('gnu', 'sparse-gnu-1.tar'));
    await make('two');
    const pax2 = await readTarEntries(await tarOf('pax', 'sparse-pax-2.tar'));
    const gnu2 = await readTarEntries(await tarOf('gnu', 'sparse-gnu-2.tar'));
    // pax (GNU sparse 1.0): a regular file whose content is the sparse map and the data regions, named by
    // GNU.sparse.name and sized by GNU.sparse.realsize (not GNUSparseFile.0/…).
    expect(pax1.find((e) => e.path === '/holes')).toMatchObject({ type: 'file', size: 8 * 1024 * 1024, pax: expect.stringContaining('GNU.sparse.realsize=8388608') as unknown });
    // old GNU (type flag S): an entry of unknown type, hashed over its stored data regions.
    expect(gnu1.find((e) => e.path === '/holes')).toMatchObject({ type: 'unknown', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) as unknown });
    // Unexpanded, but still compared: equal layers are equal, a changed sparse file is reported.
    expect(diffTarEntries(pax1, pax1)).toEqual([]);
    expect(diffTarEntries(pax1, pax2)).toEqual([{ path: '/holes', what: 'content' }]);
    expect(diffTarEntries(gnu1, gnu2)).toEqual([{ path: '/holes', what: 'content' }]);
  });

  it('refuses a truncated or corrupt tar with ORACLE_ERR_INVALID_ARCHIVE, and passes a missing file through', async () => {
    const good = join(dir.path, 'a.tar');
    const bytes = await readFile(good);
    const cut = join(dir.path, 'cut.tar');
    await writeFile(cut, bytes.subarray(0, 512 * 3 + 100));
    await expect(readTarEntries(cut)).rejects.toMatchObject({ code: 'ORACLE_ERR_INVALID_ARCHIVE' });
    const corrupt = join(dir.path, 'corrupt.tar');
    const flipped = Buffer.from(bytes);
    flipped[0] = flipped[0]! ^ 0xff; // the first header's checksum no longer matches
    await writeFile(corrupt, flipped);
    await expect(readTarEntries(corrupt)).rejects.toMatchObject({ code: 'ORACLE_ERR_INVALID_ARCHIVE' });
    await expect(readTarEntries(join(dir.path, 'missing.tar'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('jsonDifferences', () => {
  it('lists the leaf paths at which two configurations differ', () => {
    expect(jsonDifferences({ config: { Env: ['A=1', 'B=2'] }, created: 'x' }, { config: { Env: ['A=1', 'B=3'] }, created: 'x' })).toEqual(['config.Env[1]']);
    expect(jsonDifferences({ a: 1 }, { a: 1 })).toEqual([]);
  });
});
