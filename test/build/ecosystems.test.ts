import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBuildah } from '../../src/image/buildah.ts';
import { cleanEnv } from '../helpers/client-session.ts';
import { debianMirrorProblem, recordedDebianBase } from '../helpers/debian-base.ts';
import type { RecordedBase } from '../helpers/debian-base.ts';
import { npmProject, serveNpmPackages } from '../helpers/npm-registry.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { buildWheel, serveCargoCrate, serveGoModule, serveSimpleIndex } from '../helpers/package-origins.ts';
import { run, tempDir } from '../helpers/run.ts';
import { createTestCa } from '../helpers/test-ca.ts';
import { checkEcosystem, ecosystemContext } from './ecosystems.ts';

/**
 * Unmodified Dockerfiles of the common ecosystems (ecosystems.ts) pass `build --check --scrub all`: Debian's
 * toolchain from the real mirror, the project's packages from local registry-like origins over HTTPS (a PEP 503
 * index, an npm registry, a GOPROXY, a cargo sparse index), real buildah. Each records, rebuilds offline in an
 * empty storage and compares image IDs. Before SOURCE_DATE_EPOCH reached every RUN step, Python failed (every
 * .pyc of the venv); before the go and cargo profiles, Go (its build cache) and Rust (cargo's .global-cache and
 * target/.rustc_info.json) failed; docs/reproducible-builds.md has the measurements.
 *
 * The base root file system is recorded once per run for every build test (test/helpers/debian-base.ts).
 * About 2 to 4 minutes per ecosystem on 2 cores (toolchain install twice, record and replay).
 * FETCH_ORACLE_TEST_ECOSYSTEMS=python,go limits the ecosystems (default: all four).
 */

const problem = findBuildah() === undefined ? 'buildah is not installed (bash scripts/setup.sh installs it)' : await debianMirrorProblem();
const inCi = process.env['CI'] === 'true' || process.env['CI'] === '1';
const chosen = (process.env['FETCH_ORACLE_TEST_ECOSYSTEMS'] ?? 'python,node,go,cargo').split(',');
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe.skipIf(problem !== undefined && !inCi)(`build --check --scrub all of unmodified ecosystem Dockerfiles (real buildah, Debian toolchains, local registries)${problem === undefined ? '' : ` [skipped: ${problem}]`}`, () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let tls: Origin;
  let originCa: string;
  let python: string;
  let base: RecordedBase;
  const env = (): NodeJS.ProcessEnv => cleanEnv(join(dir.path, 'home'), { DEBIAN_FRONTEND: 'noninteractive' });
  // Go sends requests for localhost and loopback addresses past the proxy; 0.0.0.0 reaches the origin too.
  const host = (name: 'localhost' | '0.0.0.0'): string => tls.url.replace('127.0.0.1', name);

  beforeAll(async () => {
    if (problem !== undefined) throw new Error(`${problem}; CI must run this file, so it fails instead of skipping`);
    dir = await tempDir('fo-build-eco-');
    const ca = await createTestCa();
    originCa = join(dir.path, 'origin-ca.pem');
    await writeFile(originCa, ca.caPem);
    tls = await startOrigin(await ca.leafFor(['127.0.0.1', 'localhost', '0.0.0.0']));
    const which = await run('sh', ['-c', 'command -v python3']);
    python = which.stdout.trim();
    base = await recordedDebianBase();
  }, 1_500_000);

  afterAll(async () => {
    await tls?.close();
    await dir?.remove();
  });

  it.skipIf(!chosen.includes('python'))('Python: python3 -m venv + pip install -r requirements.txt from a PEP 503 index', async () => {
    const wheelName = 'fo_demo-1.0.0-py3-none-any.whl';
    const wheel = await buildWheel(python, join(dir.path, wheelName), 'fo_demo', '1.0.0');
    serveSimpleIndex(tls, 'fo-demo', wheelName, wheel);
    const ctx = await ecosystemContext(dir.path, 'python', base.tar, {
      'requirements.txt': `--index-url ${tls.url}/simple/\nfo-demo==1.0.0\n`,
      'main.py': 'import fo_demo\n\nprint("fo_demo", fo_demo.VERSION)\n',
    });
    const { r, urls } = await checkEcosystem(dir.path, 'python', ctx, ['--upstream-ca', originCa], env());
    expect(urls).toEqual(expect.arrayContaining([`${tls.url}/simple/fo-demo/`, `${tls.url}/files/${wheelName}`]));
    expect(r.stderr).toContain('fo_demo 1.0.0');
  }, 1_500_000);

  it.skipIf(!chosen.includes('node'))('Node: npm ci of a package-lock.json whose tarballs come from a registry-like origin', async () => {
    const registry = host('localhost'); // npm checks an IP-literal registry's certificate against "localhost"
    const packages = [
      { name: 'fo-left', version: '1.0.0', dependencies: { 'fo-right': '^2.0.0' } },
      { name: 'fo-right', version: '2.1.0' },
    ];
    await serveNpmPackages(tls, join(dir.path, 'npm'), packages, registry);
    const { packageJson, lockJson } = await npmProject(join(dir.path, 'npm'), packages, registry, { 'fo-left': '^1.0.0' });
    const ctx = await ecosystemContext(dir.path, 'node', base.tar, {
      'package.json': packageJson,
      'package-lock.json': lockJson,
      'index.js': 'console.log("loaded", require("fo-left"), require("fo-right"));\n',
    });
    const { r, urls } = await checkEcosystem(dir.path, 'node', ctx, ['--upstream-ca', originCa], env());
    expect(urls).toEqual(expect.arrayContaining(packages.map((p) => `${registry}/${p.name}/-/${p.name}-${p.version}.tgz`)));
    expect(r.stderr).toContain('loaded fo-left@1.0.0 fo-right@2.1.0');
  }, 1_500_000);

  it.skipIf(!chosen.includes('go'))('Go: go mod download + go build from a GOPROXY origin', async () => {
    const mod = { path: 'example.com/fogreet', version: 'v1.0.0' };
    const { goSum } = await serveGoModule(tls, join(dir.path, 'goproxy'), python, mod);
    const ctx = await ecosystemContext(dir.path, 'go', base.tar, {
      'go.mod': `module example.com/app\n\ngo 1.19\n\nrequire ${mod.path} ${mod.version}\n`,
      'go.sum': goSum,
      'main.go': `package main\n\nimport (\n\t"fmt"\n\n\t"${mod.path}"\n)\n\nfunc main() { fmt.Println("greeting:", fogreet.Greeting()) }\n`,
    });
    const goproxy = host('0.0.0.0');
    const { r, urls } = await checkEcosystem(dir.path, 'go', ctx, ['--upstream-ca', originCa, '--build-arg', `GOPROXY=${goproxy}`], env());
    expect(urls).toContain(`${goproxy}/${mod.path}/@v/${mod.version}.zip`);
    expect(r.stderr).toContain(`greeting: ${mod.path} ${mod.version}`);
  }, 1_500_000);

  it.skipIf(!chosen.includes('cargo'))('Rust: cargo build --locked from a sparse registry (the project\'s .cargo/config.toml replaces crates-io)', async () => {
    const registry = host('localhost');
    const { indexUrl, crate } = await serveCargoCrate(tls, join(dir.path, 'cargo-registry'), { name: 'fogreet', version: '0.1.0' }, registry);
    const ctx = await ecosystemContext(dir.path, 'cargo', base.tar, {
      // The context's ignore file applies although buildah reads a derived Dockerfile from elsewhere.
      '.dockerignore': 'app/target\napp/NOTES.md\n',
      'app/NOTES.md': 'not for the image\n',
      'app/.cargo/config.toml': `[source.crates-io]\nreplace-with = "fo-local"\n\n[source.fo-local]\nregistry = "${indexUrl}"\n`,
      'app/Cargo.toml': '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\nfogreet = "0.1"\n',
      'app/Cargo.lock': `# This file is automatically @generated by Cargo.\n# It is not intended for manual editing.\nversion = 3\n\n[[package]]\nname = "app"\nversion = "0.1.0"\ndependencies = [\n "fogreet",\n]\n\n[[package]]\nname = "fogreet"\nversion = "0.1.0"\nsource = "registry+https://github.com/rust-lang/crates.io-index"\nchecksum = "${sha256(crate)}"\n`,
      'app/src/main.rs': 'fn main() {\n    println!("greeting: {}", fogreet::greeting());\n}\n',
    });
    const { r, urls } = await checkEcosystem(dir.path, 'cargo', ctx, ['--upstream-ca', originCa], env());
    expect(urls).toEqual(expect.arrayContaining([`${registry}/cargo/index/config.json`, `${registry}/cargo/dl/fogreet/0.1.0/download`]));
    expect(r.stderr).toContain('greeting: fogreet 0.1.0');
    // `ls -A` in the RUN step: what COPY app/ took from the context, without what .dockerignore names.
    expect(r.stderr).toMatch(/^\.cargo\nCargo\.lock\nCargo\.toml\nsrc\n/m);
  }, 1_500_000);
});
