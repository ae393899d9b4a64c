/**
 * `machine image --base-tar`: the Debian riscv64 base for `build --machine` (FROM scratch + ADD rootfs.tar),
 * recorded from the Debian mirror through the oracle, then rebuilt offline from its netlock byte-identical.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IN_CI, machineImageProblem } from '../helpers/machine-image.ts';
import { cli, run, tempDir } from '../helpers/run.ts';
import type { RunResult } from '../helpers/run.ts';

const problem = await machineImageProblem();
const explain = (r: RunResult): string => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr.split('\n').slice(-30).join('\n')}`;
const sha256Of = (r: RunResult): string => /^sha256: ([0-9a-f]{64})$/m.exec(r.stdout)?.[1] ?? '';

describe.skipIf(problem !== undefined && !IN_CI)(`machine image --base-tar${problem === undefined ? '' : ` [skipped: ${problem}]`}`, () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    if (problem !== undefined) throw new Error(`machine image needs its tools and the Debian mirror under CI: ${problem}`);
    dir = await tempDir('fo-base-tar-');
  });
  afterAll(async () => {
    await dir?.remove();
  });

  it('records a riscv64 Debian base tar with apt, dpkg status, passwd and apt sources, and rebuilds it offline byte-identical', async () => {
    const data = join(dir.path, 'data');
    const out = join(dir.path, 'rec', 'rootfs.tar');
    const netlock = join(dir.path, 'base.netlock.json');
    const rec = await cli(['machine', 'image', '--base-tar', '--out', out, '--netlock', netlock, '--data', data], { timeoutMs: 600_000 });
    expect(rec.code, explain(rec)).toBe(0);
    expect(rec.stdout).toContain(`base tar: ${out}`);
    const list = await run('tar', ['-t', '-v', '--numeric-owner', '-f', out]);
    expect(list.code).toBe(0);
    for (const path of ['./usr/bin/apt-get', './usr/bin/dpkg', './usr/bin/curl', './etc/passwd', './etc/group', './var/lib/dpkg/status', './etc/apt/sources.list.d/debian.sources', './usr/share/keyrings/debian-archive-keyring.pgp']) {
      expect(list.stdout).toContain(` ${path}\n`);
    }
    expect(list.stdout).toMatch(/^l\S+ 0\/0 +0 1970-01-01 00:00 \.\/bin -> usr\/bin$/m); // merged /usr, every time the epoch
    const passwd = await run('tar', ['-x', '-O', '-f', out, './etc/passwd']);
    expect(passwd.stdout).toMatch(/^root:[x*]:0:0:root:\/root:/);
    // Slim, as Debian's -slim images: no manuals or docs but the copyright files, and dpkg and apt told so.
    expect(list.stdout).toContain(' ./usr/share/doc/apt/copyright\n');
    expect(list.stdout).not.toMatch(/ \.\/usr\/share\/(man|info)\/\S/);
    expect(list.stdout).not.toMatch(/ \.\/usr\/share\/doc\/[^/\s]+\/(?!copyright\n)\S/);
    const excludes = await run('tar', ['-x', '-O', '-f', out, './etc/dpkg/dpkg.cfg.d/fetch-oracle-slim']);
    expect(excludes.stdout).toContain('path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\n');
    const aptClean = await run('tar', ['-x', '-O', '-f', out, './etc/apt/apt.conf.d/fetch-oracle-clean']);
    expect(aptClean.stdout).toContain('Dir::Cache::pkgcache "";');

    const again = join(dir.path, 'rep', 'rootfs.tar');
    const rep = await cli(['machine', 'image', '--base-tar', '--out', again, '--replay', netlock, '--data', data], { timeoutMs: 600_000 });
    expect(rep.code, explain(rep)).toBe(0);
    expect(sha256Of(rep)).toMatch(/^[0-9a-f]{64}$/);
    expect(sha256Of(rep)).toBe(sha256Of(rec));
  }, 1_200_000);
});
