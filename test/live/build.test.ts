import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fetchOracleRun } from '../helpers/fetch-oracle-run.ts';
import { ROOT, run, tempDir } from '../helpers/run.ts';

/**
 * Live: `fetch-oracle build --check` against the real Debian mirror, both for the base (debootstrap
 * --variant=minbase through `fetch-oracle run`) and inside the Dockerfile (apt-get install from the real
 * bookworm archive over HTTP, curl of a real file over HTTPS through the intercepting oracle). CI does not
 * depend on the public network: set FETCH_ORACLE_LIVE=1 to run it (about 5 minutes on 2 cores).
 */
const MIRROR = 'http://deb.debian.org/debian';

describe.skipIf(process.env['FETCH_ORACLE_LIVE'] !== '1')('live: build --check against the real Debian mirror (FETCH_ORACLE_LIVE=1)', () => {
  it('records debootstrap, builds a Dockerfile that apt-get installs `hello` and curls a file over HTTPS, and rebuilds it offline to the same image ID', async () => {
    const dir = await tempDir('fo-live-build-');
    try {
      const env = { PATH: process.env['PATH'] ?? '', HOME: dir.path, LANG: 'C.UTF-8', DEBIAN_FRONTEND: 'noninteractive' };
      const data = join(dir.path, 'data');
      const rootfs = join(dir.path, 'rootfs');
      const base = await fetchOracleRun(['--data', data, '--netlock', join(dir.path, 'base.netlock.json'), '--', 'debootstrap', '--variant=minbase', '--include=curl,ca-certificates', 'bookworm', rootfs, MIRROR], { env, cwd: dir.path, timeoutMs: 900_000 });
      expect(base.code, base.stderr.slice(-3000)).toBe(0);
      const ctx = join(dir.path, 'ctx');
      await mkdir(ctx);
      const tar = await run('tar', ['--sort=name', '--mtime=@0', '--numeric-owner', '--exclude=./var/log/*', '--exclude=./var/cache/ldconfig/aux-cache', '-C', rootfs, '-cf', join(ctx, 'rootfs.tar'), '.'], { timeoutMs: 300_000 });
      expect(tar.code, tar.stderr).toBe(0);
      await writeFile(
        join(ctx, 'Dockerfile'),
        `FROM scratch
ADD rootfs.tar /
RUN apt-get update && apt-get install -y hello && hello
RUN curl -fsS https://deb.debian.org/debian/dists/bookworm/Release | sha256sum > /release.sha256
`,
      );
      const report = join(dir.path, 'check.json');
      const netlock = join(dir.path, 'build.netlock.json');
      const r = await run(process.execPath, [join(ROOT, 'bin', 'fetch-oracle.js'), 'build', '--check', '--scrub', 'debian', '--data', data, '--storage', join(dir.path, 'storage'), '--netlock', netlock, '--report', report, ctx], { env, cwd: dir.path, timeoutMs: 1_200_000 });
      expect(r.code, r.stderr.slice(-5000)).toBe(0);
      expect(r.stdout.trim()).toMatch(/^sha256:[0-9a-f]{64}$/);
      const json = JSON.parse(await readFile(report, 'utf8')) as { reproducible: boolean; replay: { replay: { misses: unknown[] } } };
      expect(json.reproducible).toBe(true);
      expect(json.replay.replay.misses).toEqual([]);
      const urls = (JSON.parse(await readFile(netlock, 'utf8')) as { entries: Array<{ url: string }> }).entries.map((e) => e.url);
      expect(urls.some((u) => /\/pool\/main\/h\/hello\/hello_[^/]+\.deb$/.test(u))).toBe(true);
      expect(urls).toContain('https://deb.debian.org/debian/dists/bookworm/Release');
    } finally {
      await dir.remove();
    }
  }, 1_800_000);
});
