import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, replayScript, reportPath, startRecording } from '../helpers/client-session.ts';
import type { ReplayReport } from '../helpers/client-session.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { run, tempDir } from '../helpers/run.ts';

/**
 * Real apt (apt-get update + apt-get download) against a local Debian-style repository over plain HTTP:
 * through `fetch-oracle record`, then inside a loopback-only network namespace (`unshare -n`) through
 * `fetch-oracle replay`. apt runs with an APT_CONFIG of its own (no /etc/apt/apt.conf.d hooks, private
 * lists/cache/status directories, no locking): nothing touches the machine's real apt state.
 */

const PKG = 'fo-apt-demo';
const VERSION = '1.0.0';
const DEB = `${PKG}_${VERSION}_all.deb`;
const POOL = `pool/main/f/${PKG}/${DEB}`;
const hash = (alg: 'md5' | 'sha256', b: Buffer): string => createHash(alg).update(b).digest('hex');

/** The Release file apt-ftparchive would write: checksums of every index file, relative to `dists/stable/`. */
function releaseFile(arch: string, files: Record<string, Buffer>): string {
  const sums = (alg: 'md5' | 'sha256'): string => Object.entries(files).map(([name, b]) => ` ${hash(alg, b)} ${String(b.byteLength).padStart(8)} ${name}\n`).join('');
  return [
    'Origin: fetch-oracle-test\n',
    'Label: fetch-oracle-test\n',
    'Suite: stable\n',
    'Codename: stable\n',
    `Date: ${new Date(Date.now() - 3600_000).toUTCString()}\n`,
    `Architectures: ${arch}\n`,
    'Components: main\n',
    'Description: fetch-oracle apt client test repository\n',
    `MD5Sum:\n${sums('md5')}`,
    `SHA256:\n${sums('sha256')}`,
  ].join('');
}

describe('apt-get update + download through fetch-oracle (HTTP Debian repository, record then offline replay in unshare -n)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let origin: Origin;
  let data: string;
  let netlock: string;
  let arch: string;
  let deb: Buffer;
  let repo: string;
  let recorded = false;
  const env = (): NodeJS.ProcessEnv => cleanEnv(dir.path, { DEBIAN_FRONTEND: 'noninteractive' });

  /** A private apt root under `root`: its own APT_CONFIG, sources list, lists, cache and (empty) dpkg status. */
  async function aptRoot(root: string): Promise<{ config: string; lists: string }> {
    const etc = join(root, 'etc');
    for (const d of ['etc/apt.conf.d', 'etc/preferences.d', 'etc/trusted.gpg.d', 'etc/sources.list.d', 'lists/partial', 'cache/archives/partial', 'log', 'download']) {
      await mkdir(join(root, d), { recursive: true });
    }
    await writeFile(join(root, 'status'), '');
    await writeFile(join(etc, 'sources.list'), `deb [trusted=yes] ${repo} stable main\n`);
    // Read before /etc/apt/apt.conf.d (APT_CONFIG comes first and re-points Dir::Etc::parts), so none of the
    // machine's hooks (docker-clean, Post-Invoke…) run and no real state directory is named.
    const config = join(root, 'apt.conf');
    await writeFile(
      config,
      [
        `Dir::Etc "${etc}/";`,
        'Dir::Etc::main "apt.conf";',
        'Dir::Etc::parts "apt.conf.d";',
        'Dir::Etc::sourcelist "sources.list";',
        'Dir::Etc::sourceparts "sources.list.d";',
        'Dir::Etc::preferences "preferences";',
        'Dir::Etc::preferencesparts "preferences.d";',
        'Dir::Etc::trusted "trusted.gpg";',
        'Dir::Etc::trustedparts "trusted.gpg.d";',
        `Dir::State "${root}/";`,
        'Dir::State::lists "lists/";',
        `Dir::State::status "${root}/status";`,
        `Dir::Cache "${root}/cache/";`,
        `Dir::Log "${root}/log/";`,
        'Debug::NoLocking "1";',
        'APT::Sandbox::User "root";',
        `APT::Architecture "${arch}";`,
        `APT::Architectures { "${arch}"; };`,
        'Acquire::Languages "none";',
        'Acquire::Retries "0";',
        '',
      ].join('\n'),
    );
    return { config, lists: join(root, 'lists') };
  }

  const aptArgs = (proxy: string): string[] => ['-q', '-o', `Acquire::http::Proxy=${proxy}/`, '-o', 'Dir::Etc::SourceParts=/dev/null'];

  beforeAll(async () => {
    dir = await tempDir('fo-apt-');
    data = join(dir.path, 'data');
    netlock = join(dir.path, 'apt.netlock.json');
    const a = await run('dpkg', ['--print-architecture']);
    expect(a.code, a.stderr).toBe(0);
    arch = a.stdout.trim();

    // A tiny real .deb: DEBIAN/control plus one file.
    const src = join(dir.path, 'pkg-src');
    await mkdir(join(src, 'DEBIAN'), { recursive: true });
    await mkdir(join(src, 'usr', 'share', PKG), { recursive: true });
    await writeFile(join(src, 'usr', 'share', PKG, 'hello.txt'), 'hello from the fetch-oracle apt test\n');
    await writeFile(
      join(src, 'DEBIAN', 'control'),
      `Package: ${PKG}\nVersion: ${VERSION}\nArchitecture: all\nMaintainer: fetch-oracle tests <tests@example.invalid>\nSection: misc\nPriority: optional\nDescription: fetch-oracle apt client test package\n A one-file package served by a local test repository.\n`,
    );
    const debPath = join(dir.path, DEB);
    const built = await run('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', src, debPath], { env: { ...env(), SOURCE_DATE_EPOCH: '1577836800' } });
    expect(built.code, built.stderr).toBe(0);
    deb = await readFile(debPath);
    const control = await run('dpkg-deb', ['-f', debPath], { env: env() });
    expect(control.code, control.stderr).toBe(0);

    // dists/stable/main/binary-ARCH/Packages(.gz) and dists/stable/Release, as apt-ftparchive would write them.
    const packages = Buffer.from(`${control.stdout.trimEnd()}\nFilename: ${POOL}\nSize: ${deb.byteLength}\nMD5sum: ${hash('md5', deb)}\nSHA256: ${hash('sha256', deb)}\n\n`);
    const packagesGz = gzipSync(packages, { level: 9 });
    const indexDir = `main/binary-${arch}`;
    const release = Buffer.from(releaseFile(arch, { [`${indexDir}/Packages`]: packages, [`${indexDir}/Packages.gz`]: packagesGz }));

    origin = await startOrigin();
    repo = `${origin.url}/debian`;
    const files: Record<string, Buffer> = {
      [`/debian/dists/stable/Release`]: release,
      [`/debian/dists/stable/${indexDir}/Packages`]: packages,
      [`/debian/dists/stable/${indexDir}/Packages.gz`]: packagesGz,
      [`/debian/${POOL}`]: deb,
    };
    for (const [path, body] of Object.entries(files)) {
      origin.route(path, (_q, r) => {
        r.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.byteLength), 'last-modified': 'Wed, 01 Jan 2020 00:00:00 GMT' });
        r.end(body);
      });
    }
  }, 60_000);

  afterAll(async () => {
    await origin?.close();
    await dir?.remove();
  });

  it('records apt-get update and apt-get download: each repository URL is fetched upstream exactly once', async () => {
    const root = join(dir.path, 'apt-record');
    const apt = await aptRoot(root);
    const rec = await startRecording({ data, netlock, home: dir.path, extraEnv: { DEBIAN_FRONTEND: 'noninteractive' } });
    const aptEnv = { ...env(), APT_CONFIG: apt.config };
    try {
      // The private configuration really is private: no hook or state path of the machine's apt survives.
      const dump = await run('apt-config', ['dump'], { env: aptEnv });
      expect(dump.stdout).not.toMatch(/Post-Invoke|\/var\/lib\/apt|\/var\/cache\/apt|\/etc\/apt\//);

      for (let i = 0; i < 2; i++) {
        const up = await run('apt-get', [...aptArgs(rec.daemon.url), '--error-on=any', 'update'], { env: aptEnv });
        expect(up.code, `${up.stdout}\n${up.stderr}\n${rec.daemon.stderr()}`).toBe(0);
        expect(up.stderr).not.toMatch(/^(E|W):/m);
      }
      const dl = await run('apt-get', [...aptArgs(rec.daemon.url), 'download', PKG], { env: aptEnv, cwd: join(root, 'download') });
      expect(dl.code, `${dl.stdout}\n${dl.stderr}\n${rec.daemon.stderr()}`).toBe(0);
      expect(hash('sha256', await readFile(join(root, 'download', DEB)))).toBe(hash('sha256', deb));

      // apt went through the proxy (the origin saw it) and the recorder fetched every URL once, although
      // apt-get update ran twice (the second run's answers came from the record).
      expect(origin.hits.get(`/debian/dists/stable/Release`)).toBe(1);
      expect(origin.hits.get(`/debian/${POOL}`)).toBe(1);
      for (const [path, n] of origin.hits) expect(n, path).toBe(1);
      const stats = (await (await fetch(`${rec.daemon.admin!}/stats`)).json()) as { upstreamFetches: number };
      expect(stats.upstreamFetches).toBe(origin.hits.size);
    } finally {
      expect(await rec.daemon.stop('SIGTERM')).toBe(0);
    }
    const file = JSON.parse(await readFile(netlock, 'utf8')) as { entries: Array<{ url: string; status: number }> };
    // apt 2.6: InRelease (404), Release, Release.gpg (404), the compressed index, the package. The 404s are
    // recorded like any other answer, so replay gives apt the same "no signature, trusted=yes" path.
    expect(file.entries.map((e) => `${e.status} ${e.url}`).sort()).toEqual(
      [
        `404 ${repo}/dists/stable/InRelease`,
        `200 ${repo}/dists/stable/Release`,
        `404 ${repo}/dists/stable/Release.gpg`,
        `200 ${repo}/dists/stable/main/binary-${arch}/Packages.gz`,
        `200 ${repo}/${POOL}`,
      ].sort(),
    );
    recorded = true;
  }, 60_000);

  it('replays offline in unshare -n: same index files, a byte-identical .deb dpkg-deb can read, and no request reaches the origin', async () => {
    expect(recorded, 'the recording test must pass first').toBe(true);
    const root = join(dir.path, 'apt-replay');
    const apt = await aptRoot(root);
    const proxy = 'http://127.0.0.1:8899';
    const args = aptArgs(proxy).join(' ');
    const body = `
export APT_CONFIG='${apt.config}'
apt-get ${args} --error-on=any update >'${root}/update.log' 2>&1; echo "update rc=$?"
apt-get ${args} --error-on=any update >'${root}/update2.log' 2>&1; echo "update2 rc=$?"
apt-cache show ${PKG} >'${root}/show.log' 2>&1; echo "show rc=$?"
(cd '${root}/download' && apt-get ${args} download ${PKG}) >'${root}/download.log' 2>&1; echo "download rc=$?"
`;
    const hits = new Map(origin.hits);
    const script = replayScript({ netlock, data, workDir: root, body, probe: `${repo}/dists/stable/Release` });
    const r = await run('unshare', ['-n', 'bash', '-c', script], { env: env(), timeoutMs: 60_000 });
    const log = async (name: string): Promise<string> => readFile(join(root, name), 'utf8').catch(() => `(no ${name})`);
    const context = `${r.stdout}\n${r.stderr}\n${await log('replay.err')}`;
    expect(r.code, context).toBe(0);
    expect(r.stdout, context).toContain('direct rc=7'); // the origin is unreachable in the namespace

    expect(r.stdout, `${context}\n${await log('update.log')}`).toContain('update rc=0');
    expect(await log('update.log')).not.toMatch(/^(E|W):/m);
    // A second update sends If-Modified-Since for what it already has: replay answers it from the record (Hit).
    expect(r.stdout, await log('update2.log')).toContain('update2 rc=0');
    expect(await log('update2.log')).toMatch(/^Hit:\d+ \S+ stable Release$/m);
    // The index files apt stored are the recorded ones, byte for byte.
    const recordLists = join(dir.path, 'apt-record', 'lists');
    const indexFiles = async (d: string): Promise<string[]> =>
      (await readdir(d, { withFileTypes: true })).filter((e) => e.isFile() && e.name !== 'lock').map((e) => e.name).sort();
    const names = await indexFiles(apt.lists);
    expect(names).toEqual(await indexFiles(recordLists));
    expect(names.some((n) => n.endsWith('_Packages'))).toBe(true);
    expect(names.some((n) => n.endsWith('_Release'))).toBe(true);
    for (const n of names) expect(await readFile(join(apt.lists, n)), n).toEqual(await readFile(join(recordLists, n)));

    expect(r.stdout, await log('show.log')).toContain('show rc=0');
    expect(await log('show.log')).toContain(`SHA256: ${hash('sha256', deb)}`);

    expect(r.stdout, `${context}\n${await log('download.log')}`).toContain('download rc=0');
    const replayed = await readFile(join(root, 'download', DEB));
    expect(hash('sha256', replayed)).toBe(hash('sha256', deb));
    const info = await run('dpkg-deb', ['-I', join(root, 'download', DEB)], { env: env() });
    expect(info.code, info.stderr).toBe(0);
    expect(info.stdout).toContain(`Package: ${PKG}`);
    expect(info.stdout).toContain(`Version: ${VERSION}`);
    const contents = await run('dpkg-deb', ['-c', join(root, 'download', DEB)], { env: env() });
    expect(contents.stdout).toContain(`./usr/share/${PKG}/hello.txt`);

    // Everything came from the record: no miss, every recorded entry used, the origin saw nothing new.
    expect(r.stdout).toContain('replay rc=0');
    expect(await log('replay.err')).not.toContain('replay miss');
    const report = JSON.parse(await readFile(reportPath(root), 'utf8')) as ReplayReport;
    expect(report.misses).toEqual([]);
    expect(report.unused).toEqual([]);
    expect(report.used).toBe(report.entries);
    expect(origin.hits).toEqual(hits);
  }, 60_000);
});
