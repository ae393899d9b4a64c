import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Origin } from './origin.ts';
import { run } from './run.ts';

/**
 * A local Debian-style repository (`deb [trusted=yes] URL stable main`) served by a test origin: one real
 * `Architecture: all` package built with dpkg-deb, its Packages/Packages.gz index and a Release file with the
 * checksums apt-ftparchive would write (the same layout as test/clients/apt.test.ts uses).
 */

const hash = (alg: 'md5' | 'sha256', b: Buffer): string => createHash(alg).update(b).digest('hex');

export interface DebianRepo {
  /** `http://127.0.0.1:PORT/debian` */
  url: string;
  pkg: string;
  version: string;
  /** The .deb as served. */
  deb: Buffer;
  /** Path of the one file the package installs, and its content. */
  file: { path: string; content: string };
}

/** Builds the package in `workDir` and routes the repository on `origin` under /debian. */
export async function serveDebianRepo(origin: Origin, workDir: string, init: { pkg: string; version?: string; archs: readonly string[] }): Promise<DebianRepo> {
  const pkg = init.pkg;
  const version = init.version ?? '1.0.0';
  const src = join(workDir, `${pkg}-src`);
  const content = `hello from ${pkg} ${version}\n`;
  const filePath = `/usr/share/${pkg}/hello.txt`;
  await mkdir(join(src, 'DEBIAN'), { recursive: true });
  await mkdir(join(src, 'usr', 'share', pkg), { recursive: true });
  await writeFile(join(src, filePath), content);
  await writeFile(
    join(src, 'DEBIAN', 'control'),
    `Package: ${pkg}\nVersion: ${version}\nArchitecture: all\nMaintainer: fetch-oracle tests <tests@example.invalid>\nSection: misc\nPriority: optional\nDescription: fetch-oracle test package\n A one-file package served by a local test repository.\n`,
  );
  const debFile = `${pkg}_${version}_all.deb`;
  const debPath = join(workDir, debFile);
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', SOURCE_DATE_EPOCH: '1577836800' };
  const built = await run('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', src, debPath], { env });
  if (built.code !== 0) throw new Error(`dpkg-deb --build failed: ${built.stderr}`);
  const deb = await readFile(debPath);
  const control = await run('dpkg-deb', ['-f', debPath], { env });
  if (control.code !== 0) throw new Error(`dpkg-deb -f failed: ${control.stderr}`);
  const pool = `pool/main/${pkg[0]}/${pkg}/${debFile}`;
  const packages = Buffer.from(`${control.stdout.trimEnd()}\nFilename: ${pool}\nSize: ${deb.byteLength}\nMD5sum: ${hash('md5', deb)}\nSHA256: ${hash('sha256', deb)}\n\n`);
  const packagesGz = gzipSync(packages, { level: 9 });
  const files: Record<string, Buffer> = { [`/debian/${pool}`]: deb };
  const indexes: Record<string, Buffer> = {};
  for (const arch of init.archs) {
    indexes[`main/binary-${arch}/Packages`] = packages;
    indexes[`main/binary-${arch}/Packages.gz`] = packagesGz;
  }
  const sums = (alg: 'md5' | 'sha256'): string => Object.entries(indexes).map(([name, b]) => ` ${hash(alg, b)} ${String(b.byteLength).padStart(8)} ${name}\n`).join('');
  // A fixed Date: the Release file (and so the recorded bytes) is the same on every test run.
  const release = [
    'Origin: fetch-oracle-test\n',
    'Label: fetch-oracle-test\n',
    'Suite: stable\n',
    'Codename: stable\n',
    'Date: Wed, 01 Jan 2020 00:00:00 UTC\n',
    `Architectures: ${init.archs.join(' ')}\n`,
    'Components: main\n',
    'Description: fetch-oracle test repository\n',
    `MD5Sum:\n${sums('md5')}`,
    `SHA256:\n${sums('sha256')}`,
  ].join('');
  files['/debian/dists/stable/Release'] = Buffer.from(release);
  for (const [name, body] of Object.entries(indexes)) files[`/debian/dists/stable/${name}`] = body;
  for (const [path, body] of Object.entries(files)) {
    origin.route(path, (_q, r) => {
      r.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.byteLength), 'last-modified': 'Wed, 01 Jan 2020 00:00:00 GMT' });
      r.end(body);
    });
  }
  return { url: `${origin.url}/debian`, pkg, version, deb, file: { path: filePath, content } };
}
