import { mkdir, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AbortedError, ImageBuildError } from '../../src/errors.ts';
import { buildMachineImage } from '../../src/machine/rootfs/build-image.ts';
import { writeExt2 } from '../../src/machine/rootfs/ext2.ts';
import { parsePackages } from '../../src/cli/machine-image.ts';
import { unknownPackages } from '../../src/machine/rootfs/apt.ts';
import { findImageTools } from '../../src/machine/rootfs/tools.ts';
import { cliInProcess } from '../helpers/cli-in-process.ts';
import { IN_CI, machineImageProblem, TEST_IMAGE_TIMEOUT_MS, testMachineImage } from '../helpers/machine-image.ts';
import type { TestMachineImage } from '../helpers/machine-image.ts';
import { tempDir } from '../helpers/run.ts';

const problem = await machineImageProblem();

describe('fetch-oracle machine image: bad input (no build)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    dir = await tempDir('fo-image-usage-');
  });
  afterAll(async () => dir.remove());

  it('refuses a command line it cannot build from, exit 2, naming the flag', async () => {
    const out = join(dir.path, 'x.ext2');
    const cases: Array<[string[], RegExp]> = [
      [[], /needs --out FILE/],
      [['--out', out, '--packages', 'curl,--allow-unauthenticated'], /"--allow-unauthenticated" is not a Debian package name/],
      [['--out', out, '--packages', 'Curl'], /"Curl" is not a Debian package name/],
      [['--out', out, '--trust', 'ab'.repeat(32)], /--trust is a replay option/],
      [['--out', out, '--replay', 'x.json', '--netlock', 'y.json'], /--netlock is a record option/],
      [['--out', out, '--epoch=-1'], /--epoch expects a whole number/],
      [['--out', out, '--epoch', String(2 ** 32)], /--epoch expects a whole number from 0 to 4294967295/],
      [['--out', out, '--free-mib', 'lots'], /--free-mib expects a whole number/],
      [['--out', out, '--mirror', 'ftp://example.org/debian'], /--mirror expects an http/],
      [['--out', out, '--suite', 'trixie main'], /--suite expects a Debian suite/],
    ];
    for (const [args, message] of cases) {
      const r = await cliInProcess(['machine', 'image', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
    await expect(stat(out)).rejects.toThrow(/ENOENT/);
  });

  it('does nothing with an already-aborted signal', async () => {
    const out = join(dir.path, 'aborted.ext2');
    const guest = { shim: '/nonexistent', cmioHelper: '/nonexistent', init: '/nonexistent' };
    const init = { out, packages: [], oracle: { mode: 'record' as const, netlockPath: join(dir.path, 'aborted.netlock.json') }, dataDir: join(dir.path, 'data'), guest, builderVersion: '0' };
    await expect(buildMachineImage(init, { signal: AbortSignal.abort() })).rejects.toThrow(AbortedError);
    await expect(writeExt2({ tools: findImageTools(), root: dir.path, out, epoch: 0, freeMiB: 0 }, { signal: AbortSignal.abort() })).rejects.toThrow(AbortedError);
    await expect(stat(out)).rejects.toThrow(/ENOENT/);
    await expect(stat(join(dir.path, 'aborted.netlock.json'))).rejects.toThrow(/ENOENT/);
  });

  it('splits --packages on commas and white space', () => {
    expect(parsePackages(['npm, python3-pip', 'jq  curl=8.14.1-2+deb13u7'])).toEqual(['npm', 'python3-pip', 'jq', 'curl=8.14.1-2+deb13u7']);
  });

  it('reads the names apt could not find from its error lines', () => {
    const out = "E: Unable to locate package no-such-pkg\nE: Package 'gone' has no installation candidate\nE: Unable to locate package other\n";
    expect(unknownPackages(out)).toEqual(['no-such-pkg', 'gone', 'other']);
  });

  it('names every missing program and the Debian package to install for it (exit 125 from the command)', async () => {
    const bin = join(dir.path, 'bin');
    await mkdir(bin);
    await symlink('/usr/bin/apt-get', join(bin, 'apt-get')); // one present, the others not
    let err: unknown;
    try {
      findImageTools({ env: { PATH: bin }, extraDirs: [], keyring: join(dir.path, 'no-keyring.gpg') });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ImageBuildError);
    const message = (err as Error).message;
    for (const [program, pkg] of [['dpkg-deb', 'dpkg'], ['mke2fs', 'e2fsprogs'], ['qemu-riscv64-static', 'qemu-user-static'], ['tar', 'tar']]) {
      expect(message).toContain(`${program} (`);
      expect(message).toContain(`Debian package ${pkg})`);
    }
    expect(message).toContain('debian-archive-keyring');
    expect(message).not.toMatch(/^\s+apt-get \(/m);
    expect(message).toMatch(/sudo apt-get install .*e2fsprogs.*qemu-user-static/);

    const r = await cliInProcess(['machine', 'image', '--out', join(dir.path, 'x.ext2'), '--guest-dir', join(dir.path, 'no-guest')]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain('bash guest/build.sh all');
  });
});

describe.skipIf(problem !== undefined && !IN_CI)(`fetch-oracle machine image: bad packages, offline${problem === undefined ? '' : ` [skipped: ${problem}]`}`, () => {
  let fixture: TestMachineImage;
  let dir: Awaited<ReturnType<typeof tempDir>>;

  beforeAll(async () => {
    if (problem !== undefined) throw new Error(`${problem}; CI must run this file, so it fails instead of skipping`);
    dir = await tempDir('fo-image-inputs-');
    fixture = await testMachineImage({ packages: [] }); // the default packages: their index is what matters here
  }, TEST_IMAGE_TIMEOUT_MS);
  afterAll(async () => dir?.remove());

  const image = (name: string, ...args: string[]): Promise<Awaited<ReturnType<typeof cliInProcess>>> =>
    cliInProcess(['machine', 'image', '--out', join(dir.path, name), '--replay', fixture.netlock, '--data', fixture.dataDir, ...args]);

  it('names a package that is not in the (replayed) Debian index, and writes no image', async () => {
    const r = await image('unknown.ext2', '--packages', 'curl,no-such-package-fo');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ORACLE_ERR_INVALID_CONFIG: --packages: "no-such-package-fo": no such package in Debian trixie riscv64');
    await expect(stat(join(dir.path, 'unknown.ext2'))).rejects.toThrow(/ENOENT/);
  }, 120_000);

  it('fails a replay whose netlock lacks a package with the miss explained, and writes no image', async () => {
    // jq is in Debian's index (recorded) but its .deb, and its libraries', are not in the netlock.
    const r = await image('miss.ext2', '--packages', 'jq');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ORACLE_ERR_REPLAY_MISS');
    expect(r.stderr).toMatch(/MISS GET http:\/\/deb\.debian\.org\/debian\/pool\/main\/j\/jq\/jq_[^ ]+_riscv64\.deb/);
    expect(r.stderr).toMatch(/nearest recorded: GET http:\/\/deb\.debian\.org\/debian\/pool\//);
    expect(r.stderr).toContain('without --replay');
    await expect(stat(join(dir.path, 'miss.ext2'))).rejects.toThrow(/ENOENT/);
  }, 120_000);
});
