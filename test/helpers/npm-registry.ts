import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Origin } from './origin.ts';
import { run } from './run.ts';

export interface FakePackage {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
}

/**
 * (npm's CONNECT agent checks an IP-literal registry's certificate against `localhost`, so tests name the
 * registry `localhost`: pass that URL as `baseUrl`.)
 *
 * Makes `origin` behave like the npm registry for a few packages: a packument per name (full document and the
 * abbreviated `application/vnd.npm.install-v1+json` one) and real gzipped tarballs with sha512 integrity.
 */
export async function serveNpmPackages(origin: Origin, workDir: string, packages: FakePackage[], baseUrl = origin.url): Promise<void> {
  for (const pkg of packages) {
    const dir = join(workDir, `${pkg.name}-${pkg.version}`, 'package');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: pkg.name, version: pkg.version, main: 'index.js', dependencies: pkg.dependencies ?? {} }));
    await writeFile(join(dir, 'index.js'), `module.exports = ${JSON.stringify(`${pkg.name}@${pkg.version}`)};\n`);
    const tgz = join(workDir, `${pkg.name}-${pkg.version}.tgz`);
    const r = await run('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-czf', tgz, '-C', join(dir, '..'), 'package']);
    if (r.code !== 0) throw new Error(`tar failed: ${r.stderr}`);
    const bytes = await readFile(tgz);
    const tarballPath = `/${pkg.name}/-/${pkg.name}-${pkg.version}.tgz`;
    const version = {
      name: pkg.name,
      version: pkg.version,
      dependencies: pkg.dependencies ?? {},
      dist: {
        tarball: `${baseUrl}${tarballPath}`,
        integrity: `sha512-${createHash('sha512').update(bytes).digest('base64')}`,
        shasum: createHash('sha1').update(bytes).digest('hex'),
      },
    };
    const full = { name: pkg.name, 'dist-tags': { latest: pkg.version }, versions: { [pkg.version]: version }, time: { [pkg.version]: '2024-01-01T00:00:00.000Z' } };
    const abbreviated = { name: pkg.name, 'dist-tags': { latest: pkg.version }, versions: { [pkg.version]: version }, modified: '2024-01-01T00:00:00.000Z' };
    origin.route(`/${pkg.name}`, (req, res) => {
      const corgi = (req.headers.accept ?? '').includes('application/vnd.npm.install-v1+json');
      res.writeHead(200, { 'content-type': corgi ? 'application/vnd.npm.install-v1+json' : 'application/json' });
      res.end(JSON.stringify(corgi ? abbreviated : full));
    });
    origin.route(tarballPath, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(bytes.byteLength) });
      res.end(bytes);
    });
  }
}

/**
 * A project's package.json and its v3 package-lock.json (`resolved` + sha512 `integrity`, as npm writes them)
 * for packages `serveNpmPackages` made in `workDir`, served at `registry`.
 */
export async function npmProject(workDir: string, packages: FakePackage[], registry: string, dependencies: Record<string, string>): Promise<{ packageJson: string; lockJson: string }> {
  const lock: Record<string, unknown> = { '': { name: 'proj', version: '1.0.0', dependencies } };
  for (const p of packages) {
    const tgz = await readFile(join(workDir, `${p.name}-${p.version}.tgz`));
    lock[`node_modules/${p.name}`] = {
      version: p.version,
      resolved: `${registry}/${p.name}/-/${p.name}-${p.version}.tgz`,
      integrity: `sha512-${createHash('sha512').update(tgz).digest('base64')}`,
      ...(p.dependencies === undefined ? {} : { dependencies: p.dependencies }),
    };
  }
  return {
    packageJson: JSON.stringify({ name: 'proj', version: '1.0.0', dependencies }, null, 2),
    lockJson: JSON.stringify({ name: 'proj', version: '1.0.0', lockfileVersion: 3, requires: true, packages: lock }, null, 2),
  };
}
