import { createHash } from 'node:crypto';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv } from '../helpers/client-session.ts';
import { cartesiProblem, IN_CI, MACHINE_FLAGS, machineImage } from '../helpers/cartesi.ts';
import { fetchOracleRun } from '../helpers/fetch-oracle-run.ts';
import { npmProject, serveNpmPackages } from '../helpers/npm-registry.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { buildWheel, serveSimpleIndex } from '../helpers/package-origins.ts';
import { cli, run, tempDir } from '../helpers/run.ts';
import type { RunResult } from '../helpers/run.ts';
import { createTestCa } from '../helpers/test-ca.ts';
import { hashTree } from '../helpers/tree-hash.ts';

/**
 * Real package clients inside the real Cartesi Machine, offline: a lockfile is seeded on the host
 * (`fetch-oracle seed`: exactly the URLs it pins, digests checked), then the same client installs from that
 * netlock twice, on the host under `fetch-oracle run --replay` (unshare -n) and inside the machine under
 * `fetch-oracle machine run --replay` (Debian trixie riscv64's npm 9 and pip 25, the host's own versions
 * outside). The installed trees must hash the same. Each run reports its misses; there must be none.
 */

const fixture = cartesiProblem();
const built = fixture === undefined ? await machineImage() : { problem: fixture };
const problem = 'problem' in built ? built.problem : undefined;
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const explain = (r: RunResult): string => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr.split('\n').slice(-80).join('\n')}`;

/** pip with no config file, no version check (it would ask pypi.org), no prompts, no bytecode (its .pyc embed the interpreter). */
const PIP_ENV = { PIP_CONFIG_FILE: '/dev/null', PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1', PIP_ROOT_USER_ACTION: 'ignore', PYTHONDONTWRITEBYTECODE: '1' };
const PIP_INSTALL = ['-m', 'pip', 'install', '--no-deps', '--no-compile', '--no-cache-dir', '--require-hashes', '--retries', '0', '--timeout', '120'];

describe.skipIf(problem !== undefined && !IN_CI)(`package clients in the real Cartesi Machine, offline${problem === undefined ? '' : ` [skipped: ${problem}]`}`, () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let data: string;
  let image: string;
  let originCa: string;
  let origin: Origin;
  let python: string;

  /** Requests the origin has answered so far. */
  const originHits = (): number => [...origin.hits.values()].reduce((a, b) => a + b, 0);

  beforeAll(async () => {
    if (problem !== undefined) throw new Error(`The real Cartesi Machine is required under CI: ${problem}`);
    image = (built as { image: string }).image;
    dir = await tempDir('fo-machine-clients-');
    data = join(dir.path, 'data');
    const ca = await createTestCa();
    originCa = join(dir.path, 'origin-ca.pem');
    await writeFile(originCa, ca.caPem);
    origin = await startOrigin(await ca.leafFor(['127.0.0.1', 'localhost']));
    const which = await run('python3', ['-c', 'import sys; print(sys.executable)']);
    expect(which.code, `python3 is needed: ${which.stderr}`).toBe(0);
    python = which.stdout.trim();
    await mkdir(data, { recursive: true });
    // Snapshots are keyed by image, kernel, emulator and sizes: test runs share them (the first stores one).
    const shared = join(tmpdir(), 'fetch-oracle-test-machine-snapshots');
    await mkdir(shared, { recursive: true });
    await symlink(shared, join(data, 'machine-snapshots'));
  }, 120_000);

  afterAll(async () => {
    await origin?.close();
    await dir?.remove();
  });

  /** `fetch-oracle seed` of `inputs` into NAME/build.netlock.json; the origin must have been asked. */
  async function seed(name: string, inputs: string[]): Promise<string> {
    const netlock = join(dir.path, name, 'build.netlock.json');
    const before = originHits();
    const r = await cli(['seed', '--data', data, '--netlock', netlock, '--upstream-ca', originCa, ...inputs]);
    expect(r.code, explain(r)).toBe(0);
    expect(originHits()).toBeGreaterThan(before);
    return netlock;
  }

  /** `fetch-oracle run --replay` on the host (unshare -n) in NAME/host, prepared by `setup`; no miss, nothing left unused. */
  async function hostReplay(name: string, netlock: string, setup: (work: string) => Promise<void>, command: (work: string) => string[], env: NodeJS.ProcessEnv): Promise<string> {
    const work = join(dir.path, name, 'host');
    await mkdir(join(work, 'home'), { recursive: true });
    await setup(work);
    const report = join(dir.path, name, 'host-report.json');
    const before = originHits();
    const r = await fetchOracleRun(['--replay', netlock, '--data', data, '--report', report, '--', ...command(work)], { env: { ...cleanEnv(join(work, 'home')), ...env }, cwd: work, timeoutMs: 120_000 });
    expect(r.code, explain(r)).toBe(0);
    expect(originHits(), 'nothing reached the origin during the host replay').toBe(before);
    const parsed = JSON.parse(await readFile(report, 'utf8')) as { misses: unknown[]; unused: unknown[] };
    expect(parsed.misses, r.stderr).toEqual([]);
    expect(parsed.unused, r.stderr).toEqual([]);
    return work;
  }

  /** `fetch-oracle machine run --replay` of `script` (sh -c) with `input` in and NAME/machine-out back. */
  async function machineReplay(name: string, netlock: string, input: string, script: string, env: Record<string, string>): Promise<{ out: string; result: RunResult }> {
    const out = join(dir.path, name, 'machine-out');
    const envFlags = Object.entries(env).flatMap(([k, v]) => ['--env', `${k}=${v}`]);
    const before = originHits();
    const r = await cli(['machine', 'run', '--replay', netlock, '--data', data, '--image', image, ...MACHINE_FLAGS, '--input', input, '--output', out, ...envFlags, '--', 'sh', '-c', script], { timeoutMs: 900_000 });
    expect(r.code, explain(r)).toBe(0);
    expect(r.stdout, explain(r)).toMatch(/^root hash: [0-9a-f]{64}\n$/);
    expect(r.stderr, explain(r)).not.toContain('MISS');
    expect(r.stderr, explain(r)).toMatch(/shim: \d+ request\(s\), \d+ hit\(s\), 0 miss\(es\), 0 error\(s\)/);
    expect(originHits(), 'nothing reached the origin from the machine').toBe(before);
    return { out, result: r };
  }

  it('npm ci of a seeded lockfile inside the real Cartesi Machine installs the node_modules host run --replay installs', async () => {
    // npm's CONNECT agent checks an IP-literal registry's certificate against "localhost": name it so.
    const registry = origin.url.replace('127.0.0.1', 'localhost');
    const packages = [
      { name: 'machine-left-x', version: '1.0.0', dependencies: { 'machine-right-x': '^2.0.0' } },
      { name: 'machine-right-x', version: '2.1.0' },
    ];
    const pkgDir = join(dir.path, 'npm', 'packages');
    await serveNpmPackages(origin, pkgDir, packages, registry);
    const { packageJson, lockJson } = await npmProject(pkgDir, packages, registry, { 'machine-left-x': '^1.0.0' });
    const project = join(dir.path, 'npm', 'project');
    await mkdir(project, { recursive: true });
    await writeFile(join(project, 'package.json'), packageJson);
    await writeFile(join(project, 'package-lock.json'), lockJson);

    const netlock = await seed('npm', [join(project, 'package-lock.json')]);
    const seeded = JSON.parse(await readFile(netlock, 'utf8')) as { entries: Array<{ url: string }> };
    expect(seeded.entries.map((e) => e.url).sort()).toEqual(packages.map((p) => `${registry}/${p.name}/-/${p.name}-${p.version}.tgz`).sort());

    const npmArgs = (cache: string): string[] => ['ci', '--no-audit', '--no-fund', '--ignore-scripts', '--cache', cache, '--registry', `${registry}/`];
    const npmEnv = { npm_config_update_notifier: 'false' };
    const host = await hostReplay('npm', netlock, async (work) => {
      await writeFile(join(work, 'package.json'), packageJson);
      await writeFile(join(work, 'package-lock.json'), lockJson);
    }, (work) => ['npm', ...npmArgs(join(work, '.npm-cache'))], npmEnv);

    const { out } = await machineReplay('npm', netlock, project, `set -e; npm ${npmArgs('/tmp/npm-cache').join(' ')}; cp -a node_modules "$FETCH_ORACLE_OUTPUT/"`, npmEnv);
    const inMachine = await hashTree(join(out, 'node_modules'));
    const onHost = await hashTree(join(host, 'node_modules'));
    expect(Object.keys(inMachine.files)).toEqual(expect.arrayContaining(['machine-left-x/index.js', 'machine-right-x/index.js', 'machine-right-x/package.json']));
    expect(inMachine.files).toEqual(onHost.files);
    expect(inMachine.digest).toBe(onHost.digest);
    expect(await readFile(join(out, 'node_modules', 'machine-right-x', 'index.js'), 'utf8')).toContain('machine-right-x@2.1.0');
  }, 1_200_000);

  it('pip install --require-hashes inside the real Cartesi Machine installs the files host run --replay installs', async () => {
    const pkg = 'fomachine';
    const wheelName = `${pkg}-1.0.0-py3-none-any.whl`;
    const wheel = await buildWheel(python, join(dir.path, wheelName), pkg, '1.0.0');
    // pip (urllib3) checks an IP literal against the certificate's IP SAN: 127.0.0.1 works as it is.
    serveSimpleIndex(origin, pkg, wheelName, wheel);
    const requirements = `--index-url ${origin.url}/simple/\n${pkg}==1.0.0 --hash=sha256:${sha256(wheel)}\n`;
    const project = join(dir.path, 'pip', 'project');
    await mkdir(project, { recursive: true });
    await writeFile(join(project, 'requirements.txt'), requirements);

    const netlock = await seed('pip', [join(project, 'requirements.txt')]);

    const host = await hostReplay('pip', netlock, async (work) => {
      await writeFile(join(work, 'requirements.txt'), requirements);
    }, (work) => [python, ...PIP_INSTALL, '--target', join(work, 'site'), '-r', join(work, 'requirements.txt')], PIP_ENV);

    const { out } = await machineReplay('pip', netlock, project, `set -e; python3 ${PIP_INSTALL.join(' ')} --target "$FETCH_ORACLE_OUTPUT/site" -r requirements.txt`, PIP_ENV);
    const inMachine = await hashTree(join(out, 'site'));
    const onHost = await hashTree(join(host, 'site'));
    expect(Object.keys(inMachine.files)).toEqual(expect.arrayContaining([`${pkg}/__init__.py`, `${pkg}-1.0.0.dist-info/METADATA`, `${pkg}-1.0.0.dist-info/RECORD`]));
    expect(inMachine.files).toEqual(onHost.files);
    expect(inMachine.digest).toBe(onHost.digest);
  }, 1_200_000);
});
