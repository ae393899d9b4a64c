import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv } from '../helpers/client-session.ts';
import { fetchOracleRun } from '../helpers/fetch-oracle-run.ts';
import { npmProject, serveNpmPackages } from '../helpers/npm-registry.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { buildWheel, serveCargoCrate, serveGoModule, serveSimpleIndex } from '../helpers/package-origins.ts';
import { run, tempDir } from '../helpers/run.ts';
import { createTestCa } from '../helpers/test-ca.ts';
import { seedCli } from './seed-helpers.ts';
import type { NetlockJson } from './seed-helpers.ts';

/**
 * Seed, then build offline: each lockfile is seeded from a local registry-like origin (HTTPS, test CA), then
 * the real client (npm ci, pip install --require-hashes, cargo fetch, go mod download) runs with
 * `fetch-oracle run --replay NETLOCK` in a loopback-only network namespace (unshare -n), where the origin
 * cannot be reached. The client must succeed with no replay miss and no seeded request left unused, so
 * the seeded requests are exactly the ones the client makes (URL and Accept).
 */

interface ReplayReportJson {
  misses: Array<{ method: string; url: string; accept: string }>;
  unused: Array<{ method: string; url: string; accept: string }>;
  used: number;
  entries: number;
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('seed, then the real client offline against replay', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let data: string;
  let originCa: string;
  let tls: Origin;
  let python: string;
  const originHits = (): number => [...tls.hits.values()].reduce((a, b) => a + b, 0);

  beforeAll(async () => {
    dir = await tempDir('fo-seed-clients-');
    data = join(dir.path, 'data');
    const ca = await createTestCa();
    originCa = join(dir.path, 'origin-ca.pem');
    await writeFile(originCa, ca.caPem);
    // 0.0.0.0 for Go, which never proxies loopback names or addresses (see test/run/run.test.ts).
    tls = await startOrigin(await ca.leafFor(['127.0.0.1', 'localhost', '0.0.0.0']));
    const which = await run('python3', ['-c', 'import sys; print(sys.executable)']);
    expect(which.code, which.stderr).toBe(0);
    python = which.stdout.trim();
  }, 60_000);

  afterAll(async () => {
    await tls?.close();
    await dir?.remove();
  });

  /** Seeds `inputs`, then runs `command` offline against the netlock; returns the replay work directory. */
  async function seedThenReplay(name: string, init: {
    inputs: string[];
    seedArgs?: string[];
    setup: (work: string) => Promise<void>;
    command: (work: string) => string[];
    env?: (work: string) => NodeJS.ProcessEnv;
  }): Promise<{ work: string; netlock: NetlockJson; report: ReplayReportJson }> {
    const netlockPath = join(dir.path, name, 'seed.netlock.json');
    const seeded = await seedCli(['--netlock', netlockPath, '--upstream-ca', originCa, ...(init.seedArgs ?? []), ...init.inputs], { data });
    expect(seeded.code, seeded.stderr).toBe(0);
    const netlock = JSON.parse(await readFile(netlockPath, 'utf8')) as NetlockJson;
    const work = join(dir.path, name, 'replay');
    await mkdir(join(work, 'home'), { recursive: true });
    await init.setup(work);
    const reportPath = join(dir.path, name, 'report.json');
    const hits = originHits();
    const result = await fetchOracleRun(['--replay', netlockPath, '--data', data, '--report', reportPath, '--', ...init.command(work)], {
      env: { ...cleanEnv(join(work, 'home')), ...(init.env?.(work) ?? {}) },
      cwd: work,
      timeoutMs: 120_000,
    });
    const report = JSON.parse(await readFile(reportPath, 'utf8')) as ReplayReportJson;
    expect(result.code, `${name} replay: exit ${result.code}\n${result.stdout}\n${result.stderr}\nmisses: ${JSON.stringify(report.misses)}`).toBe(0);
    expect(report.misses).toEqual([]);
    expect(report.unused, 'every seeded request was one the client made').toEqual([]);
    expect(originHits(), 'nothing reached the origin during the replay').toBe(hits);
    return { work, netlock, report };
  }

  it('npm ci: package-lock.json seeded (tarballs, sha512 integrity) installs offline', async () => {
    const registry = tls.url.replace('127.0.0.1', 'localhost'); // npm checks an IP-literal registry's cert against "localhost"
    const pkgDir = join(dir.path, 'npm-packages');
    const packages = [
      { name: 'seed-left', version: '1.0.0', dependencies: { 'seed-right': '^2.0.0' } },
      { name: 'seed-right', version: '2.1.0' },
    ];
    await serveNpmPackages(tls, pkgDir, packages, registry);
    const { packageJson, lockJson } = await npmProject(pkgDir, packages, registry, { 'seed-left': '^1.0.0' });
    const project = join(dir.path, 'npm-project');
    await mkdir(project, { recursive: true });
    await writeFile(join(project, 'package-lock.json'), lockJson);
    const { work, netlock } = await seedThenReplay('npm', {
      inputs: [join(project, 'package-lock.json')],
      setup: async (w) => {
        await writeFile(join(w, 'package.json'), packageJson);
        await writeFile(join(w, 'package-lock.json'), lockJson);
      },
      command: (w) => ['npm', 'ci', '--no-audit', '--no-fund', '--cache', join(w, '.npm-cache'), '--registry', `${registry}/`],
      env: () => ({ npm_config_update_notifier: 'false' }),
    });
    expect(await readFile(join(work, 'node_modules', 'seed-right', 'index.js'), 'utf8')).toContain('seed-right@2.1.0');
    expect(netlock.entries.map((e) => `${e.url} ${e.accept}`).sort()).toEqual(packages.map((p) => `${registry}/${p.name}/-/${p.name}-${p.version}.tgz */*`).sort());
  }, 150_000);

  it('pip install --require-hashes: requirements.txt resolved through a PEP 503 index installs offline', async () => {
    const wheelName = 'forseeddemo-1.0.0-py3-none-any.whl';
    const wheel = await buildWheel(python, join(dir.path, wheelName), 'forseeddemo', '1.0.0');
    serveSimpleIndex(tls, 'forseeddemo', wheelName, wheel);
    const requirements = `--index-url ${tls.url}/simple/\n\nForSeedDemo==1.0.0 \\\n    --hash=sha256:${sha256(wheel)}\n`;
    const reqFile = join(dir.path, 'requirements.txt');
    await writeFile(reqFile, requirements);
    const { work, netlock } = await seedThenReplay('pip', {
      inputs: [reqFile],
      setup: (w) => writeFile(join(w, 'requirements.txt'), requirements),
      command: (w) => [python, '-m', 'pip', 'install', '--no-deps', '--require-hashes', '--no-cache-dir', '--retries', '0', '--timeout', '15', '--target', join(w, 'site'), '-r', join(w, 'requirements.txt')],
      env: () => ({ PIP_CONFIG_FILE: '/dev/null', PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1', PYTHONDONTWRITEBYTECODE: '1' }),
    });
    expect(await readFile(join(work, 'site', 'forseeddemo', '__init__.py'), 'utf8')).toContain("'1.0.0'");
    expect(netlock.entries.map((e) => e.url.replace(tls.url, '')).sort()).toEqual([`/files/${wheelName}`, '/simple/forseeddemo/']);
  }, 150_000);

  it('cargo fetch: Cargo.lock (crates.io replaced by a sparse registry) fetches offline', async () => {
    const rustup = await run('rustup', ['which', 'cargo']);
    const cargo = rustup.code === 0 ? rustup.stdout.trim() : 'cargo';
    const rustcWhich = await run('rustup', ['which', 'rustc']);
    const rustc = rustcWhich.code === 0 ? rustcWhich.stdout.trim() : 'rustc';
    const registry = tls.url.replace('127.0.0.1', 'localhost');
    const { indexUrl, crate } = await serveCargoCrate(tls, join(dir.path, 'cargo-registry'), { name: 'forseeddemo', version: '0.1.0' }, registry);
    const setupProject = async (w: string): Promise<void> => {
      await mkdir(join(w, 'app', 'src'), { recursive: true });
      await mkdir(join(w, 'cargo-home'), { recursive: true });
      await writeFile(join(w, 'app', 'Cargo.toml'), '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\nforseeddemo = "0.1"\n');
      await writeFile(join(w, 'app', 'src', 'main.rs'), 'fn main() {\n    println!("{}", forseeddemo::greeting());\n}\n');
      await writeFile(join(w, 'cargo-home', 'config.toml'), `[source.crates-io]\nreplace-with = "fo-local"\n\n[source.fo-local]\nregistry = "${indexUrl}"\n\n[http]\nmultiplexing = false\n\n[net]\nretry = 0\n`);
    };
    const cargoEnv = (w: string): NodeJS.ProcessEnv => ({ CARGO_HOME: join(w, 'cargo-home'), RUSTC: rustc, CARGO_TERM_COLOR: 'never' });
    // The repository's lockfile, made by cargo itself against the registry.
    const repo = join(dir.path, 'cargo-repo');
    await setupProject(repo);
    const gen = await run(cargo, ['generate-lockfile', '--manifest-path', join(repo, 'app', 'Cargo.toml')], { env: { ...cleanEnv(repo), ...cargoEnv(repo), CARGO_HTTP_CAINFO: originCa } });
    expect(gen.code, gen.stderr).toBe(0);
    const lock = await readFile(join(repo, 'app', 'Cargo.lock'), 'utf8');
    expect(lock).toContain('source = "registry+https://github.com/rust-lang/crates.io-index"');
    expect(lock).toContain(`checksum = "${sha256(crate)}"`);
    const { work, netlock } = await seedThenReplay('cargo', {
      inputs: [join(repo, 'app', 'Cargo.lock')],
      seedArgs: ['--cargo-index', indexUrl],
      setup: async (w) => {
        await setupProject(w);
        await writeFile(join(w, 'app', 'Cargo.lock'), lock);
      },
      command: (w) => [cargo, 'fetch', '--locked', '--manifest-path', join(w, 'app', 'Cargo.toml')],
      env: cargoEnv,
    });
    const cacheDirs = await readdir(join(work, 'cargo-home', 'registry', 'cache'));
    const cached = await readFile(join(work, 'cargo-home', 'registry', 'cache', cacheDirs[0]!, 'forseeddemo-0.1.0.crate'));
    expect(sha256(cached)).toBe(sha256(crate));
    expect(netlock.entries.map((e) => e.url.replace(registry, '')).sort()).toEqual(['/cargo/dl/forseeddemo/0.1.0/download', '/cargo/index/config.json', '/cargo/index/fo/rs/forseeddemo']);
  }, 150_000);

  it('go mod download: go.sum (zip and go.mod h1: dirhashes, made by go itself) downloads and verifies offline', async () => {
    const mod = { path: 'example.com/forSeedDemo', version: 'v1.2.0' };
    // The go command asks for escaped paths percent-encoded (`!` as %21): serve those spellings too.
    const route = tls.route.bind(tls);
    tls.route = (path, handler) => {
      route(path, handler);
      if (path.includes('!')) route(path.replaceAll('!', '%21'), handler);
    };
    const { zip } = await serveGoModule(tls, join(dir.path, 'goproxy'), python, mod).finally(() => (tls.route = route));
    const goproxy = tls.url.replace('127.0.0.1', '0.0.0.0');
    const setupProject = async (w: string): Promise<void> => {
      await mkdir(join(w, 'app'), { recursive: true });
      await writeFile(join(w, 'app', 'go.mod'), `module example.com/app\n\ngo 1.21\n\nrequire ${mod.path} ${mod.version}\n`);
      await writeFile(join(w, 'app', 'main.go'), `package main\n\nimport "${mod.path}"\n\nfunc main() { println(forseeddemo.Greeting()) }\n`);
    };
    const goEnv = (w: string): NodeJS.ProcessEnv => ({
      GOPROXY: goproxy,
      GOFLAGS: '-mod=mod',
      GOSUMDB: 'off',
      GOTOOLCHAIN: 'local',
      GOENV: 'off',
      GOPATH: join(w, 'gopath'),
      GOMODCACHE: join(w, 'gomodcache'),
      GOCACHE: join(w, 'gocache'),
    });
    // The repository's go.sum, written by go itself against the module proxy.
    const repo = join(dir.path, 'go-repo');
    await setupProject(repo);
    const tidy = await run('go', ['mod', 'tidy'], { cwd: join(repo, 'app'), env: { ...cleanEnv(repo), ...goEnv(repo), SSL_CERT_FILE: originCa } });
    expect(tidy.code, tidy.stderr).toBe(0);
    const goSum = await readFile(join(repo, 'app', 'go.sum'), 'utf8');
    expect(goSum).toMatch(new RegExp(`^${mod.path} ${mod.version} h1:`, 'm'));
    expect(goSum).toMatch(new RegExp(`^${mod.path} ${mod.version}/go.mod h1:`, 'm'));
    const { work, netlock } = await seedThenReplay('go', {
      inputs: [join(repo, 'app', 'go.sum')],
      seedArgs: ['--goproxy', goproxy],
      setup: async (w) => {
        await setupProject(w);
        await writeFile(join(w, 'app', 'go.sum'), goSum);
      },
      command: (w) => ['sh', '-c', `cd '${join(w, 'app')}' && go mod download all && go mod verify`],
      env: goEnv,
    });
    const escaped = mod.path.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
    expect(sha256(await readFile(join(work, 'gomodcache', 'cache', 'download', escaped, '@v', `${mod.version}.zip`)))).toBe(sha256(zip));
    expect(netlock.entries.map((e) => e.url.replace(`${goproxy}/${escaped.replaceAll('!', '%21')}/@v/`, '')).sort()).toEqual([`${mod.version}.info`, `${mod.version}.mod`, `${mod.version}.zip`]);
  }, 150_000);
});
